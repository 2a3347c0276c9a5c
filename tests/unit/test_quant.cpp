// Quantization formats: traits table, fp16/bf16 conversions, reference
// (de)quantizers against fixtures made by llama.cpp's Python reference
// (tests/data/make_quant_fixtures.py), SIMD kernels against the scalar
// references, and round-trip error bounds.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/quant_blocks.h"
#include "core/quant_reference.h"
#include "core/quant_types.h"
#include "cpu_worker/simd_dot.h"
#include "tests/unit/test_support.h"

namespace q = tandem::core::quant;
using q::Type;

namespace {

std::vector<uint8_t> read_bytes(const std::string& name) {
  const std::string s = tandem::test::read_file(tandem::test::source_dir() + "/tests/data/quant/" + name);
  return std::vector<uint8_t>(s.begin(), s.end());
}

std::vector<float> read_floats(const std::string& name) {
  const std::vector<uint8_t> b = read_bytes(name);
  std::vector<float> f(b.size() / sizeof(float));
  std::memcpy(f.data(), b.data(), f.size() * sizeof(float));
  return f;
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

uint32_t bits(float f) { return q::f32_bits(f); }

// fp16 scale fields of each format (byte offsets), for random-but-valid blocks.
std::vector<size_t> scale_offsets(Type t) {
  switch (t) {
    case Type::Q4_0:
    case Type::Q5_0:
    case Type::Q8_0:
      return {0};
    case Type::Q4_1:
    case Type::Q5_1:
    case Type::Q8_1:
      return {0, 2};
    case Type::Q2_K:
      return {offsetof(q::BlockQ2_K, d), offsetof(q::BlockQ2_K, dmin)};
    case Type::Q3_K:
      return {offsetof(q::BlockQ3_K, d)};
    case Type::Q4_K:
    case Type::Q5_K:
      return {0, 2};
    case Type::Q6_K:
      return {offsetof(q::BlockQ6_K, d)};
    case Type::IQ2_XXS:
    case Type::IQ2_XS:
    case Type::IQ2_S:
    case Type::IQ3_XXS:
    case Type::IQ3_S:
    case Type::IQ1_S:
    case Type::IQ4_NL:
    case Type::IQ4_XS:
      return {0};  // d leads the block (IQ1_M keeps its scale in nibbles: random_blocks)
    default:
      return {};
  }
}

// Random bytes with every fp16 scale set to a magnitude in 0.01..1.
std::vector<uint8_t> random_blocks(Type t, int64_t n, std::mt19937& rng) {
  const q::TypeTraits& tr = q::traits(t);
  std::vector<uint8_t> buf(q::row_bytes(t, n));
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> mag(0.01f, 1.0f);
  for (size_t blk = 0; blk < buf.size() / tr.type_size; ++blk) {
    for (size_t off : scale_offsets(t)) {
      const uint16_t h = q::fp32_to_fp16((rng() & 1) ? mag(rng) : -mag(rng));
      std::memcpy(buf.data() + blk * tr.type_size + off, &h, 2);
    }
    if (t == Type::IQ1_M) {  // fp16 d in the top nibbles of the four scale words
      auto* b = reinterpret_cast<q::BlockIQ1_M*>(buf.data() + blk * tr.type_size);
      const uint16_t h = q::fp32_to_fp16(mag(rng));
      for (int k = 0; k < 4; ++k) {
        const uint16_t w = static_cast<uint16_t>((q::le_u16(b->scales + 2 * k) & 0x0FFF) | (((h >> (4 * k)) & 0xF) << 12));
        b->scales[2 * k] = static_cast<uint8_t>(w), b->scales[2 * k + 1] = static_cast<uint8_t>(w >> 8);
      }
    }
  }
  return buf;
}

enum class Dist { kGauss, kSmall, kPositive, kOutliers, kSteps, kZeroBlocks };

std::vector<float> random_floats(int64_t n, Dist dist, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.f, 1.f);
  std::uniform_real_distribution<float> ud(-1.f, 1.f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) {
    switch (dist) {
      case Dist::kGauss:
        v = nd(rng);
        break;
      case Dist::kSmall:
        v = ud(rng) * 1e-3f;
        break;
      case Dist::kPositive:
        v = ud(rng) + 0.7f;
        break;
      case Dist::kOutliers:
        v = (rng() % 13 == 0) ? nd(rng) * 20.f : nd(rng) * 0.05f;
        break;
      case Dist::kSteps:
        v = static_cast<float>(static_cast<int>(rng() % 17) - 8) * 0.125f;
        break;
      case Dist::kZeroBlocks:
        v = (rng() % 2) ? nd(rng) : 0.f;
        break;
    }
  }
  if (dist == Dist::kZeroBlocks)  // whole zero super-block and 32-block
    for (int64_t i = 0; i < 256 && i < n; ++i) x[static_cast<size_t>(i)] = 0.f;
  return x;
}

const Dist kAllDists[] = {Dist::kGauss,    Dist::kSmall, Dist::kPositive,
                          Dist::kOutliers, Dist::kSteps, Dist::kZeroBlocks};

const Type kFixtureTypes[] = {Type::F32,  Type::F16,  Type::BF16, Type::Q4_0, Type::Q4_1, Type::Q5_0, Type::Q5_1,
                              Type::Q8_0, Type::Q2_K, Type::Q3_K, Type::Q4_K, Type::Q5_K, Type::Q6_K};
// Reference dot products only (no quantizer, no SIMD kernel yet).
const Type kIQuantTypes[] = {Type::IQ2_XXS, Type::IQ2_XS, Type::IQ2_S, Type::IQ3_XXS, Type::IQ3_S,
                             Type::IQ1_S,   Type::IQ1_M,  Type::IQ4_NL, Type::IQ4_XS};
const Type kDotTypes[] = {Type::F32,  Type::F16,  Type::BF16, Type::Q4_0, Type::Q4_1, Type::Q5_0, Type::Q5_1,
                          Type::Q8_0, Type::Q2_K, Type::Q3_K, Type::Q4_K, Type::Q5_K, Type::Q6_K};

}  // namespace

