#include "core/sampler.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "core/error.h"

namespace tandem::core {

namespace {

[[noreturn]] void bad_param(const char* field, const std::string& rule, double got) {
  std::ostringstream os;
  os << "sampling parameter " << field << " " << rule << " (got " << got << ")";
  throw Error(os.str());
}

void require_finite(const char* field, float v) {
  if (!std::isfinite(v)) bad_param(field, "must be a finite number", v);
}

// A NaN in the logits (a broken forward pass) would violate the strict weak
// ordering std::nth_element/std::sort rely on, which is undefined behaviour;
// +inf would turn the softmax into inf/inf. Map both to values the rest of
// the chain handles: NaN is never chosen, +inf is simply the maximum.
inline float sanitize(float x) {
  if (std::isnan(x)) return -std::numeric_limits<float>::infinity();
  if (x > FLT_MAX) return FLT_MAX;
  return x;
}

// Uniform double in [0, 1) from the top 53 bits of one 64-bit draw: exact,
// and the same on every platform (unlike std::uniform_real_distribution).
inline double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

uint64_t random_seed() {
  std::random_device rd;
  uint64_t s;
  // Never hand out the sentinel itself: a user replaying seed() must get
  // this run again, not a fresh random seed.
  do {
    s = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  } while (s == SamplingParams::kRandomSeed);
  return s;
}

}  // namespace

void SamplingParams::validate() const {
  require_finite("temperature", temperature);
  require_finite("top_p", top_p);
  require_finite("min_p", min_p);
  require_finite("repeat_penalty", repeat_penalty);
  require_finite("frequency_penalty", frequency_penalty);
  require_finite("presence_penalty", presence_penalty);
  if (temperature < 0.0f) bad_param("temperature", "must be >= 0", temperature);
  if (!(top_p > 0.0f && top_p <= 1.0f)) bad_param("top_p", "must be in (0, 1]", top_p);
  if (!(min_p >= 0.0f && min_p <= 1.0f)) bad_param("min_p", "must be in [0, 1]", min_p);
  if (top_k < 0) bad_param("top_k", "must be >= 0 (0 disables it)", top_k);
  if (repeat_penalty <= 0.0f) bad_param("repeat_penalty", "must be > 0", repeat_penalty);
  if (repeat_last_n < -1) {
    bad_param("repeat_last_n", "must be >= -1 (-1: whole history, 0: off)", repeat_last_n);
  }
}

Sampler::Sampler(SamplingParams p, int32_t n_vocab) : params_(p), n_vocab_(n_vocab) {
  params_.validate();
  if (n_vocab <= 0) throw Error("sampler: n_vocab must be > 0, got " + std::to_string(n_vocab));
  seed_ = params_.seed == SamplingParams::kRandomSeed ? random_seed() : params_.seed;
  rng_.seed(seed_);
  logits_.resize(static_cast<size_t>(n_vocab));
  cand_.resize(static_cast<size_t>(n_vocab));
  probs_.resize(static_cast<size_t>(n_vocab));
  counts_.assign(static_cast<size_t>(n_vocab), 0);
  bucket_mass_.resize(1024);
  if (params_.repeat_last_n > 0) hist_.reserve(static_cast<size_t>(params_.repeat_last_n));
}

void Sampler::accept(int32_t token) {
  if (token < 0 || token >= n_vocab_) {
    throw Error("sampler: token id " + std::to_string(token) + " outside vocabulary of " + std::to_string(n_vocab_));
  }
  const int32_t n = params_.repeat_last_n;
  if (n == 0) return;  // nothing would ever read it
  if (n < 0 || hist_.size() < static_cast<size_t>(n)) {
    hist_.push_back(token);
  } else {
    hist_[hist_head_] = token;
    hist_head_ = (hist_head_ + 1) % static_cast<size_t>(n);
  }
}

void Sampler::reset() {
  hist_.clear();
  hist_head_ = 0;
}

void Sampler::apply_penalties() {
  const SamplingParams& p = params_;
  if (hist_.empty()) return;
  if (p.repeat_penalty == 1.0f && p.frequency_penalty == 0.0f && p.presence_penalty == 0.0f) return;

  for (int32_t t : hist_) ++counts_[static_cast<size_t>(t)];
  for (int32_t t : hist_) {
    int32_t& count = counts_[static_cast<size_t>(t)];
    if (count == 0) continue;  // a repeat of a token already handled below
    float& l = logits_[static_cast<size_t>(t)];
    // Dividing a negative logit would raise it, so negative ones are
    // multiplied instead (llama.cpp / CTRL convention): both make t less likely.
    if (p.repeat_penalty != 1.0f) {
      if (l <= 0.0f) {
        l *= p.repeat_penalty;
      } else {
        l /= p.repeat_penalty;
      }
    }
    l -= static_cast<float>(count) * p.frequency_penalty + p.presence_penalty;
    count = 0;  // marks t done and leaves counts_ all-zero for the next call
  }
}

namespace {
// Logit descending, then id ascending: a strict total order (no NaN), so the
// kept set and its order never depend on how the library breaks ties.
inline bool better(const auto& a, const auto& b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); }
}  // namespace

