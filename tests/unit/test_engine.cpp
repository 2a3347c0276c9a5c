// The CPU forward pass on synthetic models: consistency properties that must
// hold whatever the weights (the SmolLM2 goldens check it against llama.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "core/error.h"
#include "core/gguf_file.h"
#include "core/quant_blocks.h"
#include "core/synthetic_model.h"
#include "cpu_worker/llama_engine.h"
#include "cpu_worker/matmul.h"
#include "cpu_worker/repack_x4.h"
#include "cpu_worker/repack_x8.h"
#include "cpu_worker/simd_dot.h"
#include "cpu_worker/swiglu.h"

namespace tandem {
namespace {

using core::quant::Type;

class EngineTest : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    path_ = testing::TempDir() + "tandem_engine_" + GetParam() + "_" + std::to_string(::getpid()) + ".gguf";
    core::SyntheticModelSpec s;
    s.arch = GetParam();
    s.n_layer = 4;
    s.n_embd = 128;
    s.n_ff = 256;
    s.n_head = 4;
    s.n_head_kv = 2;
    s.weight_type = Type::Q4_1;
    core::write_synthetic_model(path_, s);
    file_ = std::shared_ptr<core::gguf::File>(core::gguf::File::open(path_));
  }
  void TearDown() override { std::filesystem::remove(path_); }

  std::unique_ptr<cpu::LlamaEngine> engine(cpu::ShardSpec spec = {}, Type kv = Type::F16, int threads = 2) {
    cpu::EngineOptions eo;
    eo.threads = threads;
    eo.kv.n_ctx = 64;
    eo.kv.k_type = kv;
    eo.kv.v_type = kv;
    return std::make_unique<cpu::LlamaEngine>(file_, spec, eo);
  }

  std::string path_;
  std::shared_ptr<core::gguf::File> file_;
  const std::vector<int32_t> ids_ = {72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100};
};

// A batch and the same tokens one at a time give identical logits: the
// decode path and the prefill path are the same computation.
TEST_P(EngineTest, BatchEqualsOneTokenAtATime) {
  auto a = engine(), b = engine();
  std::vector<float> all, one;
  a->forward(ids_, 0, 0, true, all);
  const size_t nv = a->config().n_vocab;
  for (size_t i = 0; i < ids_.size(); ++i) {
    b->forward(std::span<const int32_t>(&ids_[i], 1), 0, static_cast<int32_t>(i), false, one);
    for (size_t v = 0; v < nv; ++v) ASSERT_EQ(one[v], all[i * nv + v]) << "position " << i << " token " << v;
  }
}

// Thread count changes nothing: every output element is computed by one thread.
TEST_P(EngineTest, ThreadCountDoesNotChangeResults) {
  std::vector<float> l1, l2;
  engine({}, Type::F16, 1)->forward(ids_, 0, 0, true, l1);
  engine({}, Type::F16, 2)->forward(ids_, 0, 0, true, l2);
  EXPECT_EQ(l1, l2);
}

// Two shards (layers [0,2) with the embedding, [2,4) with the head) passing
// hidden rows between them equal one whole-model engine: the split service's
// contract.
TEST_P(EngineTest, SplitShardsEqualWholeModel) {
  auto whole = engine();
  auto first = engine(cpu::ShardSpec{0, 2, true, false});
  auto second = engine(cpu::ShardSpec{2, 4, false, true});
  const int32_t d = whole->config().n_embd, nv = whole->config().n_vocab;
  std::vector<float> want;
  whole->forward(ids_, 0, 0, true, want);
  std::vector<float> hidden(ids_.size() * d), logits(ids_.size() * nv);
  first->embed(ids_, hidden.data());
  first->run_layers(hidden.data(), static_cast<int32_t>(ids_.size()), 0, 0);
  second->run_layers(hidden.data(), static_cast<int32_t>(ids_.size()), 0, 0);
  second->head(hidden.data(), static_cast<int32_t>(ids_.size()), logits.data());
  EXPECT_EQ(logits, want);
  EXPECT_THROW(first->head(hidden.data(), 1, logits.data()), core::Error);
  EXPECT_THROW(second->embed(ids_, hidden.data()), core::Error);
}