// ============================================================================
// Traits table.

TEST(QuantTraits, SizesMatchGgml) {
  struct Row {
    Type t;
    int64_t bs;
    size_t ts;
  };
  const Row rows[] = {
      {Type::F32, 1, 4},       {Type::F16, 1, 2},        {Type::BF16, 1, 2},       {Type::Q4_0, 32, 18},
      {Type::Q4_1, 32, 20},    {Type::Q5_0, 32, 22},     {Type::Q5_1, 32, 24},     {Type::Q8_0, 32, 34},
      {Type::Q8_1, 32, 36},    {Type::Q2_K, 256, 84},    {Type::Q3_K, 256, 110},   {Type::Q4_K, 256, 144},
      {Type::Q5_K, 256, 176},  {Type::Q6_K, 256, 210},   {Type::Q8_K, 256, 292},   {Type::IQ2_XXS, 256, 66},
      {Type::IQ2_XS, 256, 74}, {Type::IQ3_XXS, 256, 98}, {Type::IQ1_S, 256, 50},   {Type::IQ4_NL, 32, 18},
      {Type::IQ3_S, 256, 110}, {Type::IQ2_S, 256, 82},   {Type::IQ4_XS, 256, 136}, {Type::IQ1_M, 256, 56},
      {Type::I8, 1, 1},        {Type::I16, 1, 2},        {Type::I32, 1, 4},        {Type::I64, 1, 8},
      {Type::F64, 1, 8},
  };
  for (const Row& r : rows) {
    const q::TypeTraits& tr = q::traits(r.t);
    EXPECT_EQ(tr.block_size, r.bs) << tr.name;
    EXPECT_EQ(tr.type_size, r.ts) << tr.name;
  }
}

TEST(QuantTraits, KernelsPresentForSupportedTypes) {
  for (Type t : kDotTypes) {
    const q::TypeTraits& tr = q::traits(t);
    EXPECT_NE(tr.to_float, nullptr) << tr.name;
    EXPECT_NE(tr.vec_dot, nullptr) << tr.name;
  }
  EXPECT_EQ(q::traits(Type::Q4_0).vec_dot_type, Type::Q8_0);
  EXPECT_EQ(q::traits(Type::Q4_1).vec_dot_type, Type::Q8_1);
  EXPECT_EQ(q::traits(Type::Q5_1).vec_dot_type, Type::Q8_1);
  EXPECT_EQ(q::traits(Type::Q6_K).vec_dot_type, Type::Q8_K);
  EXPECT_EQ(q::traits(Type::F16).vec_dot_type, Type::F32);
  for (Type t : kIQuantTypes) EXPECT_NE(q::traits(t).vec_dot, nullptr) << q::type_name(t);
  EXPECT_EQ(q::traits(Type::Q8_K).vec_dot, nullptr);  // an activation format
}

