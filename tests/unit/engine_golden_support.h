#pragma once
// Shared by the tests that hold the engine against llama.cpp's goldens
// (test_model_golden.cpp, test_iquant_smollm2.cpp): a model loaded with its
// tokenizer, greedy argmax, and llama-perplexity's chunked scoring.
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/gguf_file.h"
#include "core/perplexity.h"
#include "core/tokenizer.h"
#include "cpu_worker/llama_engine.h"

namespace tandem::test {

struct LoadedModel {
  std::shared_ptr<core::gguf::File> file;
  std::unique_ptr<core::Tokenizer> tok;
  std::unique_ptr<cpu::LlamaEngine> eng;
};

// The whole model in one CPU engine; the goldens' KV cache type (q8_0 for
// llama.cpp's flash-attention path) is the caller's choice.
inline LoadedModel load_model(const std::string& path, int ctx, core::quant::Type kv_type, int threads = 2) {
  LoadedModel l;
  l.file = std::shared_ptr<core::gguf::File>(core::gguf::File::open(path));
  l.tok = std::make_unique<core::Tokenizer>(core::vocab_from_gguf(*l.file));
  cpu::EngineOptions eo;
  eo.threads = threads;
  eo.kv.n_ctx = ctx;
  eo.kv.k_type = kv_type;
  eo.kv.v_type = kv_type;
  l.eng = std::make_unique<cpu::LlamaEngine>(l.file, cpu::ShardSpec{}, eo);
  return l;
}

inline int32_t argmax(const std::vector<float>& v) {
  int32_t best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[best]) best = static_cast<int32_t>(i);
  return best;
}

// Perplexity over the first `chunks` chunks of n_ctx tokens, each from an
// empty cache, scoring the second half of each (llama-perplexity's method).
inline double chunked_perplexity(const LoadedModel& l, const std::vector<int32_t>& tokens, int n_ctx, int chunks) {
  core::PerplexityAccumulator acc;
  std::vector<float> logits;  // [n_ctx][n_vocab]
  const int32_t n_vocab = l.eng->config().n_vocab;
  for (int c = 0; c < chunks; ++c) {
    const std::vector<int32_t> chunk(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
    l.eng->forward(chunk, 0, 0, true, logits);
    for (int i = n_ctx / 2; i < n_ctx - 1; ++i)
      acc.add(-core::log_softmax_at(std::span<const float>(logits.data() + static_cast<size_t>(i) * n_vocab, n_vocab),
                                    chunk[i + 1]));
  }
  return acc.ppl();
}

}  // namespace tandem::test
