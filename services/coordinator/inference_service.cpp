#include "services/coordinator/inference_service.h"

#include <map>

#include "core/error.h"
#include "core/model_config.h"

namespace tandem::services {

namespace pb = tandem::v1;
using grpc::Status;
using grpc::StatusCode;

namespace {

Status invalid(const std::string& msg) { return {StatusCode::INVALID_ARGUMENT, msg}; }

std::optional<Clock::time_point> steady_deadline(const grpc::ServerContext* ctx) {
  const auto d = ctx->deadline();
  if (d == std::chrono::system_clock::time_point::max()) return std::nullopt;
  const auto left = d - std::chrono::system_clock::now();
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(left);
}

}  // namespace

std::string outcome_label(StatusCode c) {
  switch (c) {
    case StatusCode::OK: return "ok";
    case StatusCode::CANCELLED: return "cancelled";
    case StatusCode::DEADLINE_EXCEEDED: return "deadline_exceeded";
    case StatusCode::INVALID_ARGUMENT: return "invalid_argument";
    case StatusCode::RESOURCE_EXHAUSTED: return "resource_exhausted";
    case StatusCode::UNAVAILABLE: return "unavailable";
    case StatusCode::FAILED_PRECONDITION: return "failed_precondition";
    case StatusCode::UNAUTHENTICATED: return "unauthenticated";
    default: return "internal";
  }
}

InferenceService::InferenceService(const core::gguf::File& file, const core::Tokenizer& tok, Scheduler& scheduler,
                                   Pipeline& pipeline, CoordinatorMetrics& metrics, BearerAuth auth,
                                   RequestLimits limits)
    : file_(file), tok_(tok), scheduler_(scheduler), pipeline_(pipeline), m_(metrics), auth_(std::move(auth)),
      limits_(limits) {
  const core::ModelConfig cfg = core::config_from_gguf(file);
  const PipelineConfig& pc = pipeline.config();
  pb::ModelInfo& i = static_info_;
  i.set_name(file.get_string("general.name").value_or(""));
  i.set_architecture(file.get_string("general.architecture").value_or(""));
  i.set_path(file.path());
  i.set_n_layer(cfg.n_layer);
  i.set_n_embd(cfg.n_embd);
  i.set_n_head(cfg.n_head);
  i.set_n_head_kv(cfg.n_head_kv);
  i.set_n_vocab(cfg.n_vocab);
  i.set_context(pc.context);
  i.set_max_sequences(pc.max_sequences);
  i.set_kv_type_k(pc.kv_type_k);
  i.set_kv_type_v(pc.kv_type_v);
  i.set_wire_type(core::wire::dtype_name(pc.wire));
  i.set_file_bytes(file.file_size());
  std::map<std::string, std::pair<int, uint64_t>> mix;
  for (const auto& t : file.tensors()) {
    auto& e = mix[std::string(core::quant::type_name(t.type))];
    ++e.first;
    e.second += t.size_bytes;
  }
  for (const auto& [name, e] : mix) {
    auto* q = i.add_quant_mix();
    q->set_type(name);
    q->set_tensors(e.first);
    q->set_bytes(e.second);
  }
}

Status InferenceService::reject(Status s) {
  m_.request_done(outcome_label(s.error_code()));
  return s;
}

Status InferenceService::stream(grpc::ServerContext* ctx, std::vector<int32_t> prompt, const pb::GenerationOptions& o,
                                grpc::ServerWriter<pb::GenerateResponse>* out) {
  GenerationSettings s;
  if (Status st = settings_from(o, limits_, s); !st.ok()) return reject(st);
  if (Status st = check_prompt(prompt, limits_, scheduler_.config().context); !st.ok()) return reject(st);
  const auto deadline = steady_deadline(ctx);
  if (deadline && Clock::now() >= *deadline) return reject({StatusCode::DEADLINE_EXCEEDED, "deadline passed before start"});
  auto r = std::make_shared<Request>(std::move(prompt), std::move(s), deadline);
  if (Status st = scheduler_.submit(r); !st.ok()) return reject(st);
  std::deque<Request::Event> events;
  for (;;) {
    if (ctx->IsCancelled()) {
      r->cancel();  // the scheduler frees the slot before its next step
      return {StatusCode::CANCELLED, "cancelled by the client"};
    }
    events.clear();
    if (!r->wait_events(events, std::chrono::milliseconds(20))) continue;
    for (auto& e : events) {
      if (e.last && !e.status.ok()) return e.status;
      if (!out->Write(e.message)) {
        r->cancel();
        return {StatusCode::CANCELLED, "the client went away"};
      }
      if (e.last) return Status::OK;
    }
  }
}

Status InferenceService::Generate(grpc::ServerContext* ctx, const pb::GenerateRequest* req,
                                  grpc::ServerWriter<pb::GenerateResponse>* out) {
  if (Status a = auth_.check(*ctx); !a.ok()) return reject(a);
  std::vector<int32_t> ids;
  if (Status st = generate_prompt(*req, tok_, ids); !st.ok()) return reject(st);
  return stream(ctx, std::move(ids), req->options(), out);
}

Status InferenceService::Chat(grpc::ServerContext* ctx, const pb::ChatRequest* req,
                              grpc::ServerWriter<pb::GenerateResponse>* out) {
  if (Status a = auth_.check(*ctx); !a.ok()) return reject(a);
  std::vector<int32_t> ids;
  const std::string src = file_.get_string("tokenizer.chat_template").value_or("");
  if (Status st = chat_prompt(*req, tok_, src, ids); !st.ok()) return reject(st);
  return stream(ctx, std::move(ids), req->options(), out);
}

Status InferenceService::Tokenize(grpc::ServerContext* ctx, const pb::TokenizeRequest* req, pb::TokenizeResponse* resp) {
  if (Status a = auth_.check(*ctx); !a.ok()) return a;
  try {
    for (int32_t id : tok_.encode(req->text(), req->add_bos(), req->special())) {
      resp->add_ids(id);
      resp->add_pieces(tok_.token_piece(id, true));
    }
  } catch (const core::Error& e) {
    return invalid(std::string("text: ") + e.what());
  }
  return Status::OK;
}

Status InferenceService::Detokenize(grpc::ServerContext* ctx, const pb::DetokenizeRequest* req, pb::DetokenizeResponse* resp) {
  if (Status a = auth_.check(*ctx); !a.ok()) return a;
  std::vector<int32_t> ids;
  if (Status st = detokenize_ids(*req, tok_, ids); !st.ok()) return st;
  resp->set_text(tok_.decode(ids, req->special()));
  return Status::OK;
}

Status InferenceService::GetModelInfo(grpc::ServerContext* ctx, const pb::GetModelInfoRequest*, pb::ModelInfo* resp) {
  if (Status a = auth_.check(*ctx); !a.ok()) return a;
  *resp = static_info_;
  for (const StageStatus& s : pipeline_.status()) {
    pb::StageInfo* st = resp->add_stages();
    st->set_worker(s.plan.role);
    st->set_address(s.address);
    st->set_layer_begin(s.plan.layer_begin);
    st->set_layer_end(s.plan.layer_end);
    st->set_embedding(false);
    st->set_head(s.plan.head);
    st->set_device(s.device);
    st->set_weight_bytes(s.weight_bytes);
    st->set_kv_bytes(s.kv_bytes);
    st->set_memory(s.memory);
    st->set_pid(s.pid);
    st->set_metrics_url(s.metrics_url);
    st->set_up(s.up);
    st->set_model_path(s.model_path);
  }
  return Status::OK;
}

}  // namespace tandem::services