TEST(QuantTraits, NamesAndLookup) {
  EXPECT_EQ(q::type_name(Type::Q4_K), "Q4_K");
  EXPECT_EQ(q::type_name(Type::BF16), "BF16");
  EXPECT_EQ(q::type_from_name("q4_k"), Type::Q4_K);
  EXPECT_EQ(q::type_from_name("Q8_0"), Type::Q8_0);
  EXPECT_EQ(q::type_from_name("iq2_xxs"), Type::IQ2_XXS);
  EXPECT_EQ(q::type_from_name("bf16"), Type::BF16);
  EXPECT_FALSE(q::type_from_name("Q4_K_M").has_value());
  EXPECT_FALSE(q::type_from_name("").has_value());
  EXPECT_EQ(q::find_traits(4), nullptr);  // ids 4 and 5 were Q4_2 / Q4_3, removed
  EXPECT_EQ(q::find_traits(31), nullptr);
  EXPECT_EQ(q::find_traits(1000), nullptr);
  ASSERT_NE(q::find_traits(12), nullptr);
  EXPECT_EQ(q::find_traits(12)->name, "Q4_K");
  EXPECT_THROW(q::traits(static_cast<Type>(5)), tandem::core::Error);
}

TEST(QuantTraits, RowBytes) {
  EXPECT_EQ(q::row_bytes(Type::Q4_K, 4096), 16u * 144u);
  EXPECT_EQ(q::row_bytes(Type::F16, 7), 14u);
  EXPECT_EQ(q::row_bytes(Type::Q8_0, 0), 0u);
  EXPECT_THROW(q::row_bytes(Type::Q4_0, 33), tandem::core::Error);
  EXPECT_THROW(q::row_bytes(Type::Q6_K, 128), tandem::core::Error);
  EXPECT_THROW(q::row_bytes(Type::Q4_0, -32), tandem::core::Error);
}

// ============================================================================
// fp16 / bf16 conversions (exhaustive where cheap, portable oracles).

TEST(QuantFloat, Fp16ToFp32IsExact) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = q::fp16_to_fp32(static_cast<uint16_t>(h));
    const int exp = (h >> 10) & 31;
    const int mant = h & 1023;
    const float sign = (h & 0x8000) ? -1.f : 1.f;
    if (exp == 31) {
      if (mant == 0) {
        EXPECT_EQ(f, sign * INFINITY) << h;
      } else {
        ASSERT_TRUE(std::isnan(f)) << h;
        EXPECT_EQ(bits(f) & 0x007FFFFFu, 0x00400000u | (static_cast<uint32_t>(mant) << 13)) << h;  // quieted
        EXPECT_EQ(bits(f) >> 31, h >> 15) << h;
      }
      continue;
    }
    const double expect = exp == 0 ? std::ldexp(mant, -24) : std::ldexp(1024 + mant, exp - 25);
    EXPECT_EQ(bits(f), bits(sign * static_cast<float>(expect))) << h;
  }
}

