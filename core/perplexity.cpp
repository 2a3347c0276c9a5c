#include "core/perplexity.h"

#include <cmath>

#include "core/error.h"

namespace tandem::core {

double log_softmax_at(std::span<const float> logits, int32_t token) {
  if (token < 0 || static_cast<size_t>(token) >= logits.size()) throw Error("log_softmax_at: token out of range");
  float mx = logits[0];
  for (float l : logits) mx = l > mx ? l : mx;
  double sum = 0.0;
  for (float l : logits) sum += std::exp(static_cast<double>(l - mx));
  return static_cast<double>(logits[token] - mx) - std::log(sum);
}

void PerplexityAccumulator::add(double nll) {
  sum_ += nll;
  sum2_ += nll * nll;
  ++count_;
}

double PerplexityAccumulator::mean_nll() const { return count_ ? sum_ / static_cast<double>(count_) : 0.0; }

double PerplexityAccumulator::ppl() const { return std::exp(mean_nll()); }

double PerplexityAccumulator::error() const {
  if (count_ < 2) return 0.0;
  const double mean = mean_nll();
  const double var = sum2_ / static_cast<double>(count_) - mean * mean;
  if (var <= 0) return 0.0;
  return ppl() * std::sqrt(var / static_cast<double>(count_ - 1));
}

}  // namespace tandem::core