void Sampler::sort_prefix(size_t k) {
  auto first = cand_.begin();
  auto last = first + static_cast<std::ptrdiff_t>(n_);
  if (k < n_) {
    // O(n) selection then O(k log k): a full sort of a 150k vocabulary per
    // token would cost milliseconds.
    auto kth = first + static_cast<std::ptrdiff_t>(k);
    std::nth_element(first, kth, last, [](const Candidate& a, const Candidate& b) { return better(a, b); });
    std::sort(first, kth, [](const Candidate& a, const Candidate& b) { return better(a, b); });
  } else {
    std::sort(first, last, [](const Candidate& a, const Candidate& b) { return better(a, b); });
  }
}

void Sampler::fill_candidates() {
  for (size_t i = 0; i < logits_.size(); ++i) cand_[i] = Candidate{static_cast<int32_t>(i), logits_[i]};
  n_ = logits_.size();
  sorted_ = false;
}

void Sampler::select_top_k(size_t k) {
  const size_t n = logits_.size();
  if (k * 8 >= n) {  // large k: selection over a full copy is cheaper
    fill_candidates();
    sort_prefix(k);
  } else {
    // One pass over the logits keeping the best k in a heap whose front is
    // the worst kept. Nearly every logit loses the single comparison with
    // that front, so this costs about one predictable branch per token,
    // far less than copying and selecting over the whole vocabulary.
    auto cmp = [](const Candidate& a, const Candidate& b) { return better(a, b); };
    auto first = cand_.begin();
    auto last = first + static_cast<std::ptrdiff_t>(k);
    for (size_t i = 0; i < k; ++i) cand_[i] = Candidate{static_cast<int32_t>(i), logits_[i]};
    std::make_heap(first, last, cmp);
    for (size_t i = k; i < n; ++i) {
      // Strict '>': an equal logit at a later (higher) id never beats a kept one.
      if (logits_[i] > cand_[0].logit) {
        std::pop_heap(first, last, cmp);
        cand_[k - 1] = Candidate{static_cast<int32_t>(i), logits_[i]};
        std::push_heap(first, last, cmp);
      }
    }
    std::sort(first, last, cmp);
  }
  n_ = k;
  sorted_ = true;
}

void Sampler::apply_top_p() {
  const double p = params_.top_p;
  if (p >= 1.0 || n_ <= 1) return;

  float max_l = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < n_; ++i) max_l = std::max(max_l, cand_[i].logit);
  if (max_l == -std::numeric_limits<float>::infinity()) return;  // nothing to rank

  // Keep the shortest best-first prefix whose mass reaches p (at least one
  // token; if rounding never lets the mass reach p, keep everything).
  if (sorted_) {  // after top_k: a short sorted list
    double sum = 0.0;
    for (size_t i = 0; i < n_; ++i) sum += std::exp(cand_[i].logit - max_l);
    double cum = 0.0;
    for (size_t i = 0; i < n_; ++i) {
      cum += std::exp(cand_[i].logit - max_l) / sum;
      if (cum >= p) {
        n_ = i + 1;
        return;
      }
    }
    return;
  }

  // Unsorted (top_k off): the kept prefix can be tens of thousands of
  // tokens for a flat distribution, so sorting the vocabulary is too slow.
  // Instead, histogram the mass by logit distance from the maximum, find
  // the bucket where the cumulative mass reaches p, keep every token above
  // it unsorted, and sort only that boundary bucket to place the exact cut.
  constexpr size_t kBuckets = 1024;
  constexpr float kRange = 32.0f;  // exp(-32) ~ 1e-14: the rest shares the last bucket
  constexpr float kScale = static_cast<float>(kBuckets) / kRange;
  auto bucket_of = [&](float l) -> size_t {
    const float d = max_l - l;  // >= 0; +inf for -inf logits
    return d < kRange ? std::min(static_cast<size_t>(d * kScale), kBuckets - 1) : kBuckets - 1;
  };
  std::fill(bucket_mass_.begin(), bucket_mass_.end(), 0.0);
  double sum = 0.0;
  for (size_t i = 0; i < n_; ++i) {
    const float e = std::exp(cand_[i].logit - max_l);
    bucket_mass_[bucket_of(cand_[i].logit)] += e;
    sum += e;
  }
  size_t edge = kBuckets - 1;
  double cum = 0.0;  // mass of the buckets before `edge`
  for (size_t b = 0; b < kBuckets; ++b) {
    if (cum + bucket_mass_[b] / sum >= p) {
      edge = b;
      break;
    }
    cum += bucket_mass_[b] / sum;
  }
  // Hand-written partitions (not std::partition, whose order is up to the
  // library): the order of kept tokens feeds the draw, and a seed must give
  // the same tokens everywhere.
  size_t above = 0;
  for (size_t i = 0; i < n_; ++i) {
    if (bucket_of(cand_[i].logit) < edge) std::swap(cand_[above++], cand_[i]);
  }
  size_t end = above;
  for (size_t i = above; i < n_; ++i) {
    if (bucket_of(cand_[i].logit) == edge) std::swap(cand_[end++], cand_[i]);
  }
  std::sort(cand_.begin() + static_cast<std::ptrdiff_t>(above), cand_.begin() + static_cast<std::ptrdiff_t>(end),
            [](const Candidate& a, const Candidate& b) { return better(a, b); });
  n_ = end;
  for (size_t i = above; i < end; ++i) {
    cum += std::exp(cand_[i].logit - max_l) / sum;
    if (cum >= p) {
      n_ = i + 1;
      break;
    }
  }
  // cand_[0, n_) is no longer sorted as a whole; min_p copes.
}