TEST(QuantFloat, Fp32ToFp16RoundsToNearestEven) {
  for (uint32_t h = 0; h < 0x7C00; ++h) {  // every finite positive half and its neighbours
    for (const uint32_t sign : {0u, 0x8000u}) {
      const uint16_t hs = static_cast<uint16_t>(h | sign);
      const float f = q::fp16_to_fp32(hs);
      ASSERT_EQ(q::fp32_to_fp16(f), hs) << h;
      // Midpoint to the next half up: ties to even.
      const double lo = std::fabs(static_cast<double>(f));
      const double hi =
          h + 1 == 0x7C00 ? 65536.0 : std::fabs(static_cast<double>(q::fp16_to_fp32(static_cast<uint16_t>(h + 1))));
      const float mid = static_cast<float>((lo + hi) / 2);  // exact in f32
      const float s = sign ? -1.f : 1.f;
      const uint16_t even = static_cast<uint16_t>(((h & 1) ? h + 1 : h) | sign);
      EXPECT_EQ(q::fp32_to_fp16(s * mid), even) << h;
      EXPECT_EQ(q::fp32_to_fp16(s * std::nextafter(mid, 0.f)), hs) << h;
      EXPECT_EQ(q::fp32_to_fp16(s * std::nextafter(mid, INFINITY)), static_cast<uint16_t>((h + 1) | sign)) << h;
    }
  }
  EXPECT_EQ(q::fp32_to_fp16(INFINITY), 0x7C00);
  EXPECT_EQ(q::fp32_to_fp16(-1e30f), 0xFC00);
  EXPECT_EQ(q::fp32_to_fp16(1e-30f), 0x0000);
  EXPECT_EQ(q::fp32_to_fp16(-NAN), 0xFE00);  // ggml: canonical quiet NaN, sign kept
  EXPECT_EQ(q::fp32_to_fp16(NAN), 0x7E00);
}

TEST(QuantFloat, Bf16) {
  EXPECT_EQ(q::fp32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(q::fp32_to_bf16(q::f32_from_bits(0x3F808000u)), 0x3F80);  // tie, even stays
  EXPECT_EQ(q::fp32_to_bf16(q::f32_from_bits(0x3F818000u)), 0x3F82);  // tie, odd rounds up
  EXPECT_EQ(q::fp32_to_bf16(q::f32_from_bits(0x3F808001u)), 0x3F81);
  EXPECT_EQ(q::fp32_to_bf16(q::f32_from_bits(0x7F800001u)), 0x7FC0);  // sNaN -> quiet
  EXPECT_EQ(q::fp32_to_bf16(q::f32_from_bits(0xFF800001u)), 0xFFC0);
  EXPECT_EQ(q::fp32_to_bf16(q::f32_from_bits(0x7F7FFFFFu)), 0x7F80);  // FLT_MAX rounds to inf
  for (uint32_t h = 0; h < 65536; ++h) EXPECT_EQ(bits(q::bf16_to_fp32(static_cast<uint16_t>(h))), h << 16);
}

// ============================================================================
// Fixtures from gguf-py (llama.cpp's Python reference).

TEST(QuantFixtures, ToFloatMatchesGgufPy) {
  for (Type t : kFixtureTypes) {
    const q::TypeTraits& tr = q::traits(t);
    const std::string name = lower(tr.name);
    const std::vector<uint8_t> blocks = read_bytes(name + ".bin");
    const std::vector<float> expect = read_floats(name + ".f32");
    ASSERT_FALSE(blocks.empty()) << name << ".bin missing: run tests/data/make_quant_fixtures.py";
    ASSERT_EQ(blocks.size() % tr.type_size, 0u) << name;
    const int64_t n = static_cast<int64_t>(blocks.size() / tr.type_size) * tr.block_size;
    ASSERT_EQ(expect.size(), static_cast<size_t>(n)) << name;
    std::vector<float> got(static_cast<size_t>(n));
    tr.to_float(blocks.data(), got.data(), n);
    int bad = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (bits(got[i]) != bits(expect[i]) && ++bad <= 5)
        ADD_FAILURE() << name << "[" << i << "]: got " << got[i] << " want " << expect[i];
    }
    EXPECT_EQ(bad, 0) << name;
  }
}

TEST(QuantFixtures, FromFloatMatchesGgufPy) {
  for (Type t : {Type::F16, Type::BF16, Type::Q4_0, Type::Q4_1, Type::Q5_0, Type::Q5_1, Type::Q8_0}) {
    const q::TypeTraits& tr = q::traits(t);
    const std::string name = lower(tr.name);
    const std::vector<float> in = read_floats(name + ".qin.f32");
    const std::vector<uint8_t> expect = read_bytes(name + ".qout.bin");
    ASSERT_FALSE(in.empty()) << name << ".qin.f32 missing: run tests/data/make_quant_fixtures.py";
    const int64_t n = static_cast<int64_t>(in.size());
    ASSERT_EQ(expect.size(), q::row_bytes(t, n)) << name;
    std::vector<uint8_t> got(expect.size());
    ASSERT_NE(tr.from_float, nullptr) << name;
    tr.from_float(in.data(), got.data(), n);
    for (size_t blk = 0; blk < got.size() / tr.type_size; ++blk) {
      EXPECT_EQ(0, std::memcmp(got.data() + blk * tr.type_size, expect.data() + blk * tr.type_size, tr.type_size))
          << name << " block " << blk;
    }
  }
}

