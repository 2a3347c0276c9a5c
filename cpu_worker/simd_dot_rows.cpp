// Dot products of FOUR weight rows with one activation row. A single-row
// dot is one long dependent chain of fused multiply-adds (latency-bound);
// four independent rows keep the FMA units busy. Each row's arithmetic is
// exactly that of its single-row kernel (same per-block order), so results
// are bit-identical to best_vec_dot's.
#include <cstring>

#include "core/quant_blocks.h"
#include "cpu_worker/simd_dot.h"
#include "cpu_worker/simd_x86.h"

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace tandem::cpu {

namespace q = core::quant;
using q::Type;

#if defined(__x86_64__) || defined(__i386__)
namespace {

using namespace x86;
constexpr int kRows = 4;

template <typename Block>
TANDEM_AVX2 inline const Block* row_blocks(const uint8_t* w, size_t stride, int r) {
  return reinterpret_cast<const Block*>(w + static_cast<size_t>(r) * stride);
}

// How each legacy type turns a block into 32 signed/unsigned bytes and pairs
// them with the activation bytes; types with a block minimum (Q4_1) add
// m·s per block, in the single-row kernel's order.

struct Q4_0Policy {
  using WBlock = q::BlockQ4_0;
  using ABlock = q::BlockQ8_0;
  static constexpr bool kHasMin = false;
  TANDEM_AVX2 static __m256i quants(const WBlock& b) {
    return _mm256_sub_epi8(unpack_nibbles32(b.qs), _mm256_set1_epi8(8));
  }
  TANDEM_AVX2 static __m256i pairs(__m256i qx, __m256i qy) { return dot_i8_pairs(qx, qy); }
  TANDEM_AVX2 static float min_term(const WBlock&, const ABlock&) { return 0.0f; }
};

struct Q4_1Policy {
  using WBlock = q::BlockQ4_1;
  using ABlock = q::BlockQ8_1;
  static constexpr bool kHasMin = true;
  TANDEM_AVX2 static __m256i quants(const WBlock& b) { return unpack_nibbles32(b.qs); }
  TANDEM_AVX2 static __m256i pairs(__m256i qx, __m256i qy) { return dot_u8_i8_pairs(qx, qy); }
  TANDEM_AVX2 static float min_term(const WBlock& x, const ABlock& y) { return h2f(x.m) * h2f(y.s); }
};

struct Q8_0Policy {
  using WBlock = q::BlockQ8_0;
  using ABlock = q::BlockQ8_0;
  static constexpr bool kHasMin = false;
  TANDEM_AVX2 static __m256i quants(const WBlock& b) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
  }
  TANDEM_AVX2 static __m256i pairs(__m256i qx, __m256i qy) { return dot_i8_pairs(qx, qy); }
  TANDEM_AVX2 static float min_term(const WBlock&, const ABlock&) { return 0.0f; }
};

// Four rows x two activation rows, the prefill kernel: each weight block is
// unpacked once and used for two tokens.
template <typename P>
TANDEM_AVX2 void rows4x2(int64_t n, const uint8_t* w, size_t stride, const void* a0, const void* a1, float* out0,
                         float* out1) {
  const auto* y0 = static_cast<const typename P::ABlock*>(a0);
  const auto* y1 = static_cast<const typename P::ABlock*>(a1);
  const int64_t nb = n / 32;
  __m256 acc0[kRows], acc1[kRows];
  float m0[kRows], m1[kRows];
  const typename P::WBlock* x[kRows];
  for (int r = 0; r < kRows; ++r) {
    acc0[r] = acc1[r] = _mm256_setzero_ps();
    m0[r] = m1[r] = 0.0f;
    x[r] = row_blocks<typename P::WBlock>(w, stride, r);
  }
  for (int64_t i = 0; i < nb; ++i) {
    const float yd0 = h2f(y0[i].d), yd1 = h2f(y1[i].d);
    const __m256i qy0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y0[i].qs));
    const __m256i qy1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y1[i].qs));
    for (int r = 0; r < kRows; ++r) {
      const auto& xb = x[r][i];
      if constexpr (P::kHasMin) {
        m0[r] += P::min_term(xb, y0[i]);
        m1[r] += P::min_term(xb, y1[i]);
      }
      const float xd = h2f(xb.d);
      const __m256i qx = P::quants(xb);
      acc0[r] = _mm256_fmadd_ps(_mm256_set1_ps(xd * yd0), _mm256_cvtepi32_ps(P::pairs(qx, qy0)), acc0[r]);
      acc1[r] = _mm256_fmadd_ps(_mm256_set1_ps(xd * yd1), _mm256_cvtepi32_ps(P::pairs(qx, qy1)), acc1[r]);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    out0[r] = P::kHasMin ? hsum_ps(acc0[r]) + m0[r] : hsum_ps(acc0[r]);
    out1[r] = P::kHasMin ? hsum_ps(acc1[r]) + m1[r] : hsum_ps(acc1[r]);
  }
}

template <typename P>
TANDEM_AVX2 void rows4(int64_t n, const uint8_t* w, size_t stride, const void* a, float* out) {
  const auto* y = static_cast<const typename P::ABlock*>(a);
  const int64_t nb = n / 32;
  __m256 acc[kRows];
  float mins[kRows];  // Σ m·s per row (types with a block minimum)
  const typename P::WBlock* x[kRows];
  for (int r = 0; r < kRows; ++r) {
    acc[r] = _mm256_setzero_ps();
    mins[r] = 0.0f;
    x[r] = row_blocks<typename P::WBlock>(w, stride, r);
  }
  for (int64_t i = 0; i < nb; ++i) {
    const float yd = h2f(y[i].d);
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    for (int r = 0; r < kRows; ++r) {
      const auto& xb = x[r][i];
      if constexpr (P::kHasMin) mins[r] += P::min_term(xb, y[i]);
      const __m256 d = _mm256_set1_ps(h2f(xb.d) * yd);
      acc[r] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(P::pairs(P::quants(xb), qy)), acc[r]);
    }
  }
  for (int r = 0; r < kRows; ++r) out[r] = P::kHasMin ? hsum_ps(acc[r]) + mins[r] : hsum_ps(acc[r]);
}

}  // namespace
#endif

VecDotRowsFn best_vec_dot_rows4(Type t) {
#if defined(__x86_64__) || defined(__i386__)
  if (!cpu_has_avx2()) return nullptr;
  switch (t) {
    case Type::Q4_0:
      return rows4<Q4_0Policy>;
    case Type::Q4_1:
      return rows4<Q4_1Policy>;
    case Type::Q8_0:
      return rows4<Q8_0Policy>;
    default:
      return nullptr;
  }
#else
  (void)t;
  return nullptr;
#endif
}

VecDotRows2Fn best_vec_dot_rows4x2(Type t) {
#if defined(__x86_64__) || defined(__i386__)
  if (!cpu_has_avx2()) return nullptr;
  switch (t) {
    case Type::Q4_0:
      return rows4x2<Q4_0Policy>;
    case Type::Q4_1:
      return rows4x2<Q4_1Policy>;
    case Type::Q8_0:
      return rows4x2<Q8_0Policy>;
    default:
      return nullptr;
  }
#else
  (void)t;
  return nullptr;
#endif
}

}  // namespace tandem::cpu