// Continuous batching: rows of three sequences interleaved in one batch
// (prompts of different lengths, then decode rows) give each sequence exactly
// the hidden rows it gets alone. This is the batch invariance the service's
// concurrent streams rely on.
TEST_P(EngineTest, MixedSequenceBatchEqualsEachSequenceAlone) {
  cpu::EngineOptions eo;
  eo.threads = 2;
  eo.kv.n_ctx = 64;
  eo.kv.n_seq = 3;
  cpu::LlamaEngine mixed(file_, {}, eo), alone(file_, {}, eo);
  const int32_t d = mixed.config().n_embd;
  const std::vector<std::vector<int32_t>> seqs = {{72, 101, 108}, {108, 111, 44, 32, 119}, {111}};
  // Reference: each sequence's rows on its own.
  std::vector<std::vector<float>> want(seqs.size());
  for (size_t s = 0; s < seqs.size(); ++s) {
    want[s].resize(seqs[s].size() * d);
    alone.embed(seqs[s], want[s].data());
    alone.run_layers(want[s].data(), static_cast<int32_t>(seqs[s].size()), static_cast<int32_t>(s), 0);
  }
  // Mixed: rows of all three sequences, interleaved, in one batch.
  std::vector<cpu::RowPos> rows;
  std::vector<int32_t> toks;
  std::vector<std::pair<size_t, size_t>> where;  // (sequence, index)
  for (size_t i = 0; i < 5; ++i)
    for (size_t s = 0; s < seqs.size(); ++s)
      if (i < seqs[s].size()) {
        rows.push_back({static_cast<int32_t>(s), static_cast<int32_t>(i)});
        toks.push_back(seqs[s][i]);
        where.emplace_back(s, i);
      }
  std::vector<float> hidden(toks.size() * d);
  mixed.embed(toks, hidden.data());
  mixed.run_layers(hidden.data(), rows);
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto [s, i] = where[r];
    for (int32_t j = 0; j < d; ++j)
      ASSERT_EQ(hidden[r * d + j], want[s][i * d + j]) << "sequence " << s << " position " << i;
  }
  // Out-of-range slots and positions are errors, not memory corruption.
  std::vector<cpu::RowPos> bad = {{3, 0}};
  EXPECT_THROW(mixed.run_layers(hidden.data(), bad), core::Error);
  bad = {{0, 64}};
  EXPECT_THROW(mixed.run_layers(hidden.data(), bad), core::Error);
}

// The same with weights whose float steps depend on the batch (K-quants and
// i-quants: cpu_worker/matmul.h): four sequences side by side in one batch,
// each a run of consecutive rows as the scheduler sends them — a decode row,
// a 9-row prompt chunk (the batch arithmetic), a 5-row one (Q4_K's four-row
// gemm order for four of them), two rows — give each sequence the bits it
// gets alone. Without the runs (one arithmetic for the whole batch) the
// sequences' rows would take other float steps than alone.
TEST(EngineRuns, RunsOfOneSequenceEqualThatSequenceAlone) {
  for (const bool mix : {true, false}) {
    SCOPED_TRACE(mix ? "Q3_K_M mix" : "IQ3_S");
    const std::string path = testing::TempDir() + "tandem_runs_" + std::to_string(::getpid()) + ".gguf";
    core::SyntheticModelSpec spec;
    spec.n_layer = 2;
    spec.n_embd = 256;
    spec.n_ff = 512;
    if (mix) spec.mix = core::QuantMix::Q3_K_M;  // Q3_K, Q4_K, Q5_K, Q6_K matrices
    else spec.weight_type = Type::IQ3_S;
    core::write_synthetic_model(path, spec);
    const auto file = std::shared_ptr<core::gguf::File>(core::gguf::File::open(path));
    std::filesystem::remove(path);
    cpu::EngineOptions eo;
    eo.threads = 2;
    eo.kv.n_ctx = 64;
    eo.kv.n_seq = 4;
    cpu::LlamaEngine mixed(file, {}, eo), alone(file, {}, eo);
    const int32_t d = mixed.config().n_embd;
    const std::vector<int32_t> lengths = {1, 9, 5, 2};
    std::vector<std::vector<float>> want(lengths.size());
    std::vector<cpu::RowPos> rows;
    std::vector<int32_t> toks;
    for (size_t q = 0; q < lengths.size(); ++q) {
      std::vector<int32_t> t;
      for (int32_t i = 0; i < lengths[q]; ++i) t.push_back(static_cast<int32_t>(33 + 17 * q + 5 * i));
      want[q].resize(t.size() * d);
      alone.embed(t, want[q].data());
      alone.run_layers(want[q].data(), lengths[q], static_cast<int32_t>(q), 0);
      for (int32_t i = 0; i < lengths[q]; ++i) rows.push_back({static_cast<int32_t>(q), i});
      toks.insert(toks.end(), t.begin(), t.end());
    }
    std::vector<float> hidden(toks.size() * d);
    mixed.embed(toks, hidden.data());
    mixed.run_layers(hidden.data(), rows);
    size_t r = 0;
    for (size_t q = 0; q < lengths.size(); ++q)
      for (int32_t i = 0; i < lengths[q]; ++i, ++r)
        for (int32_t j = 0; j < d; ++j)
          ASSERT_EQ(hidden[r * d + j], want[q][i * d + j]) << "sequence " << q << " row " << i << " value " << j;
  }
}

