#pragma once
// tandem.v1.Inference over the scheduler: request validation (every bad
// field is INVALID_ARGUMENT naming it), tokenization, chat templates, and the
// streaming loop that forwards scheduler events and notices cancellation.
#include <memory>
#include <string>

#include "core/gguf_file.h"
#include "core/tokenizer.h"
#include "services/coordinator/bearer_auth.h"
#include "services/coordinator/coordinator_metrics.h"
#include "services/coordinator/pipeline.h"
#include "services/coordinator/request_validation.h"
#include "services/coordinator/scheduler.h"
#include "tandem/v1/inference.grpc.pb.h"

namespace tandem::services {

class InferenceService final : public tandem::v1::Inference::Service {
 public:
  // auth: checked first in every call (disabled when it holds no token).
  InferenceService(const core::gguf::File& file, const core::Tokenizer& tok, Scheduler& scheduler, Pipeline& pipeline,
                   CoordinatorMetrics& metrics, BearerAuth auth, RequestLimits limits = {});

  grpc::Status Generate(grpc::ServerContext* ctx, const tandem::v1::GenerateRequest* req,
                        grpc::ServerWriter<tandem::v1::GenerateResponse>* out) override;
  grpc::Status Chat(grpc::ServerContext* ctx, const tandem::v1::ChatRequest* req,
                    grpc::ServerWriter<tandem::v1::GenerateResponse>* out) override;
  grpc::Status Tokenize(grpc::ServerContext* ctx, const tandem::v1::TokenizeRequest* req,
                        tandem::v1::TokenizeResponse* resp) override;
  grpc::Status Detokenize(grpc::ServerContext* ctx, const tandem::v1::DetokenizeRequest* req,
                          tandem::v1::DetokenizeResponse* resp) override;
  grpc::Status GetModelInfo(grpc::ServerContext* ctx, const tandem::v1::GetModelInfoRequest* req,
                            tandem::v1::ModelInfo* resp) override;

 private:
  grpc::Status stream(grpc::ServerContext* ctx, std::vector<int32_t> prompt, const tandem::v1::GenerationOptions& o,
                      grpc::ServerWriter<tandem::v1::GenerateResponse>* out);
  grpc::Status reject(grpc::Status s);  // counts the outcome

  const core::gguf::File& file_;
  const core::Tokenizer& tok_;
  Scheduler& scheduler_;
  Pipeline& pipeline_;
  CoordinatorMetrics& m_;
  const BearerAuth auth_;  // a copy: a few strings
  const RequestLimits limits_;
  tandem::v1::ModelInfo static_info_;
};

// "ok", "invalid_argument", ... for tandem_requests_total{outcome}.
std::string outcome_label(grpc::StatusCode c);

}  // namespace tandem::services
