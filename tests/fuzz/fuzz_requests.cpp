// libFuzzer target for the public API's request validation: random protobuf
// messages through the checks the coordinator runs before a request reaches
// the scheduler (services/coordinator/request_validation.h).
//
// Input: byte 0 picks the message (Generate, Chat, Detokenize), byte 1 the
// server's limits and context, the rest is the message's wire bytes (the seed
// corpus holds real requests, so mutations keep most of the structure). The
// tokenizer and chat template are the default model's (TANDEM_FUZZ_VOCABS:
// the first file with a chat template). For every input that parses:
//   - the answer is OK or INVALID_ARGUMENT, never another code or a crash;
//   - a refusal has a one-line message naming the field it is about;
//   - an accepted request is inside every limit: max_tokens within
//     --max-new-tokens, stop strings within count and size, logprobs within
//     0..20, a prompt of 1..context-1 tokens within --max-prompt-tokens, and
//     detokenized ids inside the vocabulary.
#include <cstdint>
#include <string>
#include <vector>

#include "services/coordinator/request_validation.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

namespace pb = tandem::v1;
using grpc::Status;
using tandem::services::GenerationSettings;
using tandem::services::RequestLimits;

const tandem::fuzz::LoadedVocab& model() {
  static const auto all = tandem::fuzz::load_vocabs();
  for (const auto& v : all)
    if (!v.chat_template.empty()) return v;
  std::fprintf(stderr, "TANDEM_FUZZ_VOCABS has no file with a chat template (the default model has one)\n");
  std::exit(2);
}

void check_refusal(const Status& s) {
  FUZZ_CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  const std::string& m = s.error_message();
  FUZZ_CHECK(!m.empty() && m.find('\n') == std::string::npos);
  static const char* const kFields[] = {"options.", "prompt", "the prompt", "messages", "chat_template", "ids["};
  bool named = false;
  for (const char* f : kFields) named = named || m.rfind(f, 0) == 0;
  if (!named) std::fprintf(stderr, "refusal names no field: %s\n", m.c_str());
  FUZZ_CHECK(named);
}

void check_settings(const GenerationSettings& s, const RequestLimits& lim) {
  FUZZ_CHECK(s.max_tokens == -1 || s.max_tokens > 0);
  if (lim.max_new_tokens > 0) FUZZ_CHECK(s.max_tokens > 0 && s.max_tokens <= lim.max_new_tokens);
  FUZZ_CHECK(static_cast<int32_t>(s.stop.size()) <= lim.max_stop_strings);
  for (const std::string& stop : s.stop) FUZZ_CHECK(!stop.empty() && static_cast<int32_t>(stop.size()) <= lim.max_stop_bytes);
  FUZZ_CHECK(s.logprobs >= 0 && s.logprobs <= 20);
}

// Options, then the prompt, as the service checks them.
void check_generation(const pb::GenerationOptions& o, const Status& prompt_status, const std::vector<int32_t>& ids,
                      const RequestLimits& lim, int32_t context, const tandem::core::Tokenizer& tok) {
  GenerationSettings s;
  const Status so = tandem::services::settings_from(o, lim, s);
  if (!so.ok()) check_refusal(so);
  else check_settings(s, lim);
  if (!prompt_status.ok()) return check_refusal(prompt_status);
  const Status sp = tandem::services::check_prompt(ids, lim, context);
  if (!sp.ok()) return check_refusal(sp);
  FUZZ_CHECK(!ids.empty() && static_cast<int32_t>(ids.size()) < context);
  if (lim.max_prompt_tokens > 0) FUZZ_CHECK(static_cast<int32_t>(ids.size()) <= lim.max_prompt_tokens);
  for (int32_t id : ids) FUZZ_CHECK(tok.valid(id));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)model();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const auto& m = model();
  const tandem::core::Tokenizer& tok = *m.tok;
  RequestLimits lim;  // the defaults: no prompt or token limit of their own
  if (data[1] & 1) lim = RequestLimits{64, 32, 2, 8};
  const int32_t context = (data[1] & 2) ? 2048 : 48;
  const uint8_t* body = data + 2;
  const int n = static_cast<int>(size - 2);
  std::vector<int32_t> ids;
  switch (data[0] % 3) {
    case 0: {
      pb::GenerateRequest req;
      if (!req.ParseFromArray(body, n)) return 0;
      const Status s = tandem::services::generate_prompt(req, tok, ids);
      check_generation(req.options(), s, ids, lim, context, tok);
      break;
    }
    case 1: {
      pb::ChatRequest req;
      if (!req.ParseFromArray(body, n)) return 0;
      const Status s = tandem::services::chat_prompt(req, tok, m.chat_template, ids);
      check_generation(req.options(), s, ids, lim, context, tok);
      break;
    }
    default: {
      pb::DetokenizeRequest req;
      if (!req.ParseFromArray(body, n)) return 0;
      const Status s = tandem::services::detokenize_ids(req, tok, ids);
      if (!s.ok()) {
        check_refusal(s);
        break;
      }
      for (int32_t id : ids) FUZZ_CHECK(tok.valid(id));
      (void)tok.decode(ids, req.special());
      break;
    }
  }
  return 0;
}