// Every KV cache type runs; quantized caches stay close to f16.
TEST_P(EngineTest, KvCacheTypesAgreeWithinQuantizationError) {
  std::vector<float> ref;
  engine({}, Type::F32)->forward(ids_, 0, 0, false, ref);
  for (Type t : {Type::F16, Type::BF16, Type::Q8_0, Type::Q5_1, Type::Q5_0, Type::Q4_1, Type::Q4_0}) {
    std::vector<float> got;
    engine({}, t)->forward(ids_, 0, 0, false, got);
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      num += (got[i] - ref[i]) * (got[i] - ref[i]);
      den += ref[i] * ref[i];
    }
    const double rel = std::sqrt(num / den);
    // Q8 activation roundings amplify any perturbation, so even f16 moves
    // logits by ~1%; a broken cache type moves them by ~100%.
    const bool four_bit = t == Type::Q4_0 || t == Type::Q4_1;
    const bool five_bit = t == Type::Q5_0 || t == Type::Q5_1;
    const double bound = four_bit ? 0.25 : (five_bit ? 0.12 : 0.05);
    EXPECT_LT(rel, bound) << core::quant::type_name(t);
    EXPECT_GT(rel, 0.0) << core::quant::type_name(t) << " should differ from f32 at all";
  }
}

TEST_P(EngineTest, BadInputsAreErrors) {
  auto e = engine();
  std::vector<float> logits;
  const int32_t bad[1] = {1 << 20};
  EXPECT_THROW(e->forward(bad, 0, 0, false, logits), core::Error);
  std::vector<int32_t> many(65, 65);
  EXPECT_THROW(e->forward(many, 0, 0, false, logits), core::Error);  // past the 64-token context
  EXPECT_THROW(e->forward(ids_, 3, 0, false, logits), core::Error);  // no such sequence slot
  EXPECT_THROW(engine({}, Type::Q4_K), core::Error);                 // not a KV cache type
  EXPECT_THROW(engine(cpu::ShardSpec{3, 9, true, true}), core::Error);
}

INSTANTIATE_TEST_SUITE_P(Archs, EngineTest, testing::Values("llama", "qwen2"));

// llama3 frequency factors: divisors of each pair's angle. All-ones factors
// must change nothing (bit for bit); other factors must change the output.
TEST(RopeFreqs, OnesChangeNothingOtherFactorsChangeOutput) {
  const std::string dir = testing::TempDir() + "tandem_ropefreqs_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  auto run = [&](std::vector<float> freqs, bool* has) {
    core::SyntheticModelSpec s;
    s.n_layer = 2;
    s.n_embd = 128;
    s.n_ff = 256;
    s.n_head = 4;
    s.n_head_kv = 2;
    s.rope_freqs = std::move(freqs);
    const std::string p = dir + "/m.gguf";
    core::write_synthetic_model(p, s);
    auto f = std::shared_ptr<core::gguf::File>(core::gguf::File::open(p));
    cpu::EngineOptions eo;
    eo.kv.n_ctx = 32;
    cpu::LlamaEngine e(f, {}, eo);
    *has = e.config().has_rope_freqs;
    std::vector<float> logits;
    e.forward(std::vector<int32_t>{72, 101, 108, 108, 111, 33}, 0, 0, false, logits);
    return logits;
  };
  bool has_none = true, has_ones = false, has_llama3 = false;
  const auto none = run({}, &has_none);
  const auto ones = run(std::vector<float>(16, 1.0f), &has_ones);
  std::vector<float> llama3(16);
  for (int i = 0; i < 16; ++i) llama3[i] = i < 8 ? 1.0f : 8.0f;  // low frequencies slowed down, as llama3 does
  const auto scaled = run(llama3, &has_llama3);
  std::filesystem::remove_all(dir);
  EXPECT_FALSE(has_none);
  EXPECT_TRUE(has_ones);
  EXPECT_TRUE(has_llama3);
  EXPECT_EQ(none, ones);
  EXPECT_NE(none, scaled);
}

