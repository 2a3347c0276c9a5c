#include "services/coordinator/inference_service.h"

#include <map>

#include "core/chat_template.h"
#include "core/error.h"
#include "core/model_config.h"

namespace tandem::services {

namespace pb = tandem::v1;
using grpc::Status;
using grpc::StatusCode;

namespace {

Status invalid(const std::string& msg) { return {StatusCode::INVALID_ARGUMENT, msg}; }

// Fills `s` from the request's options within the server's limits;
// INVALID_ARGUMENT names the field (and the limit and its flag).
Status settings_from(const pb::GenerationOptions& o, const RequestLimits& lim, GenerationSettings& s) {
  if (o.max_tokens() < -1) return invalid("options.max_tokens must be >= -1 (got " + std::to_string(o.max_tokens()) + ")");
  // 0 (unset): 128, or the server's limit when that is lower.
  s.max_tokens = o.max_tokens() != 0 ? o.max_tokens() : (lim.max_new_tokens > 0 ? std::min(128, lim.max_new_tokens) : 128);
  if (lim.max_new_tokens > 0) {
    if (s.max_tokens > lim.max_new_tokens)
      return invalid("options.max_tokens " + std::to_string(s.max_tokens) + " is above this server's limit of " +
                     std::to_string(lim.max_new_tokens) + " (--max-new-tokens)");
    if (s.max_tokens == -1) s.max_tokens = lim.max_new_tokens;  // "until the context is full", capped
  }
  if (lim.max_stop_strings > 0 && o.stop_size() > lim.max_stop_strings)
    return invalid("options.stop has " + std::to_string(o.stop_size()) + " strings; at most " +
                   std::to_string(lim.max_stop_strings) + " (--max-stop-strings)");
  for (int i = 0; i < o.stop_size(); ++i)
    if (lim.max_stop_bytes > 0 && static_cast<int64_t>(o.stop(i).size()) > lim.max_stop_bytes)
      return invalid("options.stop[" + std::to_string(i) + "] is " + std::to_string(o.stop(i).size()) +
                     " bytes; at most " + std::to_string(lim.max_stop_bytes));
  if (o.logprobs() < 0 || o.logprobs() > 20)
    return invalid("options.logprobs must be in 0..20 (got " + std::to_string(o.logprobs()) + ")");
  s.logprobs = o.logprobs();
  s.ignore_eos = o.ignore_eos();
  for (int i = 0; i < o.stop_size(); ++i) {
    if (o.stop(i).empty()) return invalid("options.stop[" + std::to_string(i) + "] is empty");
    s.stop.push_back(o.stop(i));
  }
  const pb::SamplingParams& p = o.sampling();
  core::SamplingParams& c = s.sampling;
  if (p.has_temperature()) c.temperature = p.temperature();
  if (p.has_top_k()) c.top_k = p.top_k();
  if (p.has_top_p()) c.top_p = p.top_p();
  if (p.has_min_p()) c.min_p = p.min_p();
  if (p.has_repeat_penalty()) c.repeat_penalty = p.repeat_penalty();
  if (p.has_repeat_last_n()) c.repeat_last_n = p.repeat_last_n();
  if (p.has_frequency_penalty()) c.frequency_penalty = p.frequency_penalty();
  if (p.has_presence_penalty()) c.presence_penalty = p.presence_penalty();
  if (p.has_seed()) c.seed = p.seed();
  try {
    c.validate();
  } catch (const core::Error& e) {
    return invalid(std::string("options.sampling: ") + e.what());
  }
  return Status::OK;
}

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
  if (prompt.empty()) return reject(invalid("the prompt is empty after tokenization"));
  if (limits_.max_prompt_tokens > 0 && static_cast<int64_t>(prompt.size()) > limits_.max_prompt_tokens)
    return reject(invalid("prompt has " + std::to_string(prompt.size()) + " tokens; this server accepts at most " +
                          std::to_string(limits_.max_prompt_tokens) + " (--max-prompt-tokens)"));
  const int32_t ctx_len = scheduler_.config().context;
  if (static_cast<int32_t>(prompt.size()) >= ctx_len)
    return reject(invalid("prompt has " + std::to_string(prompt.size()) + " tokens; the context holds " +
                          std::to_string(ctx_len) + " positions (at most " + std::to_string(ctx_len - 1) +
                          " prompt tokens)"));
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
  if (req->prompt().empty()) return reject(invalid("prompt is empty"));
  std::vector<int32_t> ids;
  try {
    ids = tok_.encode(req->prompt(), !req->no_bos() && tok_.add_bos_default(), req->special());
  } catch (const core::Error& e) {
    return reject(invalid(std::string("prompt: ") + e.what()));
  }
  return stream(ctx, std::move(ids), req->options(), out);
}

Status InferenceService::Chat(grpc::ServerContext* ctx, const pb::ChatRequest* req,
                              grpc::ServerWriter<pb::GenerateResponse>* out) {
  if (Status a = auth_.check(*ctx); !a.ok()) return reject(a);
  if (req->messages_size() == 0) return reject(invalid("messages is empty"));
  std::vector<core::ChatMessage> msgs;
  for (int i = 0; i < req->messages_size(); ++i) {
    const auto& m = req->messages(i);
    if (m.role() != "system" && m.role() != "user" && m.role() != "assistant")
      return reject(invalid("messages[" + std::to_string(i) + "].role must be system, user or assistant (got '" +
                            m.role() + "')"));
    msgs.push_back({m.role(), m.content()});
  }
  const std::string src = file_.get_string("tokenizer.chat_template").value_or("");
  core::ChatTemplateKind kind;
  if (!req->chat_template().empty()) {
    auto k = core::chat_template_from_name(req->chat_template());
    if (!k)
      return reject(invalid("chat_template '" + req->chat_template() + "' is unknown (use chatml, llama3, llama2 or mistral)"));
    kind = *k;
  } else {
    try {
      kind = core::detect_chat_template(src);
    } catch (const core::Error& e) {
      return reject(invalid(std::string("chat_template: ") + e.what()));
    }
  }
  std::vector<int32_t> ids;
  try {
    const std::string bos_text = tok_.bos() >= 0 ? tok_.token_piece(tok_.bos(), true) : "";
    const std::string prompt = core::render_chat(kind, msgs, true, bos_text, core::default_system_from_template(src));
    ids = tok_.encode(prompt, tok_.add_bos_default(), true);
  } catch (const core::Error& e) {
    return reject(invalid(std::string("messages: ") + e.what()));
  }
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
  std::vector<int32_t> ids(req->ids().begin(), req->ids().end());
  for (size_t i = 0; i < ids.size(); ++i)
    if (!tok_.valid(ids[i]))
      return invalid("ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) + " is outside the vocabulary (0.." +
                     std::to_string(tok_.n_vocab() - 1) + ")");
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
