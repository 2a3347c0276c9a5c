#include "services/coordinator/request_validation.h"

#include <algorithm>

#include "core/chat_template.h"
#include "core/error.h"

namespace tandem::services {

namespace pb = tandem::v1;
using grpc::Status;
using grpc::StatusCode;

namespace {
Status invalid(const std::string& msg) { return {StatusCode::INVALID_ARGUMENT, msg}; }

// A caller's string inside an error message: quoted, control and non-ASCII
// bytes escaped (\n, \xNN) and cut to 64 bytes, so the message stays one
// readable line whatever was sent.
std::string quoted(std::string_view s) {
  static constexpr size_t kMax = 64;
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\\' || c == '\'') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c >= 0x7f) {
      static const char* const kHex = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += s.size() > kMax ? "'..." : "'";
  return out;
}
}  // namespace

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

Status generate_prompt(const pb::GenerateRequest& req, const core::Tokenizer& tok, std::vector<int32_t>& ids) {
  if (req.prompt().empty()) return invalid("prompt is empty");
  try {
    ids = tok.encode(req.prompt(), !req.no_bos() && tok.add_bos_default(), req.special());
  } catch (const core::Error& e) {
    return invalid(std::string("prompt: ") + e.what());
  }
  return Status::OK;
}

Status chat_prompt(const pb::ChatRequest& req, const core::Tokenizer& tok, std::string_view template_source,
                   std::vector<int32_t>& ids) {
  if (req.messages_size() == 0) return invalid("messages is empty");
  std::vector<core::ChatMessage> msgs;
  for (int i = 0; i < req.messages_size(); ++i) {
    const auto& m = req.messages(i);
    if (m.role() != "system" && m.role() != "user" && m.role() != "assistant")
      return invalid("messages[" + std::to_string(i) + "].role must be system, user or assistant (got " + quoted(m.role()) +
                     ")");
    msgs.push_back({m.role(), m.content()});
  }
  core::ChatTemplateKind kind;
  if (!req.chat_template().empty()) {
    auto k = core::chat_template_from_name(req.chat_template());
    if (!k) return invalid("chat_template " + quoted(req.chat_template()) + " is unknown (use chatml, llama3, llama2 or mistral)");
    kind = *k;
  } else {
    try {
      kind = core::detect_chat_template(template_source);
    } catch (const core::Error& e) {
      return invalid(std::string("chat_template: ") + e.what());
    }
  }
  try {
    const std::string bos_text = tok.bos() >= 0 ? tok.token_piece(tok.bos(), true) : "";
    const std::string prompt =
        core::render_chat(kind, msgs, true, bos_text, core::default_system_from_template(template_source));
    ids = tok.encode(prompt, tok.add_bos_default(), true);
  } catch (const core::Error& e) {
    return invalid(std::string("messages: ") + e.what());
  }
  return Status::OK;
}

Status check_prompt(const std::vector<int32_t>& ids, const RequestLimits& lim, int32_t context) {
  if (ids.empty()) return invalid("the prompt is empty after tokenization");
  if (lim.max_prompt_tokens > 0 && static_cast<int64_t>(ids.size()) > lim.max_prompt_tokens)
    return invalid("prompt has " + std::to_string(ids.size()) + " tokens; this server accepts at most " +
                   std::to_string(lim.max_prompt_tokens) + " (--max-prompt-tokens)");
  if (static_cast<int64_t>(ids.size()) >= context)
    return invalid("prompt has " + std::to_string(ids.size()) + " tokens; the context holds " + std::to_string(context) +
                   " positions (at most " + std::to_string(context - 1) + " prompt tokens)");
  return Status::OK;
}

Status detokenize_ids(const pb::DetokenizeRequest& req, const core::Tokenizer& tok, std::vector<int32_t>& ids) {
  ids.assign(req.ids().begin(), req.ids().end());
  for (size_t i = 0; i < ids.size(); ++i)
    if (!tok.valid(ids[i]))
      return invalid("ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) + " is outside the vocabulary (0.." +
                     std::to_string(tok.n_vocab() - 1) + ")");
  return Status::OK;
}

}  // namespace tandem::services