TEST(Swiglu, ApproxExpWithinTwoUlpOfLibm) {
  for (float x = -80.0f; x < 80.0f; x += 0.0137f) {
    const float a = cpu::approx_expf(x), b = std::exp(x);
    EXPECT_LE(std::fabs(a - b), 2.0f * std::fabs(std::nextafter(b, INFINITY) - b)) << x;
  }
  EXPECT_EQ(cpu::approx_expf(-200.0f), 0.0f);
  EXPECT_TRUE(std::isinf(cpu::approx_expf(200.0f)));
}

TEST(Swiglu, VectorAndTailAgreeWithScalarDefinition) {
  std::vector<float> g(37), u(37);
  for (int i = 0; i < 37; ++i) {
    g[i] = (i - 18) * 0.7f;
    u[i] = 1.0f + i * 0.01f;
  }
  std::vector<float> out = g;
  cpu::swiglu(out.data(), u.data(), 37);
  for (int i = 0; i < 37; ++i) {
    const float want = g[i] / (1.0f + std::exp(-g[i])) * u[i];
    EXPECT_NEAR(out[i], want, 1e-5f * std::fabs(want) + 1e-7f) << i;
  }
}

// Fresh random weights (quantized) and activations for the kernel tests.
struct DotCase {
  int64_t n;
  size_t rb;
  std::vector<uint8_t> w;               // [rows × rb] weight blocks
  std::vector<std::vector<uint8_t>> a;  // [tokens][act row bytes]
};

DotCase make_dot_case(Type t, int64_t n, int rows, int tokens, uint32_t seed) {
  const auto& tr = core::quant::traits(t);
  DotCase c{n, core::quant::row_bytes(t, n), {}, {}};
  c.w.resize(c.rb * rows);
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(n);
  for (int r = 0; r < rows; ++r) {
    for (auto& v : x) v = nd(rng);
    tr.from_float(x.data(), c.w.data() + r * c.rb, n);
  }
  for (int t = 0; t < tokens; ++t) {
    for (auto& v : x) v = nd(rng) * (1.0f + t);
    c.a.emplace_back(core::quant::row_bytes(tr.vec_dot_type, n));
    cpu::quantize_activations(tr.vec_dot_type, x.data(), c.a.back().data(), n);
  }
  return c;
}

TEST(DotRows, FourRowKernelsEqualSingleRow) {
  for (Type t : {Type::Q4_0, Type::Q4_1, Type::Q8_0, Type::IQ4_NL, Type::Q2_K, Type::Q3_K, Type::Q4_K, Type::Q5_K,
                 Type::Q6_K}) {
    auto rows4 = cpu::best_vec_dot_rows4(t);
    if (!rows4) GTEST_SKIP() << "no 4-row kernel on this CPU";
    const auto& tr = core::quant::traits(t);
    const DotCase c = make_dot_case(t, 1024, 4, 2, 11 + static_cast<uint32_t>(t));
    const auto dot = cpu::best_vec_dot(t);
    float out[4];
    rows4(c.n, c.w.data(), c.rb, c.a[0].data(), out);
    for (int r = 0; r < 4; ++r) EXPECT_EQ(out[r], dot(c.n, c.w.data() + r * c.rb, c.a[0].data())) << tr.name << " row " << r;
    // Two-token prefill kernels exist for the legacy types (K-quants use the
    // four-token kernel below).
    if (auto rows4x2 = cpu::best_vec_dot_rows4x2(t)) {
      float out0[4], out1[4];
      rows4x2(c.n, c.w.data(), c.rb, c.a[0].data(), c.a[1].data(), out0, out1);
      for (int r = 0; r < 4; ++r) {
        EXPECT_EQ(out0[r], out[r]) << tr.name << " row " << r;
        EXPECT_EQ(out1[r], dot(c.n, c.w.data() + r * c.rb, c.a[1].data())) << tr.name << " row " << r;
      }
    }
  }
}