// ============================================================================
// Reference quantizers: invariants and round-trip error.

TEST(QuantReference, ActivationBlockInvariants) {
  std::mt19937 rng(7);
  for (Dist dist : kAllDists) {
    const int64_t n = 1024;
    const std::vector<float> x = random_floats(n, dist, rng);
    for (auto quantize : {q::ref::from_float_q8_1, q::ref::quantize_act_q8_1}) {
      std::vector<q::BlockQ8_1> y(n / 32);
      quantize(x.data(), y.data(), n);
      for (size_t blk = 0; blk < y.size(); ++blk) {
        float amax = 0;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[blk * 32 + i]));
        const float d = amax / 127;  // s uses d before its fp16 rounding
        int sum = 0;
        for (int8_t v : y[blk].qs) {
          sum += v;
          EXPECT_GE(v, -127);
        }
        EXPECT_EQ(y[blk].d, q::fp32_to_fp16(d));
        EXPECT_EQ(y[blk].s, q::fp32_to_fp16(static_cast<float>(sum) * d));
      }
    }
    std::vector<q::BlockQ8_K> yk(n / 256);
    q::ref::from_float_q8_K(x.data(), yk.data(), n);
    for (const auto& b : yk) {
      for (int g = 0; g < 16; ++g) {
        int sum = 0;
        for (int i = 0; i < 16; ++i) sum += b.qs[16 * g + i];
        EXPECT_EQ(b.bsums[g], sum);
      }
      for (int8_t v : b.qs) EXPECT_GE(v, -127);
    }
  }
}

TEST(QuantReference, RoundTripError) {
  // Bound on RMS(x - dequant(quant(x))) / RMS(x) for Gaussian data, about
  // 1.25x what ggml's reference quantizers measure (F16 2.1e-4, BF16 1.7e-3,
  // Q8_0 5.4e-3, Q8_K 7.0e-3, Q6_K 1.8e-2, Q5_0 4.3e-2, Q5_1 3.8e-2,
  // Q5_K 3.6e-2, Q4_0 8.6e-2, Q4_1 7.9e-2, Q4_K 7.2e-2, Q3_K 0.15, Q2_K 0.30).
  struct Bound {
    Type t;
    double rel_rms;
  };
  const Bound bounds[] = {
      {Type::F16, 2.6e-4},  {Type::BF16, 2.1e-3}, {Type::Q8_0, 6.7e-3}, {Type::Q8_1, 6.7e-3}, {Type::Q8_K, 8.7e-3},
      {Type::Q6_K, 2.2e-2}, {Type::Q5_0, 5.4e-2}, {Type::Q5_1, 4.8e-2}, {Type::Q5_K, 4.5e-2}, {Type::Q4_0, 0.108},
      {Type::Q4_1, 0.099},  {Type::Q4_K, 0.090},  {Type::Q3_K, 0.19},   {Type::Q2_K, 0.37},
  };
  std::map<Type, double> measured;
  std::mt19937 rng(11);
  const int64_t n = 16 * 4096;
  const std::vector<float> x = random_floats(n, Dist::kGauss, rng);
  for (const Bound& b : bounds) {
    const q::TypeTraits& tr = q::traits(b.t);
    std::vector<uint8_t> buf(q::row_bytes(b.t, n));
    tr.from_float(x.data(), buf.data(), n);
    std::vector<float> y(static_cast<size_t>(n));
    tr.to_float(buf.data(), y.data(), n);
    double err2 = 0, x2 = 0;
    for (int64_t i = 0; i < n; ++i) {
      err2 += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
      x2 += static_cast<double>(x[i]) * x[i];
    }
    const double rel = std::sqrt(err2 / x2);
    EXPECT_LT(rel, b.rel_rms) << tr.name;
    measured[b.t] = rel;
    EXPECT_GT(rel, b.rel_rms / 20) << tr.name << ": suspiciously exact";
  }
  // The K-quants' searched scales beat the legacy formats of the same width.
  EXPECT_LT(measured[Type::Q4_K], measured[Type::Q4_1]);
  EXPECT_LT(measured[Type::Q4_1], measured[Type::Q4_0]);
  EXPECT_LT(measured[Type::Q5_K], measured[Type::Q5_1]);
  EXPECT_LT(measured[Type::Q5_1], measured[Type::Q5_0]);
}

