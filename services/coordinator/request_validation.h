#pragma once
// The public API's request checks, apart from the gRPC service so that the
// fuzzer (tests/fuzz/fuzz_requests.cpp) drives exactly the code the service
// runs. Every refusal is INVALID_ARGUMENT naming the field (and, for a limit,
// the flag that sets it); nothing here throws.
#include <grpcpp/support/status.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/sampler.h"
#include "core/tokenizer.h"
#include "tandem/v1/inference.pb.h"

namespace tandem::services {

// What one request may ask for (INVALID_ARGUMENT naming the field and the
// limit beyond it). 0: no limit of its own (the context still bounds tokens).
struct RequestLimits {
  int32_t max_prompt_tokens = 0;  // --max-prompt-tokens
  int32_t max_new_tokens = 0;     // --max-new-tokens: options.max_tokens above it is refused; -1 means up to it
  int32_t max_stop_strings = 16;  // --max-stop-strings
  int32_t max_stop_bytes = 256;   // bytes per stop string
};

// How one request generates, once validated.
struct GenerationSettings {
  int32_t max_tokens = 128;  // -1: until the context is full
  core::SamplingParams sampling;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  int32_t logprobs = 0;
};

// Fills `s` from the request's options within the server's limits.
grpc::Status settings_from(const tandem::v1::GenerationOptions& o, const RequestLimits& lim, GenerationSettings& s);

// Generate: the prompt text tokenized as the request asks (BOS unless
// no_bos, control tokens parsed when `special`).
grpc::Status generate_prompt(const tandem::v1::GenerateRequest& req, const core::Tokenizer& tok,
                             std::vector<int32_t>& ids);

// Chat: roles checked, the template named by the request or recognised in
// the model's Jinja source (`template_source`), rendered and tokenized.
grpc::Status chat_prompt(const tandem::v1::ChatRequest& req, const core::Tokenizer& tok,
                         std::string_view template_source, std::vector<int32_t>& ids);

// A tokenized prompt against --max-prompt-tokens and the context length
// (which must leave room for at least one generated token).
grpc::Status check_prompt(const std::vector<int32_t>& ids, const RequestLimits& lim, int32_t context);

// Detokenize: every id inside the vocabulary.
grpc::Status detokenize_ids(const tandem::v1::DetokenizeRequest& req, const core::Tokenizer& tok,
                            std::vector<int32_t>& ids);

}  // namespace tandem::services