// Q4_0, Q4_1, Q8_0 and IQ4_NL repacked into four-row groups: every row and
// token bit-identical to the file-layout kernel (so the logits stay
// llama.cpp's), decode and two-token prefill, over several groups and row lengths.
TEST(DotRows, RepackedFourRowsEqualSingleRowBitForBit) {
  for (Type t : {Type::Q4_0, Type::Q4_1, Type::Q8_0, Type::IQ4_NL}) {
    if (!cpu::x4_enabled(t, 12, 576)) GTEST_SKIP() << "no AVX2 (or TANDEM_REPACK=0): repacking off";
    const auto& tr = core::quant::traits(t);
    for (int64_t n : {32, 576, 1536}) {
      const int rows = 12;
      const DotCase c = make_dot_case(t, n, rows, 2, 300 + static_cast<uint32_t>(n) + static_cast<uint32_t>(t));
      const std::vector<uint8_t> packed = cpu::repack_x4(t, c.w.data(), c.rb, rows, n);
      const size_t group = cpu::x4_group_bytes(t, n);
      ASSERT_EQ(packed.size(), (rows / 4) * group);
      const auto dot = cpu::best_vec_dot(t);
      const auto one = cpu::x4_rows_kernel(t);
      const auto two = cpu::x4_rows2_kernel(t);
      ASSERT_TRUE(one && two);
      for (int g = 0; g < rows / 4; ++g) {
        float o[4], o0[4], o1[4];
        one(n, packed.data() + g * group, 0, c.a[0].data(), o);
        two(n, packed.data() + g * group, 0, c.a[0].data(), c.a[1].data(), o0, o1);
        for (int r = 0; r < 4; ++r) {
          const uint8_t* row = c.w.data() + (4 * g + r) * c.rb;
          const float want0 = dot(n, row, c.a[0].data()), want1 = dot(n, row, c.a[1].data());
          EXPECT_EQ(o[r], want0) << tr.name << " n " << n << " row " << 4 * g + r;
          EXPECT_EQ(o0[r], want0) << tr.name << " n " << n << " row " << 4 * g + r << " token 0";
          EXPECT_EQ(o1[r], want1) << tr.name << " n " << n << " row " << 4 * g + r << " token 1";
        }
      }
    }
  }
}

// The K-quant prefill kernel (four interleaved tokens) gives, for every row
// and token, exactly the decode kernel's result: a token's output must not
// depend on the batch it was computed in.
TEST(DotRows, FourTokenKernelsEqualSingleRowBitForBit) {
  for (Type t : {Type::Q2_K, Type::Q3_K, Type::Q4_K, Type::Q5_K, Type::Q6_K}) {
    auto tok4 = cpu::best_vec_dot_tokens4(t);
    if (!tok4) GTEST_SKIP() << "no four-token kernel on this CPU";
    const auto& tr = core::quant::traits(t);
    for (int rep = 0; rep < 3; ++rep) {
      const int rows = 5 + rep;  // not a multiple of 4
      const DotCase c = make_dot_case(t, 256 * (1 + 3 * rep), rows, 4, 100 * rep + static_cast<uint32_t>(t));
      std::vector<uint8_t> a4(static_cast<size_t>(c.n / 256) * sizeof(cpu::BlockQ8Kx4));
      const void* act_rows[4] = {c.a[0].data(), c.a[1].data(), c.a[2].data(), c.a[3].data()};
      cpu::interleave_q8_K_x4(act_rows, a4.data(), c.n);
      const size_t stride = 9;  // output row stride > rows
      std::vector<float> out(4 * stride, -1.0f);
      tok4(c.n, c.w.data(), c.rb, rows, a4.data(), out.data(), stride);
      const auto dot = cpu::best_vec_dot(t);
      const auto& ref = tr.vec_dot;
      for (int tk = 0; tk < 4; ++tk)
        for (int r = 0; r < rows; ++r) {
          const float want = dot(c.n, c.w.data() + r * c.rb, c.a[tk].data());
          EXPECT_EQ(out[tk * stride + r], want) << tr.name << " token " << tk << " row " << r;
          const float exact = ref(c.n, c.w.data() + r * c.rb, c.a[tk].data());
          EXPECT_NEAR(want, exact, 1e-4f * (std::fabs(exact) + 1.0f)) << tr.name;
        }
      EXPECT_EQ(out[rows], -1.0f) << "wrote past the rows";
    }
  }
}