TEST(QuantReference, RoundTripEdgeCases) {
  // All-zero and constant inputs must not produce NaN/inf and must round
  // trip (near) exactly.
  for (Type t : {Type::Q4_0, Type::Q4_1, Type::Q5_0, Type::Q5_1, Type::Q8_0, Type::Q8_1, Type::Q2_K, Type::Q3_K,
                 Type::Q4_K, Type::Q5_K, Type::Q6_K, Type::Q8_K}) {
    const q::TypeTraits& tr = q::traits(t);
    for (float c : {0.0f, 0.75f, -2.5f}) {
      const int64_t n = 512;
      std::vector<float> x(n, c), y(n);
      std::vector<uint8_t> buf(q::row_bytes(t, n));
      tr.from_float(x.data(), buf.data(), n);
      tr.to_float(buf.data(), y.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_TRUE(std::isfinite(y[i])) << tr.name << " c=" << c;
        EXPECT_NEAR(y[i], c, std::fabs(c) * 0.07 + 1e-6) << tr.name << " c=" << c << " i=" << i;
      }
    }
  }
}

// The dot products compute what their name says: close to the double
// dot product of the dequantized rows.
TEST(QuantReference, DotMatchesDequantizedDot) {
  std::mt19937 rng(3);
  std::vector<Type> types(std::begin(kDotTypes), std::end(kDotTypes));
  types.insert(types.end(), std::begin(kIQuantTypes), std::end(kIQuantTypes));
  for (Type t : types) {
    const q::TypeTraits& tr = q::traits(t);
    const q::TypeTraits& at = q::traits(tr.vec_dot_type);
    for (int rep = 0; rep < 4; ++rep) {
      const int64_t n = 2048;
      std::vector<uint8_t> wbuf;
      std::vector<float> wf = random_floats(n, Dist::kGauss, rng);
      if (t == Type::F32) {
        wbuf.resize(q::row_bytes(t, n));
        std::memcpy(wbuf.data(), wf.data(), wbuf.size());
      } else if (!tr.quantized) {
        wbuf.resize(q::row_bytes(t, n));
        tr.from_float(wf.data(), wbuf.data(), n);
      } else {
        wbuf = random_blocks(t, n, rng);
      }
      tr.to_float(wbuf.data(), wf.data(), n);
      const std::vector<float> xa = random_floats(n, kAllDists[rep], rng);
      std::vector<uint8_t> abuf(q::row_bytes(tr.vec_dot_type, n));
      tandem::cpu::quantize_activations(tr.vec_dot_type, xa.data(), abuf.data(), n);
      std::vector<float> af(static_cast<size_t>(n));
      at.to_float(abuf.data(), af.data(), n);
      double exact = 0, mag = 0;
      for (int64_t i = 0; i < n; ++i) {
        exact += static_cast<double>(wf[i]) * af[i];
        mag += std::fabs(static_cast<double>(wf[i]) * af[i]);
      }
      const float got = tr.vec_dot(n, wbuf.data(), abuf.data());
      // Q4_1/Q5_1 use Q8_1's fp16 s = d*sum(qs) for the min term: allow its rounding.
      EXPECT_NEAR(got, exact, 2e-3 * mag + 1e-6) << tr.name << " rep " << rep;
    }
  }
}

// ============================================================================
// SIMD kernels vs the scalar references.

TEST(QuantSimd, DispatchFallsBackToReference) {
  for (Type t : kDotTypes) {
    EXPECT_NE(tandem::cpu::best_vec_dot(t), nullptr) << q::type_name(t);
    EXPECT_EQ(tandem::cpu::vec_dot_type(t), q::traits(t).vec_dot_type);
  }
  EXPECT_EQ(tandem::cpu::best_vec_dot(Type::Q8_K), nullptr);
  if (!tandem::cpu::cpu_has_avx2()) {  // e.g. TANDEM_NO_SIMD=1: every type falls back to its reference
    EXPECT_EQ(tandem::cpu::best_vec_dot(Type::Q4_K), q::traits(Type::Q4_K).vec_dot);
    EXPECT_EQ(tandem::cpu::best_vec_dot(Type::IQ1_S), q::traits(Type::IQ1_S).vec_dot);
  }
}

