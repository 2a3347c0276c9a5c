#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/sampler.h"

using tandem::core::Error;
using tandem::core::Sampler;
using tandem::core::SamplingParams;

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Parameters that switch off every truncation, so a test enables exactly
// the stage it is about.
SamplingParams plain(float temperature = 1.0f, uint64_t seed = 42) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = seed;
  return p;
}

std::vector<float> random_logits(size_t n, uint32_t seed, float scale = 3.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

size_t argmax(const std::vector<float>& v) {
  return static_cast<size_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Logits whose softmax is `probs` (0 → -inf).
std::vector<float> logits_for(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(p > 0 ? static_cast<float>(std::log(p)) : kNegInf);
  return l;
}

std::map<int32_t, double> frequencies(Sampler& s, const std::vector<float>& logits, int n) {
  std::map<int32_t, int> counts;
  for (int i = 0; i < n; ++i) ++counts[s.sample(logits)];
  std::map<int32_t, double> f;
  for (auto [id, c] : counts) f[id] = static_cast<double>(c) / n;
  return f;
}

std::string error_of(auto&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace

TEST(Sampler, GreedyIsArgmax) {
  auto logits = random_logits(50000, 7);
  Sampler s(plain(0.0f), 50000);
  EXPECT_EQ(s.sample(logits), static_cast<int32_t>(argmax(logits)));
  // Ties go to the lowest id.
  std::vector<float> tie = {0.0f, 3.0f, 1.0f, 3.0f, 3.0f};
  Sampler t(plain(0.0f), 5);
  EXPECT_EQ(t.sample(tie), 1);
}

TEST(Sampler, GreedyIgnoresSeed) {
  auto logits = random_logits(1000, 3);
  Sampler a(plain(0.0f, 1), 1000), b(plain(0.0f, 2), 1000);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(a.sample(logits), b.sample(logits));
}

TEST(Sampler, SameSeedSameSequenceDifferentSeedDifferent) {
  auto logits = random_logits(32000, 11, 1.0f);  // flat enough for real randomness
  SamplingParams p;                              // defaults: top_k 40, top_p 0.95, min_p 0.05, temp 0.8
  p.seed = 1234;
  Sampler a(p, 32000), b(p, 32000);
  p.seed = 1235;
  Sampler c(p, 32000);
  std::vector<int32_t> sa, sb, sc;
  for (int i = 0; i < 200; ++i) {
    sa.push_back(a.sample(logits));
    sb.push_back(b.sample(logits));
    sc.push_back(c.sample(logits));
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
  EXPECT_GT(std::set<int32_t>(sa.begin(), sa.end()).size(), 5u);
}

TEST(Sampler, RandomSeedIsReportedAndReplayable) {
  auto logits = random_logits(1000, 5, 1.0f);
  SamplingParams p = plain(1.0f, SamplingParams::kRandomSeed);
  Sampler a(p, 1000);
  EXPECT_NE(a.seed(), SamplingParams::kRandomSeed);
  p.seed = a.seed();
  Sampler b(p, 1000);
  EXPECT_EQ(b.seed(), a.seed());
  for (int i = 0; i < 50; ++i) EXPECT_EQ(a.sample(logits), b.sample(logits));
  SamplingParams fixed = plain(1.0f, 99);
  EXPECT_EQ(Sampler(fixed, 10).seed(), 99u);
}

TEST(Sampler, TopK1EqualsGreedy) {
  SamplingParams p = plain(1.5f);
  p.top_k = 1;
  Sampler s(p, 50000);
  for (uint32_t seed = 0; seed < 20; ++seed) {
    auto logits = random_logits(50000, seed);
    EXPECT_EQ(s.sample(logits), static_cast<int32_t>(argmax(logits)));
  }
}

TEST(Sampler, TopKKeepsOnlyBestK) {
  auto logits = random_logits(50000, 21, 1.0f);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  std::set<int32_t> allowed(order.begin(), order.begin() + 5);
  SamplingParams p = plain(2.0f);
  p.top_k = 5;
  Sampler s(p, 50000);
  std::set<int32_t> seen;
  for (int i = 0; i < 500; ++i) seen.insert(s.sample(logits));
  EXPECT_EQ(seen, allowed);
}

TEST(Sampler, TopPRemovesTailAndRenormalises) {
  // ids: 0→0.05, 1→0.15, 3→0.5, 5→0.3; others impossible.
  auto logits = logits_for({0.05, 0.15, 0.0, 0.5, 0.0, 0.3, 0.0, 0.0});
  SamplingParams p = plain(1.0f);
  p.top_p = 0.75f;  // 0.5 + 0.3 reaches it: keep {3, 5}
  Sampler s(p, 8);
  auto f = frequencies(s, logits, 20000);
  ASSERT_EQ(f.size(), 2u);
  EXPECT_NEAR(f[3], 0.5 / 0.8, 0.02);
  EXPECT_NEAR(f[5], 0.3 / 0.8, 0.02);
}

namespace {
// Reference top-p set: full sort, shortest prefix whose mass reaches p.
std::set<int32_t> top_p_set(const std::vector<float>& logits, double top_p) {
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  const float mx = logits[order[0]];
  double sum = 0.0;
  for (float l : logits) sum += std::exp(static_cast<double>(l - mx));
  std::set<int32_t> allowed;
  double cum = 0.0;
  for (int32_t id : order) {
    allowed.insert(id);
    cum += std::exp(static_cast<double>(logits[id] - mx)) / sum;
    if (cum >= top_p) break;
  }
  return allowed;
}
}  // namespace

TEST(Sampler, TopPWithoutTopKOnLargeVocab) {
  // No top_k before top_p: the kept set is found without sorting the
  // vocabulary. Flat (scale 1: ~60k tokens kept) and peaked (scale 4).
  const size_t n = 100000;
  for (float scale : {1.0f, 4.0f}) {
    auto logits = random_logits(n, 99, scale);
    auto allowed = top_p_set(logits, 0.9);
    ASSERT_GT(allowed.size(), 256u);
    SamplingParams p = plain(1.0f);
    p.top_p = 0.9f;
    Sampler s(p, static_cast<int32_t>(n));
    for (int i = 0; i < 150; ++i) {
      int32_t id = s.sample(logits);
      ASSERT_TRUE(allowed.count(id)) << "token " << id << " outside the top-p set, scale " << scale;
    }
  }
}

TEST(Sampler, TopPExactCutInsideDenseBucket) {
  // Near-equal logits put hundreds of tokens in each histogram bucket, so
  // the cut falls inside one: every allowed token must show up, no other.
  const size_t n = 1000;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(0.0f, 0.5f);
  std::vector<float> logits(n);
  for (float& x : logits) x = u(rng);
  auto allowed = top_p_set(logits, 0.5);
  SamplingParams p = plain(1.0f);
  p.top_p = 0.5f;
  Sampler s(p, static_cast<int32_t>(n));
  std::set<int32_t> seen;
  for (int i = 0; i < 15000; ++i) seen.insert(s.sample(logits));
  EXPECT_EQ(seen, allowed);
}

TEST(Sampler, MinPRemovesTokensBelowFractionOfMax) {
  auto logits = logits_for({0.05, 0.15, 0.0, 0.5, 0.0, 0.3});
  SamplingParams p = plain(1.0f);
  p.min_p = 0.2f;  // keep p >= 0.1: drops id 0
  Sampler s(p, 6);
  auto f = frequencies(s, logits, 20000);
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f.count(0), 0u);
  EXPECT_NEAR(f[1], 0.15 / 0.95, 0.02);
  EXPECT_NEAR(f[3], 0.5 / 0.95, 0.02);
  EXPECT_NEAR(f[5], 0.3 / 0.95, 0.02);
}

TEST(Sampler, MinPAfterTopK) {
  auto logits = logits_for({0.05, 0.15, 0.0, 0.5, 0.0, 0.3});
  SamplingParams p = plain(1.0f);
  p.top_k = 3;     // {3, 5, 1}
  p.min_p = 0.5f;  // keep p >= 0.25: {3, 5}
  Sampler s(p, 6);
  auto f = frequencies(s, logits, 5000);
  EXPECT_EQ(f.size(), 2u);
  EXPECT_TRUE(f.count(3) && f.count(5));
}

TEST(Sampler, UntruncatedFrequenciesFollowSoftmaxWithTemperature) {
  auto logits = logits_for({0.6, 0.3, 0.1});
  {
    Sampler s(plain(1.0f), 3);
    auto f = frequencies(s, logits, 30000);
    EXPECT_NEAR(f[0], 0.6, 0.015);
    EXPECT_NEAR(f[1], 0.3, 0.015);
    EXPECT_NEAR(f[2], 0.1, 0.015);
  }
  {
    // T = 2: p ∝ sqrt(p).
    Sampler s(plain(2.0f), 3);
    auto f = frequencies(s, logits, 30000);
    double z = std::sqrt(0.6) + std::sqrt(0.3) + std::sqrt(0.1);
    EXPECT_NEAR(f[0], std::sqrt(0.6) / z, 0.015);
    EXPECT_NEAR(f[2], std::sqrt(0.1) / z, 0.015);
  }
}

TEST(Sampler, RepeatPenaltyChangesArgmax) {
  SamplingParams p = plain(0.0f);
  p.repeat_penalty = 1.1f;
  {
    Sampler s(p, 3);
    std::vector<float> l = {2.0f, 1.9f, -5.0f};
    EXPECT_EQ(s.sample(l), 0);
    s.accept(0);  // 2.0 / 1.1 = 1.82 < 1.9
    EXPECT_EQ(s.sample(l), 1);
  }
  {
    Sampler s(p, 3);
    std::vector<float> l = {-1.0f, -1.05f, -5.0f};
    s.accept(0);  // negative logits are multiplied: -1.1 < -1.05
    EXPECT_EQ(s.sample(l), 1);
  }
}

TEST(Sampler, RepeatPenaltyWindow) {
  SamplingParams p = plain(0.0f);
  p.repeat_penalty = 2.0f;
  p.repeat_last_n = 2;
  std::vector<float> l = {2.0f, 1.5f, 0.0f, 0.0f};
  Sampler s(p, 4);
  s.accept(0);
  EXPECT_EQ(s.sample(l), 1);
  s.accept(2);
  s.accept(3);  // 0 has left the 2-token window
  EXPECT_EQ(s.sample(l), 0);

  p.repeat_last_n = 0;  // off
  Sampler off(p, 4);
  off.accept(0);
  EXPECT_EQ(off.sample(l), 0);

  p.repeat_last_n = -1;  // whole history
  Sampler all(p, 4);
  all.accept(0);
  for (int i = 0; i < 500; ++i) all.accept(3);
  EXPECT_EQ(all.sample(l), 1);
  all.reset();
  EXPECT_EQ(all.sample(l), 0);
}

TEST(Sampler, FrequencyAndPresencePenalties) {
  std::vector<float> l = {2.0f, 1.5f};
  {
    SamplingParams p = plain(0.0f);
    p.frequency_penalty = 0.2f;  // 2.0 - 3 * 0.2 = 1.4 < 1.5
    Sampler s(p, 2);
    for (int i = 0; i < 3; ++i) s.accept(0);
    EXPECT_EQ(s.sample(l), 1);
  }
  {
    SamplingParams p = plain(0.0f);
    p.frequency_penalty = 0.1f;  // 2.0 - 0.3 = 1.7 > 1.5
    Sampler s(p, 2);
    for (int i = 0; i < 3; ++i) s.accept(0);
    EXPECT_EQ(s.sample(l), 0);
  }
  {
    SamplingParams p = plain(0.0f);
    p.presence_penalty = 0.4f;  // once, however often: 1.6 > 1.5
    Sampler s(p, 2);
    for (int i = 0; i < 10; ++i) s.accept(0);
    EXPECT_EQ(s.sample(l), 0);
    p.presence_penalty = 0.6f;  // 1.4 < 1.5
    Sampler t(p, 2);
    t.accept(0);
    EXPECT_EQ(t.sample(l), 1);
  }
}

TEST(Sampler, LastLogprob) {
  auto logits = logits_for({0.5, 0.25, 0.25});
  for (float& x : logits) x += 3.0f;  // shift-invariant
  Sampler s(plain(0.0f), 3);
  EXPECT_TRUE(std::isnan(s.last_logprob()));
  EXPECT_EQ(s.sample(logits), 0);
  EXPECT_NEAR(s.last_logprob(), std::log(0.5), 1e-5);

  // Truncation does not change it: it is the model's probability.
  SamplingParams p = plain(0.7f);
  p.top_k = 1;
  Sampler t(p, 3);
  EXPECT_EQ(t.sample(logits), 0);
  EXPECT_NEAR(t.last_logprob(), std::log(0.5), 1e-5);
}

TEST(Sampler, NonFiniteLogitsAreSafe) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> l = {nan, 1.0f, nan, 0.5f, kNegInf};
  SamplingParams p;  // full chain
  p.seed = 3;
  Sampler s(p, 5);
  for (int i = 0; i < 200; ++i) {
    int32_t id = s.sample(l);
    EXPECT_TRUE(id == 1 || id == 3) << id;
  }
  std::vector<float> inf = {0.0f, std::numeric_limits<float>::infinity(), 1.0f, kNegInf, 0.5f};
  EXPECT_EQ(s.sample(inf), 1);
  std::vector<float> all_neg_inf(5, kNegInf);
  int32_t id = s.sample(all_neg_inf);
  EXPECT_TRUE(id >= 0 && id < 5);
}

TEST(Sampler, ValidateRejectsEachBadField) {
  struct Case {
    const char* field;
    void (*mutate)(SamplingParams&);
  };
  constexpr float s_nan = std::numeric_limits<float>::quiet_NaN();
  constexpr float s_inf = std::numeric_limits<float>::infinity();
  const Case cases[] = {
      {"temperature", [](SamplingParams& p) { p.temperature = -0.1f; }},
      {"temperature", [](SamplingParams& p) { p.temperature = s_nan; }},
      {"top_p", [](SamplingParams& p) { p.top_p = 0.0f; }},
      {"top_p", [](SamplingParams& p) { p.top_p = 1.01f; }},
      {"top_p", [](SamplingParams& p) { p.top_p = s_nan; }},
      {"min_p", [](SamplingParams& p) { p.min_p = -0.01f; }},
      {"min_p", [](SamplingParams& p) { p.min_p = 1.5f; }},
      {"top_k", [](SamplingParams& p) { p.top_k = -1; }},
      {"repeat_penalty", [](SamplingParams& p) { p.repeat_penalty = 0.0f; }},
      {"repeat_penalty", [](SamplingParams& p) { p.repeat_penalty = -1.0f; }},
      {"repeat_penalty", [](SamplingParams& p) { p.repeat_penalty = s_inf; }},
      {"repeat_last_n", [](SamplingParams& p) { p.repeat_last_n = -2; }},
      {"frequency_penalty", [](SamplingParams& p) { p.frequency_penalty = s_inf; }},
      {"presence_penalty", [](SamplingParams& p) { p.presence_penalty = s_nan; }},
  };
  for (const Case& c : cases) {
    SamplingParams p;
    c.mutate(p);
    std::string msg = error_of([&] { p.validate(); });
    EXPECT_NE(msg.find(c.field), std::string::npos) << c.field << ": " << msg;
    EXPECT_THROW(Sampler(p, 10), Error) << c.field;
  }
  // Boundary values that are allowed.
  SamplingParams ok;
  ok.temperature = 0.0f;
  ok.top_p = 1.0f;
  ok.min_p = 0.0f;
  ok.top_k = 0;
  ok.repeat_last_n = -1;
  EXPECT_NO_THROW(ok.validate());
  ok.min_p = 1.0f;
  EXPECT_NO_THROW(ok.validate());
}

TEST(Sampler, MisuseThrows) {
  EXPECT_THROW(Sampler(SamplingParams{}, 0), Error);
  Sampler s(SamplingParams{}, 10);
  std::vector<float> wrong(9, 0.0f);
  EXPECT_THROW(s.sample(wrong), Error);
  EXPECT_THROW(s.accept(10), Error);
  EXPECT_THROW(s.accept(-1), Error);
  EXPECT_NO_THROW(s.accept(9));
}

// Not a benchmark, just a guard against an accidental O(n log n) per token:
// default chain over a 150k vocabulary.
TEST(Sampler, LargeVocabIsFast) {
  const int32_t n = 150000;
  auto logits = random_logits(n, 8, 2.0f);
  SamplingParams p;
  p.seed = 1;
  p.repeat_penalty = 1.1f;
  Sampler s(p, n);
  for (int i = 0; i < 64; ++i) s.accept(i * 7);
  auto t0 = std::chrono::steady_clock::now();
  const int iters = 200;
  for (int i = 0; i < iters; ++i) s.sample(logits);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / iters;
  std::printf("sample() over %d logits: %.3f ms\n", n, ms);
  EXPECT_LT(ms, 50.0);  // generous: sanitizer builds are slow
}