// Q4_K in llama.cpp's gemm order (four tokens at a time), written out in
// scalar code from the block layout: per pair p of 32-value sub-blocks the
// exact Σ sc·q·y and Σ min·bsum, fused with y.d·x.d and -y.d·x.dmin.
float q4k_gemm_reference(int64_t n, const uint8_t* w, const uint8_t* a) {
  const auto* x = reinterpret_cast<const core::quant::BlockQ4_K*>(w);
  const auto* y = reinterpret_cast<const core::quant::BlockQ8_K*>(a);
  float acc = 0.0f, accm = 0.0f;
  for (int64_t i = 0; i < n / 256; ++i) {
    const float xd = core::quant::fp16_to_fp32(x[i].d), xm = core::quant::fp16_to_fp32(x[i].dmin);
    for (int p = 0; p < 4; ++p) {
      int32_t sum = 0, mins = 0;
      for (int j = 2 * p; j < 2 * p + 2; ++j) {
        uint8_t sc = 0, m = 0;
        core::quant::get_scale_min_k4(j, x[i].scales, &sc, &m);
        int32_t sj = 0;
        for (int l = 0; l < 32; ++l) {
          const uint8_t b = x[i].qs[32 * p + l];
          sj += ((j % 2) ? b >> 4 : b & 15) * y[i].qs[32 * j + l];
        }
        sum += sc * sj;
        mins += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
      }
      acc = std::fma(y[i].d * xd, static_cast<float>(sum), acc);
      accm = std::fma(-y[i].d * xm, static_cast<float>(mins), accm);
    }
  }
  return acc + accm;
}

// Q3_K, Q4_K and Q6_K repacked into eight-row groups, 1 to 4 tokens per call:
// every row and token bit-identical to the file-layout kernel of the same
// arithmetic (simd_dot.h: the vec_dot one, and the batch one for 8+ token
// matmuls), except Q4_K's four-token calls, which follow llama.cpp's gemm
// (checked against q4k_gemm_reference).
TEST(DotRows, RepackedEightRowsEqualSingleRowBitForBit) {
  for (Type type : {Type::Q3_K, Type::Q4_K, Type::Q6_K}) {
    if (!cpu::x8_enabled(type, 16, 1024)) GTEST_SKIP() << "no AVX2 (or TANDEM_REPACK=0): repacking off";
    for (int64_t n : {256, 1024, 2816}) {
      const DotCase c = make_dot_case(type, n, 16, 4, 7 + static_cast<uint32_t>(n) + static_cast<uint32_t>(type));
      const std::vector<uint8_t> packed = cpu::repack_x8(type, c.w.data(), c.rb, 16, n);
      const size_t group = cpu::x8_group_bytes(type, n);
      ASSERT_EQ(packed.size(), 2 * group);
      ASSERT_EQ(group, static_cast<size_t>(n / 256) * (type == Type::Q4_K   ? sizeof(cpu::BlockQ4Kx8)
                                                               : type == Type::Q6_K ? sizeof(cpu::BlockQ6Kx8)
                                                                                    : sizeof(cpu::BlockQ3Kx8)));
      for (bool batch : {false, true}) {
        const auto dot = batch && type != Type::Q4_K ? cpu::batch_vec_dot(type) : cpu::best_vec_dot(type);
        ASSERT_NE(dot, nullptr);
        for (int n_tok = 1; n_tok <= 4; ++n_tok) {
          const uint8_t* a[4] = {c.a[0].data(), c.a[1].data(), c.a[2].data(), c.a[3].data()};
          const size_t stride = 19;
          std::vector<float> out(4 * stride, -7.0f);
          for (int g = 0; g < 2; ++g)
            cpu::x8_kernel(type, n_tok, batch)(n, packed.data() + g * group, a, out.data() + 8 * g, stride);
          for (int t = 0; t < 4; ++t)
            for (int r = 0; r < 16; ++r) {
              if (t >= n_tok) {
                EXPECT_EQ(out[t * stride + r], -7.0f) << "token " << t << " written though n_tok = " << n_tok;
                continue;
              }
              const uint8_t* wr = c.w.data() + r * c.rb;
              const float want = type == Type::Q4_K && n_tok == 4 ? q4k_gemm_reference(n, wr, c.a[t].data())
                                                                   : dot(n, wr, c.a[t].data());
              EXPECT_EQ(out[t * stride + r], want) << core::quant::type_name(type) << " n " << n << " batch " << batch
                                                   << " tokens " << n_tok << " token " << t << " row " << r;
            }
        }
      }
    }
  }
}