TEST(QuantSimd, QuantizersEqualScalarBitForBit) {
  if (!tandem::cpu::cpu_has_avx2()) GTEST_SKIP() << "no AVX2/FMA/F16C on this CPU";
  std::mt19937 rng(5);
  for (Type t : {Type::Q8_0, Type::Q8_1, Type::Q8_K}) {
    auto simd = tandem::cpu::avx2_quantizer(t);
    auto scalar = tandem::cpu::scalar_quantizer(t);
    ASSERT_NE(simd, nullptr);
    ASSERT_NE(scalar, nullptr);
    for (int rep = 0; rep < 30; ++rep) {
      for (Dist dist : kAllDists) {
        const int64_t n = 256 * (1 + rep % 4);
        std::vector<float> x = random_floats(n, dist, rng);
        if (rep == 0) {  // the largest magnitude appears with both signs
          x[3] = 2.0f;
          x[9] = -2.0f;
        }
        std::vector<uint8_t> a(q::row_bytes(t, n)), b(a.size());
        scalar(x.data(), a.data(), n);
        simd(x.data(), b.data(), n);
        ASSERT_EQ(a, b) << q::type_name(t) << " rep " << rep;
        std::vector<uint8_t> c(a.size());
        tandem::cpu::quantize_activations(t, x.data(), c.data(), n);
        ASSERT_EQ(a, c);
      }
    }
  }
}

TEST(QuantSimd, DotsMatchReference) {
  if (!tandem::cpu::cpu_has_avx2()) GTEST_SKIP() << "no AVX2/FMA/F16C on this CPU";
  std::mt19937 rng(9);
  for (Type t : kDotTypes) {
    const q::TypeTraits& tr = q::traits(t);
    auto simd = tandem::cpu::avx2_vec_dot(t);
    ASSERT_NE(simd, nullptr) << tr.name;
    EXPECT_EQ(tandem::cpu::best_vec_dot(t), simd);
    double worst = 0;
    for (int rep = 0; rep < 40; ++rep) {
      // Lengths: several blocks; float types also get ragged tails.
      int64_t n = tr.block_size * (1 + static_cast<int64_t>(rng() % 24));
      if (tr.block_size == 1) n = 1 + static_cast<int64_t>(rng() % 3000);
      std::vector<uint8_t> w;
      std::vector<float> xw = random_floats(n, kAllDists[rep % 6], rng);
      if (t == Type::F32) {
        w.resize(q::row_bytes(t, n));
        std::memcpy(w.data(), xw.data(), w.size());
      } else if (rep % 2 == 0 || tr.block_size == 1) {
        w.resize(q::row_bytes(t, n));
        tr.from_float(xw.data(), w.data(), n);
      } else {
        w = random_blocks(t, n, rng);  // every bit pattern of the quants
      }
      const std::vector<float> xa = random_floats(n, kAllDists[(rep / 2) % 6], rng);
      std::vector<uint8_t> a(q::row_bytes(tr.vec_dot_type, n));
      tandem::cpu::quantize_activations(tr.vec_dot_type, xa.data(), a.data(), n);
      const float ref = tr.vec_dot(n, w.data(), a.data());
      const float got = simd(n, w.data(), a.data());
      // Relative to sum |w_i * a_i| (the sum can cancel to ~0).
      std::vector<float> wf(static_cast<size_t>(n)), af(static_cast<size_t>(n));
      tr.to_float(w.data(), wf.data(), n);
      q::traits(tr.vec_dot_type).to_float(a.data(), af.data(), n);
      double mag = 0;
      for (int64_t i = 0; i < n; ++i) mag += std::fabs(static_cast<double>(wf[i]) * af[i]);
      const double err = std::fabs(static_cast<double>(got) - ref);
      EXPECT_LE(err, 1e-5 * mag + 1e-30) << tr.name << " n=" << n << " rep " << rep << " ref " << ref << " simd "
                                         << got;
      if (mag > 0) worst = std::max(worst, err / mag);
    }
    RecordProperty(std::string(tr.name) + "_worst_rel", std::to_string(worst));
  }
}
