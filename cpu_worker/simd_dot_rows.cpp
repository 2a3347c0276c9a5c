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

TANDEM_AVX2 void rows_q4_0(int64_t n, const uint8_t* w, size_t stride, const void* a, float* out) {
  const auto* y = static_cast<const q::BlockQ8_0*>(a);
  const int64_t nb = n / q::QK8_0;
  __m256 acc[kRows];
  const q::BlockQ4_0* x[kRows];
  for (int r = 0; r < kRows; ++r) {
    acc[r] = _mm256_setzero_ps();
    x[r] = row_blocks<q::BlockQ4_0>(w, stride, r);
  }
  for (int64_t i = 0; i < nb; ++i) {
    const float yd = h2f(y[i].d);
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    for (int r = 0; r < kRows; ++r) {
      const __m256 d = _mm256_set1_ps(h2f(x[r][i].d) * yd);
      const __m256i qx = _mm256_sub_epi8(unpack_nibbles32(x[r][i].qs), _mm256_set1_epi8(8));
      acc[r] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8_pairs(qx, qy)), acc[r]);
    }
  }
  for (int r = 0; r < kRows; ++r) out[r] = hsum_ps(acc[r]);
}

TANDEM_AVX2 void rows_q4_1(int64_t n, const uint8_t* w, size_t stride, const void* a, float* out) {
  const auto* y = static_cast<const q::BlockQ8_1*>(a);
  const int64_t nb = n / q::QK8_1;
  __m256 acc[kRows];
  float summs[kRows];  // Σ m·s per row: the block minimums' contribution
  const q::BlockQ4_1* x[kRows];
  for (int r = 0; r < kRows; ++r) {
    acc[r] = _mm256_setzero_ps();
    summs[r] = 0.0f;
    x[r] = row_blocks<q::BlockQ4_1>(w, stride, r);
  }
  for (int64_t i = 0; i < nb; ++i) {
    const float yd = h2f(y[i].d), ys = h2f(y[i].s);
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    for (int r = 0; r < kRows; ++r) {
      summs[r] += h2f(x[r][i].m) * ys;
      const __m256 d = _mm256_set1_ps(h2f(x[r][i].d) * yd);
      acc[r] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_u8_i8_pairs(unpack_nibbles32(x[r][i].qs), qy)), acc[r]);
    }
  }
  for (int r = 0; r < kRows; ++r) out[r] = hsum_ps(acc[r]) + summs[r];
}

TANDEM_AVX2 void rows_q8_0(int64_t n, const uint8_t* w, size_t stride, const void* a, float* out) {
  const auto* y = static_cast<const q::BlockQ8_0*>(a);
  const int64_t nb = n / q::QK8_0;
  __m256 acc[kRows];
  const q::BlockQ8_0* x[kRows];
  for (int r = 0; r < kRows; ++r) {
    acc[r] = _mm256_setzero_ps();
    x[r] = row_blocks<q::BlockQ8_0>(w, stride, r);
  }
  for (int64_t i = 0; i < nb; ++i) {
    const float yd = h2f(y[i].d);
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    for (int r = 0; r < kRows; ++r) {
      const __m256 d = _mm256_set1_ps(h2f(x[r][i].d) * yd);
      const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[r][i].qs));
      acc[r] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8_pairs(qx, qy)), acc[r]);
    }
  }
  for (int r = 0; r < kRows; ++r) out[r] = hsum_ps(acc[r]);
}

}  // namespace
#endif

VecDotRowsFn best_vec_dot_rows4(Type t) {
#if defined(__x86_64__) || defined(__i386__)
  if (!cpu_has_avx2()) return nullptr;
  switch (t) {
    case Type::Q4_0:
      return rows_q4_0;
    case Type::Q4_1:
      return rows_q4_1;
    case Type::Q8_0:
      return rows_q8_0;
    default:
      return nullptr;
  }
#else
  (void)t;
  return nullptr;
#endif
}

}  // namespace tandem::cpu
