// The AVX2 i-quant kernels (cpu_worker/simd_iquant_decoders.h in the K-quant
// kernel family) against the scalar references, on random valid blocks:
// one row equals the reference within float rounding; four rows and four
// interleaved tokens equal the one-row kernel bit for bit (a token's output
// never depends on its batch).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/quant_random_blocks.h"
#include "core/quant_types.h"
#include "cpu_worker/simd_dot.h"

namespace tandem::test {
namespace {

namespace q = core::quant;
using q::Type;

const Type kSimdIQuants[] = {Type::IQ2_XXS, Type::IQ2_XS, Type::IQ2_S, Type::IQ3_XXS,
                             Type::IQ3_S,   Type::IQ4_XS, Type::IQ1_S, Type::IQ1_M};
// IQ4_NL pairs with Q8_0 activations and belongs to the legacy kernel family
// (its four-row kernels are checked in test_engine.cpp's DotRows tests).
const Type kOneRowIQuants[] = {Type::IQ2_XXS, Type::IQ2_XS, Type::IQ2_S, Type::IQ3_XXS, Type::IQ3_S,
                               Type::IQ4_XS,  Type::IQ1_S,  Type::IQ1_M, Type::IQ4_NL};

std::vector<float> gauss(int64_t n, std::mt19937_64& rng) {
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = nd(rng);
  return x;
}

TEST(IQuantSimd, OneRowMatchesTheReference) {
  if (!cpu::cpu_has_avx2()) GTEST_SKIP() << "no AVX2/FMA/F16C on this CPU";
  std::mt19937_64 rng(11);
  for (Type t : kOneRowIQuants) {
    const q::TypeTraits& tr = q::traits(t);
    const cpu::VecDotFn simd = cpu::best_vec_dot(t);
    ASSERT_NE(simd, tr.vec_dot) << tr.name << ": no SIMD kernel";
    for (int rep = 0; rep < 20; ++rep) {
      const int64_t n = 256 * (1 + static_cast<int64_t>(rng() % 12));
      std::vector<uint8_t> w(q::row_bytes(t, n)), a(q::row_bytes(tr.vec_dot_type, n));
      q::random_valid_row(t, rng, 0.05f, w.data(), n);
      const std::vector<float> x = gauss(n, rng);
      cpu::quantize_activations(tr.vec_dot_type, x.data(), a.data(), n);
      const float want = tr.vec_dot(n, w.data(), a.data());
      // Magnitude scale of the sum: Σ|w·a| from the dequantized rows.
      std::vector<float> wf(static_cast<size_t>(n)), af(static_cast<size_t>(n));
      tr.to_float(w.data(), wf.data(), n);
      q::traits(tr.vec_dot_type).to_float(a.data(), af.data(), n);
      double mag = 0;
      for (int64_t i = 0; i < n; ++i) mag += std::fabs(static_cast<double>(wf[i]) * af[i]);
      EXPECT_NEAR(simd(n, w.data(), a.data()), want, 1e-5 * mag + 1e-6) << tr.name << " n " << n;
    }
  }
}

TEST(IQuantSimd, FourRowsAndFourTokensEqualOneRowBitForBit) {
  if (!cpu::cpu_has_avx2()) GTEST_SKIP() << "no AVX2/FMA/F16C on this CPU";
  std::mt19937_64 rng(12);
  for (Type t : kSimdIQuants) {
    const q::TypeTraits& tr = q::traits(t);
    const cpu::VecDotFn one = cpu::best_vec_dot(t);
    const cpu::VecDotRowsFn four = cpu::best_vec_dot_rows4(t);
    const cpu::KTokens4Fn tok4 = cpu::best_vec_dot_tokens4(t);
    ASSERT_NE(four, nullptr) << tr.name;
    ASSERT_NE(tok4, nullptr) << tr.name;
    const int64_t n = 256 * 5, rows = 4;
    const size_t rb = q::row_bytes(t, n), ab = q::row_bytes(Type::Q8_K, n);
    std::vector<uint8_t> w(rb * rows), a(ab * 4);  // [rows × rb] weights, [4 tokens × ab] activations
    for (int64_t r = 0; r < rows; ++r) q::random_valid_row(t, rng, 0.05f, w.data() + r * rb, n);
    for (int k = 0; k < 4; ++k) {
      const std::vector<float> x = gauss(n, rng);
      cpu::quantize_activations(Type::Q8_K, x.data(), a.data() + k * ab, n);
    }
    float out4[4];
    four(n, w.data(), rb, a.data(), out4);
    for (int r = 0; r < 4; ++r) EXPECT_EQ(out4[r], one(n, w.data() + r * rb, a.data())) << tr.name << " row " << r;
    const void* toks[4] = {a.data(), a.data() + ab, a.data() + 2 * ab, a.data() + 3 * ab};
    std::vector<cpu::BlockQ8Kx4> a4(static_cast<size_t>(n / 256));
    cpu::interleave_q8_K_x4(toks, a4.data(), n);
    float out[4 * rows];  // [token][row]
    tok4(n, w.data(), rb, rows, a4.data(), out, rows);
    for (int k = 0; k < 4; ++k)
      for (int64_t r = 0; r < rows; ++r)
        EXPECT_EQ(out[k * rows + r], one(n, w.data() + r * rb, toks[k])) << tr.name << " token " << k << " row " << r;
  }
}

}  // namespace
}  // namespace tandem::test
