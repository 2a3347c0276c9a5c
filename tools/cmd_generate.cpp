// `tandem generate`: prompt (or chat) in, streamed text out, then timings.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "core/chat_template.h"
#include "core/error.h"
#include "core/sampler.h"
#include "core/stop_strings.h"
#include "core/tokenizer.h"
#include "tools/cli_common.h"

namespace tandem::cli {

namespace {

struct GenerateOptions {
  RunOptions run;
  std::string prompt;
  bool chat = false;
  std::string system;
  std::string chat_template;
  int n_predict = 128;
  core::SamplingParams sampling;
  std::vector<std::string> stops;
  bool no_bos = false;
  bool ignore_eos = false;
  bool special = false;  // parse special tokens in a plain prompt
  bool json = false;
};

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string build_prompt(const GenerateOptions& o, const core::gguf::File& file, const core::Tokenizer& tok) {
  if (!o.chat) return o.prompt;
  core::ChatTemplateKind kind;
  const auto src = file.get_string("tokenizer.chat_template").value_or("");
  if (!o.chat_template.empty()) {
    auto k = core::chat_template_from_name(o.chat_template);
    if (!k) throw core::Error("unknown --chat-template '" + o.chat_template + "' (use chatml, llama3, llama2 or mistral)");
    kind = *k;
  } else {
    kind = core::detect_chat_template(src);
  }
  std::vector<core::ChatMessage> msgs;
  if (!o.system.empty()) msgs.push_back({"system", o.system});
  msgs.push_back({"user", o.prompt});
  const std::string bos_text = tok.bos() >= 0 ? tok.token_piece(tok.bos(), true) : "";
  return core::render_chat(kind, msgs, true, bos_text, core::default_system_from_template(src));
}

int run_generate(const GenerateOptions& o) {
  o.sampling.validate();
  auto t_load = Clock::now();
  LoadedModel m = load_model(o.run);
  const double load_s = seconds_since(t_load);
  auto& tok = *m.tokenizer;
  auto& eng = *m.engine;

  const std::string prompt = build_prompt(o, *m.file, tok);
  const bool add_bos = !o.no_bos && tok.add_bos_default();
  std::vector<int32_t> prompt_ids = tok.encode(prompt, add_bos, o.chat || o.special);
  if (prompt_ids.empty()) throw core::Error("the prompt is empty after tokenization");
  const int ctx = o.run.ctx;
  if (static_cast<int>(prompt_ids.size()) >= ctx)
    throw core::Error("prompt has " + std::to_string(prompt_ids.size()) + " tokens, which does not fit the context of " +
                      std::to_string(ctx) + " (raise --ctx)");
  const int n_predict = o.n_predict < 0 ? ctx - static_cast<int>(prompt_ids.size())
                                        : std::min(o.n_predict, ctx - static_cast<int>(prompt_ids.size()));

  core::Sampler sampler(o.sampling, eng.config().n_vocab);
  for (int32_t id : prompt_ids) sampler.accept(id);
  core::StreamDecoder detok(tok);
  core::StopMatcher stop(o.stops);

  // Prefill in batches; logits of the last prompt token come back.
  std::vector<float> logits;  // [n_vocab]
  auto t_prefill = Clock::now();
  for (size_t i = 0; i < prompt_ids.size(); i += o.run.batch) {
    const size_t n = std::min<size_t>(o.run.batch, prompt_ids.size() - i);
    eng.forward(std::span<const int32_t>(prompt_ids.data() + i, n), 0, static_cast<int32_t>(i), false, logits);
  }
  const double prefill_s = seconds_since(t_prefill);

  std::vector<int32_t> out_ids;
  std::string text;
  std::string finish = "length";
  int32_t pos = static_cast<int32_t>(prompt_ids.size());
  auto emit = [&](const std::string& s) {
    if (s.empty()) return;
    text += s;
    if (!o.json) {
      std::fwrite(s.data(), 1, s.size(), stdout);
      std::fflush(stdout);
    }
  };
  int decode_steps = 0;
  auto t_decode = Clock::now();
  for (int step = 0; step < n_predict; ++step) {
    const int32_t id = sampler.sample(logits);
    sampler.accept(id);
    if (!o.ignore_eos && tok.is_end_of_generation(id)) {
      finish = "eos";
      break;
    }
    out_ids.push_back(id);
    auto r = stop.push(detok.push(id));
    emit(r.text);
    if (r.stopped) {
      finish = "stop";
      break;
    }
    if (step + 1 == n_predict || pos >= ctx) break;
    const int32_t one[1] = {id};
    eng.forward(std::span<const int32_t>(one, 1), 0, pos, false, logits);
    ++pos;
    ++decode_steps;
  }
  const double decode_s = seconds_since(t_decode);
  if (!stop.stopped()) emit(stop.push(detok.flush()).text + stop.flush());

  const double prefill_tps = prefill_s > 0 ? static_cast<double>(prompt_ids.size()) / prefill_s : 0.0;
  const double decode_tps = decode_s > 0 && !out_ids.empty() ? static_cast<double>(out_ids.size()) / decode_s : 0.0;
  if (o.json) {
    print_json({{"prompt", prompt},
                {"prompt_ids", prompt_ids},
                {"output_ids", out_ids},
                {"text", text},
                {"finish_reason", finish},
                {"seed", sampler.seed()},
                {"timings",
                 {{"load_s", load_s},
                  {"prefill_s", prefill_s},
                  {"decode_s", decode_s},
                  {"prompt_tokens", prompt_ids.size()},
                  {"generated_tokens", out_ids.size()},
                  {"prefill_tokens_per_s", prefill_tps},
                  {"decode_tokens_per_s", decode_tps},
                  {"threads", eng.threads()}}}});
  } else {
    std::fprintf(stderr, "\n\n[%zu prompt tokens: %.1f tok/s prefill | %zu generated: %.1f tok/s decode | %s | %d threads]\n",
                 prompt_ids.size(), prefill_tps, out_ids.size(), decode_tps, finish.c_str(), eng.threads());
  }
  return 0;
}

}  // namespace

void register_generate(CLI::App& app, Action& action) {
  auto o = std::make_shared<GenerateOptions>();
  auto* cmd = app.add_subcommand("generate", "generate text from a prompt, streaming it");
  o->run.add_to(*cmd);
  cmd->add_option("-p,--prompt", o->prompt, "prompt text (the user message with --chat)")->required();
  cmd->add_flag("--chat", o->chat, "wrap the prompt in the model's chat template");
  cmd->add_option("--system", o->system, "system message (with --chat)");
  cmd->add_option("--chat-template", o->chat_template, "chatml, llama3, llama2 or mistral (default: from the GGUF)");
  cmd->add_option("-n,--n-predict", o->n_predict, "tokens to generate (-1: until the context is full)");
  auto& s = o->sampling;
  cmd->add_option("--temp", s.temperature, "temperature (0: greedy)");
  cmd->add_option("--top-k", s.top_k, "top-k (0: off)");
  cmd->add_option("--top-p", s.top_p, "top-p (1: off)");
  cmd->add_option("--min-p", s.min_p, "min-p (0: off)");
  cmd->add_option("--repeat-penalty", s.repeat_penalty, "repetition penalty (1: off)");
  cmd->add_option("--repeat-last-n", s.repeat_last_n, "penalty window in tokens (-1: all)");
  cmd->add_option("--frequency-penalty", s.frequency_penalty, "frequency penalty");
  cmd->add_option("--presence-penalty", s.presence_penalty, "presence penalty");
  cmd->add_option("-s,--seed", s.seed, "random seed (default: random; reported with --json)");
  cmd->add_option("--stop", o->stops, "stop string (repeatable)");
  cmd->add_flag("--no-bos", o->no_bos, "do not add BOS");
  cmd->add_flag("--special", o->special, "parse special tokens in a plain prompt");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "keep generating past end-of-generation tokens");
  cmd->add_flag("--json", o->json, "one JSON document at the end (fields in docs/cli.md)");
  cmd->callback([o, &action] { action = [o] { return run_generate(*o); }; });
}

}  // namespace tandem::cli
