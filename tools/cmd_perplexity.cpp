// `tandem perplexity`: llama-perplexity's method (see core/perplexity.h).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/perplexity.h"
#include "tools/cli_common.h"

namespace tandem::cli {

namespace {

struct PerplexityOptions {
  RunOptions run;
  std::string text_file;
  int chunks = -1;  // -1: all
  bool json = false;
};

int run_perplexity(PerplexityOptions o) {
  if (o.run.ctx == 4096) o.run.ctx = 512;  // llama-perplexity's customary context unless given
  std::ifstream in(o.text_file, std::ios::binary);
  if (!in) throw core::Error("cannot read text file '" + o.text_file + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();

  LoadedModel m = load_model(o.run);
  auto& tok = *m.tokenizer;
  auto& eng = *m.engine;
  const int n_ctx = o.run.ctx;
  std::vector<int32_t> tokens = tok.encode(text, tok.add_bos_default(), false);
  if (static_cast<int>(tokens.size()) < 2 * n_ctx)
    throw core::Error("the text has " + std::to_string(tokens.size()) + " tokens; perplexity at a context of " +
                      std::to_string(n_ctx) + " needs at least " + std::to_string(2 * n_ctx));
  int n_chunk = static_cast<int>(tokens.size()) / n_ctx;
  if (o.chunks > 0 && o.chunks < n_chunk) n_chunk = o.chunks;
  const int first = n_ctx / 2;
  const int32_t n_vocab = eng.config().n_vocab;

  core::PerplexityAccumulator acc;
  std::vector<float> logits;  // [n × n_vocab] for one batch
  std::vector<float> chunk_logits(static_cast<size_t>(n_ctx) * n_vocab);  // [n_ctx × n_vocab]
  nlohmann::json per_chunk = nlohmann::json::array();
  auto t0 = std::chrono::steady_clock::now();
  for (int c = 0; c < n_chunk; ++c) {
    const int start = c * n_ctx;
    std::vector<int32_t> chunk(tokens.begin() + start, tokens.begin() + start + n_ctx);
    if (tok.add_bos_default()) chunk[0] = tok.bos();  // as llama-perplexity: each chunk starts with BOS
    for (int b = 0; b < n_ctx; b += o.run.batch) {
      const int n = std::min(o.run.batch, n_ctx - b);
      eng.forward(std::span<const int32_t>(chunk.data() + b, n), 0, b, true, logits);
      std::copy(logits.begin(), logits.end(), chunk_logits.begin() + static_cast<size_t>(b) * n_vocab);
    }
    for (int i = first; i < n_ctx - 1; ++i) {
      const std::span<const float> row(chunk_logits.data() + static_cast<size_t>(i) * n_vocab, n_vocab);
      acc.add(-core::log_softmax_at(row, tokens[start + i + 1]));
    }
    per_chunk.push_back(acc.ppl());
    if (!o.json) {
      std::fprintf(stderr, "[%d]%.4f,", c + 1, acc.ppl());
      std::fflush(stderr);
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (o.json) {
    print_json({{"ppl", acc.ppl()},
                {"error", acc.error()},
                {"ctx", n_ctx},
                {"chunks", n_chunk},
                {"tokens", tokens.size()},
                {"scored", acc.count()},
                {"cache_type_k", o.run.cache_type_k},
                {"cache_type_v", o.run.cache_type_v},
                {"seconds", secs},
                {"ppl_after_chunk", per_chunk}});
  } else {
    std::fprintf(stderr, "\n");
    std::printf("Final estimate: PPL = %.4f +/- %.5f  (%d chunks of %d, %lld scored tokens, %.1f s)\n", acc.ppl(),
                acc.error(), n_chunk, n_ctx, static_cast<long long>(acc.count()), secs);
  }
  return 0;
}

}  // namespace

void register_perplexity(CLI::App& app, Action& action) {
  auto o = std::make_shared<PerplexityOptions>();
  auto* cmd = app.add_subcommand("perplexity", "perplexity of a text file (llama-perplexity's method)");
  o->run.add_to(*cmd);
  cmd->add_option("-f,--file", o->text_file, "text file")->required();
  cmd->add_option("--chunks", o->chunks, "evaluate at most this many chunks");
  cmd->add_flag("--json", o->json, "one JSON document (fields in docs/cli.md)");
  cmd->callback([o, &action] { action = [o] { return run_perplexity(*o); }; });
}

}  // namespace tandem::cli