// matmul over 10 tokens (two groups of four, then two: llama.cpp's batch
// arithmetic) and over 6 (one group, then two: its vec_dot one) equals each
// token's row kernel of that arithmetic bit for bit: the four-token kernel
// on the file layout (Q5_K), the eight-row layout with its tail call (Q4_K:
// gemm order for the groups of four, gemv order for the tail), the four-row
// legacy layout (Q4_1, one arithmetic).
TEST(DotRows, MatmulBatchEqualsSingleRowDots) {
  for (Type type : {Type::Q5_K, Type::Q4_K, Type::Q4_1}) {
    for (int tokens : {10, 6}) {
      const int rows = 16;
      const int64_t n = 512;
      const DotCase c = make_dot_case(type, n, rows, 4, 91 + static_cast<uint32_t>(type));
      std::vector<float> x(static_cast<size_t>(tokens) * n);  // [tokens × n] f32 activations
      std::mt19937 rng(5);
      std::normal_distribution<float> nd(0.0f, 1.0f);
      for (auto& v : x) v = nd(rng);
      cpu::ThreadPool pool(2);
      cpu::QuantizedActs acts;
      acts.quantize(x.data(), tokens, n, cpu::act_type_for(type), pool);
      cpu::Matrix m{c.w.data(), type, n, rows, c.rb};
      std::vector<uint8_t> packed;
      if (type == Type::Q4_K) {
        if (!cpu::x8_enabled(type, rows, n)) GTEST_SKIP() << "no eight-row layout on this CPU";
        packed = cpu::repack_x8(type, c.w.data(), c.rb, rows, n);
        m.x8 = packed.data();
      }
      if (type == Type::Q4_1) {
        if (!cpu::x4_enabled(type, rows, n)) GTEST_SKIP() << "no four-row layout on this CPU";
        packed = cpu::repack_x4(type, c.w.data(), c.rb, rows, n);
        m.x4 = packed.data();
      }
      std::vector<float> out(static_cast<size_t>(tokens) * rows);
      cpu::matmul(m, acts, out.data(), pool);
      const bool batch = tokens >= cpu::kBatchArithmeticTokens && cpu::batch_vec_dot(type) != nullptr;
      EXPECT_EQ(batch, type == Type::Q5_K && tokens == 10) << core::quant::type_name(type);
      const auto dot = batch ? cpu::batch_vec_dot(type) : cpu::best_vec_dot(type);
      for (int t = 0; t < tokens; ++t)
        for (int r = 0; r < rows; ++r) {
          const uint8_t* wr = c.w.data() + r * c.rb;
          const bool gemm = type == Type::Q4_K && t < tokens - tokens % 4;
          EXPECT_EQ(out[t * rows + r], gemm ? q4k_gemm_reference(n, wr, acts.row(t)) : dot(n, wr, acts.row(t)))
              << core::quant::type_name(type) << " tokens " << tokens << " token " << t << " row " << r;
        }
      // Runs that do not cover the batch are a caller's bug, refused by name.
      EXPECT_THROW(cpu::matmul(m, acts, out.data(), pool, {3}), core::Error);
      EXPECT_THROW(cpu::matmul(m, acts, out.data(), pool, {1, tokens}), core::Error);
    }
  }
}

}  // namespace
}  // namespace tandem