void Sampler::apply_min_p() {
  const float mp = params_.min_p;
  if (mp <= 0.0f || n_ <= 1) return;
  float max_l = -std::numeric_limits<float>::infinity();
  if (sorted_) {
    max_l = cand_[0].logit;
  } else {
    for (size_t i = 0; i < n_; ++i) max_l = std::max(max_l, cand_[i].logit);
  }
  // p_i >= min_p * p_max  <=>  logit_i >= max_logit + ln(min_p): no softmax needed.
  const float thresh = max_l + std::log(mp);
  if (sorted_) {
    size_t keep = 1;  // the maximum always passes
    while (keep < n_ && cand_[keep].logit >= thresh) ++keep;
    n_ = keep;
  } else {
    // Compact kept candidates to the front, keeping their order.
    size_t w = 0;
    for (size_t i = 0; i < n_; ++i) {
      if (cand_[i].logit >= thresh) cand_[w++] = cand_[i];
    }
    n_ = std::max<size_t>(w, 1);
  }
}

size_t Sampler::draw() {
  float max_l = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < n_; ++i) max_l = std::max(max_l, cand_[i].logit);
  const float inv_t = 1.0f / params_.temperature;
  double sum = 0.0;
  if (max_l != -std::numeric_limits<float>::infinity()) {
    for (size_t i = 0; i < n_; ++i) {
      // Subtract before scaling so FLT_MAX logits and tiny temperatures
      // cannot overflow to inf - inf.
      float e = std::exp((cand_[i].logit - max_l) * inv_t);
      probs_[i] = e;
      sum += e;
    }
  }
  if (!(sum > 0.0) || !std::isfinite(sum)) {
    // Degenerate (all -inf): fall back to the best candidate, no RNG use.
    size_t best = 0;
    for (size_t i = 1; i < n_; ++i) {
      if (better(cand_[i], cand_[best])) best = i;
    }
    return best;
  }
  const double target = uniform01(rng_) * sum;
  double cum = 0.0;
  size_t last_nonzero = 0;
  for (size_t i = 0; i < n_; ++i) {
    if (probs_[i] <= 0.0f) continue;
    cum += probs_[i];
    last_nonzero = i;
    if (cum > target) return i;
  }
  return last_nonzero;  // rounding left target >= cum
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (logits.size() != static_cast<size_t>(n_vocab_)) {
    throw Error("sampler: got " + std::to_string(logits.size()) + " logits, vocabulary has " +
                std::to_string(n_vocab_));
  }
  for (size_t i = 0; i < logits.size(); ++i) logits_[i] = sanitize(logits[i]);
  logprob_valid_ = false;

  apply_penalties();

  if (params_.temperature <= 0.0f) {
    // Greedy: strict '>' in id order keeps the lowest id among ties.
    size_t best = 0;
    for (size_t i = 1; i < logits_.size(); ++i) {
      if (logits_[i] > logits_[best]) best = i;
    }
    last_id_ = static_cast<int32_t>(best);
    return last_id_;
  }

  const int32_t k = params_.top_k;
  if (k > 0 && k < n_vocab_) {
    select_top_k(static_cast<size_t>(k));
  } else {
    fill_candidates();
  }
  apply_top_p();
  apply_min_p();
  last_id_ = cand_[draw()].id;
  return last_id_;
}

float Sampler::last_logprob() const {
  if (last_id_ < 0) return std::numeric_limits<float>::quiet_NaN();
  if (!logprob_valid_) {
    float max_l = -std::numeric_limits<float>::infinity();
    for (float l : logits_) max_l = std::max(max_l, l);
    if (max_l == -std::numeric_limits<float>::infinity()) {
      logprob_cache_ = -std::log(static_cast<float>(n_vocab_));  // all equal
    } else {
      double sum = 0.0;
      for (float l : logits_) sum += std::exp(static_cast<double>(l - max_l));
      const float chosen = logits_[static_cast<size_t>(last_id_)];
      logprob_cache_ = static_cast<float>(static_cast<double>(chosen - max_l) - std::log(sum));
    }
    logprob_valid_ = true;
  }
  return logprob_cache_;
}

}  // namespace tandem::core
