#include "cpu_worker/swiglu.h"

#include <immintrin.h>

#include <bit>
#include <cmath>

#include "cpu_worker/simd_dot.h"

namespace tandem::cpu {

namespace {

// exp(x) = 2^n · e^b with n = round(x / ln2) and |b| ≤ ln2/2; e^b - 1 ≈ a
// degree-5 polynomial in b (coefficients below, Horner-like evaluation in
// two halves); 2^n is built in the exponent bits. Inputs with |n| > 126 take
// a path that splits the scale in two factors so neither overflows.
constexpr float kShift = 0x1.8p23f;       // adding it rounds to an integer in the low mantissa bits
constexpr float kInvLn2 = 0x1.715476p+0f;
constexpr float kLn2Hi = 0x1.62e4p-1f;
constexpr float kLn2Lo = 0x1.7f7d1cp-20f;
constexpr float kC0 = 0x1.ffffecp-1f, kC1 = 0x1.fffdb6p-2f, kC2 = 0x1.555e66p-3f, kC3 = 0x1.573e2ep-5f,
                kC4 = 0x1.0e4020p-7f;

inline float from_bits(uint32_t u) { return std::bit_cast<float>(u); }
inline uint32_t to_bits(float f) { return std::bit_cast<uint32_t>(f); }

float expf_scalar(float x) {
  const float z = std::fma(x, kInvLn2, kShift);
  const float n = z - kShift;
  const float b = std::fma(-n, kLn2Lo, std::fma(-n, kLn2Hi, x));
  const uint32_t e = to_bits(z) << 23;
  const float k = from_bits(e + to_bits(1.0f));
  const float u = b * b;
  const float j = std::fma(std::fma(std::fma(kC4, b, kC3), u, std::fma(kC2, b, kC1)), u, kC0 * b);
  const float an = std::fabs(n);
  if (!(an > 126.0f)) return std::fma(j, k, k);
  const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;
  const float s1 = from_bits(g + 0x7f000000u);
  const float s2 = from_bits(e - g);
  if (an > 192.0f) return s1 * s1;
  return std::fma(s2, j, s2) * s1;
}

void swiglu_scalar(float* gate, const float* up, int64_t n, int64_t begin) {
  for (int64_t i = begin; i < n; ++i) {
    const float x = gate[i];
    gate[i] = (x / (1.0f + expf_scalar(0.0f - x))) * up[i];
  }
}

__attribute__((target("avx2,fma"))) __m256 expf_avx2(__m256 x) {
  const __m256 shift = _mm256_set1_ps(kShift);
  const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(kInvLn2), shift);
  const __m256 n = _mm256_sub_ps(z, shift);
  const __m256 b =
      _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x));
  const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
  const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1.0f))));
  const __m256 an = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
  const __m256 big = _mm256_cmp_ps(an, _mm256_set1_ps(126.0f), _CMP_GT_OQ);
  const __m256 u = _mm256_mul_ps(b, b);
  const __m256 j = _mm256_fmadd_ps(
      _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(kC4), b, _mm256_set1_ps(kC3)), u,
                      _mm256_fmadd_ps(_mm256_set1_ps(kC2), b, _mm256_set1_ps(kC1))),
      u, _mm256_mul_ps(_mm256_set1_ps(kC0), b));
  const __m256 normal = _mm256_fmadd_ps(j, k, k);
  if (!_mm256_movemask_ps(big)) return normal;
  const __m256i g = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
                                     _mm256_set1_epi32(static_cast<int>(0x82000000u)));
  const __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000)));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
  const __m256 huge = _mm256_cmp_ps(an, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
  const __m256 scaled = _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1);
  const __m256 mid = _mm256_blendv_ps(normal, scaled, big);
  return _mm256_blendv_ps(mid, _mm256_mul_ps(s1, s1), huge);
}

__attribute__((target("avx2,fma"))) void swiglu_avx2(float* gate, const float* up, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(gate + i);
    const __m256 e = expf_avx2(_mm256_sub_ps(_mm256_setzero_ps(), x));
    _mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
  }
  // llama.cpp finishes a tail shorter than one vector with libm's expf.
  for (; i < n; ++i) {
    const float x = gate[i];
    gate[i] = (x / (1.0f + std::exp(-x))) * up[i];
  }
}

}  // namespace

float approx_expf(float x) { return expf_scalar(x); }

void swiglu(float* gate, const float* up, int64_t n) {
  if (cpu_has_avx2()) {
    swiglu_avx2(gate, up, n);
  } else {
    swiglu_scalar(gate, up, n, 0);
  }
}

}  // namespace tandem::cpu
