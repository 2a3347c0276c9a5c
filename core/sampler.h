#pragma once
// Token sampler: turns one step's logits into a token id.
//
// Chain (the order of llama.cpp's default chain, so settings carry over):
//   penalties → top_k → top_p → min_p → temperature → softmax → draw.
// top_p and min_p therefore judge the distribution at temperature 1, as in
// llama.cpp. temperature <= 0 means greedy (argmax after penalties).
//
// Reproducibility: the draw uses std::mt19937_64 (whose output sequence the
// standard fixes) and a uniform built from its raw bits, never
// std::uniform_real_distribution (implementation-defined), so a given seed
// gives the same tokens with any standard library.
//
// Not thread-safe: one Sampler per sequence.
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace tandem::core {

struct SamplingParams {
  float temperature = 0.8f;        // <= 0: greedy
  int32_t top_k = 40;              // 0: disabled
  float top_p = 0.95f;             // 1: disabled
  float min_p = 0.05f;             // 0: disabled
  float repeat_penalty = 1.0f;     // 1: disabled
  int32_t repeat_last_n = 64;      // penalty window; 0: no penalties, -1: whole history
  float frequency_penalty = 0.0f;  // subtracted once per occurrence in the window
  float presence_penalty = 0.0f;   // subtracted once if present in the window
  // kRandomSeed (llama.cpp's LLAMA_DEFAULT_SEED) asks for a fresh random
  // seed; Sampler::seed() reports the one actually used.
  static constexpr uint64_t kRandomSeed = 0xFFFFFFFFu;
  uint64_t seed = kRandomSeed;

  // Throws core::Error naming the offending field.
  void validate() const;
};

class Sampler {
 public:
  // Validates `p` and n_vocab (> 0); throws core::Error.
  Sampler(SamplingParams p, int32_t n_vocab);

  // logits.size() must equal n_vocab (core::Error otherwise: a caller bug).
  // Greedy (temperature <= 0) returns the lowest id among the maxima and
  // does not advance the RNG. Does not record the token: call accept().
  int32_t sample(std::span<const float> logits);

  // Adds a token to the penalty history (prompt tokens too, if they should
  // count). Throws core::Error if token is outside [0, n_vocab).
  void accept(int32_t token);

  // Forgets the penalty history (new conversation); the RNG keeps going.
  void reset();

  uint64_t seed() const { return seed_; }
  const SamplingParams& params() const { return params_; }

  // Natural-log probability of the last sampled token under the model's
  // distribution after penalties, before truncation and temperature (what
  // an OpenAI-style `logprobs` field reports). Computed on demand, so
  // callers who never ask pay nothing. NaN before the first sample().
  float last_logprob() const;

 private:
  struct Candidate {
    int32_t id;
    float logit;
  };

  void apply_penalties();
  void sort_prefix(size_t k);   // top k of cand_[0, n_) sorted into cand_[0, k)
  void fill_candidates();       // cand_[0, n_) = every token, in id order
  void select_top_k(size_t k);  // cand_[0, k) = the best k tokens, sorted
  void apply_top_p();
  void apply_min_p();
  size_t draw();  // index into cand_[0, n_)

  SamplingParams params_;
  int32_t n_vocab_;
  uint64_t seed_;
  std::mt19937_64 rng_;

  // Scratch, sized n_vocab once: sample() does not allocate.
  // logits_ holds this step's penalized logits by id; it is kept unchanged
  // after sample() so last_logprob() can be computed lazily from it.
  std::vector<float> logits_;
  std::vector<Candidate> cand_;  // live candidates are cand_[0, n_)
  std::vector<float> probs_;
  std::vector<double> bucket_mass_;  // top_p histogram
  std::vector<int32_t> counts_;      // per-token counts in the window, kept all-zero between calls
  size_t n_ = 0;
  bool sorted_ = false;  // cand_[0, n_) sorted by logit desc, id asc

  // Penalty history: a ring of the last repeat_last_n tokens, or a plain
  // growing list when repeat_last_n == -1.
  std::vector<int32_t> hist_;
  size_t hist_head_ = 0;  // next write position when the ring is full

  int32_t last_id_ = -1;  // -1: nothing sampled yet
  mutable bool logprob_valid_ = false;
  mutable float logprob_cache_ = 0.0f;
};

}  // namespace tandem::core
