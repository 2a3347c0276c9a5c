#pragma once
// Perplexity the way llama.cpp's llama-perplexity computes it: the text is cut
// into non-overlapping chunks of n_ctx tokens, each chunk is evaluated from an
// empty cache, and only the second half of each chunk is scored (so every
// scored token sees at least n_ctx/2 tokens of context).
#include <cstdint>
#include <span>

namespace tandem::core {

// log p(token) under softmax(logits): logits[token] - max - log Σ exp(l - max),
// the sum taken in double.
double log_softmax_at(std::span<const float> logits, int32_t token);

class PerplexityAccumulator {
 public:
  // Adds one scored prediction with negative log-likelihood nll.
  void add(double nll);
  int64_t count() const { return count_; }
  double ppl() const;    // exp(mean nll)
  // llama-perplexity's "± error": ppl * sqrt(var(nll) / (count - 1)).
  double error() const;
  double mean_nll() const;

 private:
  double sum_ = 0.0, sum2_ = 0.0;
  int64_t count_ = 0;
};

}  // namespace tandem::core
