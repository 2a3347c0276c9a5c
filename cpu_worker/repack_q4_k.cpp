#include "cpu_worker/repack_q4_k.h"

#include <cstdlib>
#include <cstring>

#include "core/error.h"
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

bool q4_K_x8_enabled(int64_t rows, int64_t cols) {
  static const bool on = [] {
    const char* v = std::getenv("TANDEM_REPACK");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return on && cpu_has_avx2() && rows % 8 == 0 && cols % q::QK_K == 0;
}

std::vector<uint8_t> repack_q4_K_x8(const uint8_t* data, size_t row_bytes, int64_t rows, int64_t cols) {
  if (rows % 8 != 0 || cols % q::QK_K != 0)
    throw core::Error("Q4_K repack needs rows % 8 == 0 and cols % 256 == 0");
  const int64_t nb = cols / q::QK_K;
  std::vector<uint8_t> out(static_cast<size_t>(rows / 8 * nb) * sizeof(BlockQ4Kx8));
  auto* dst = reinterpret_cast<BlockQ4Kx8*>(out.data());
  for (int64_t g = 0; g < rows / 8; ++g) {
    for (int64_t i = 0; i < nb; ++i) {
      BlockQ4Kx8& b = dst[g * nb + i];
      for (int r = 0; r < 8; ++r) {
        const auto& x = reinterpret_cast<const q::BlockQ4_K*>(data + static_cast<size_t>(8 * g + r) * row_bytes)[i];
        b.d[r] = x.d;
        b.dmin[r] = x.dmin;
        for (int j = 0; j < 8; ++j) {
          uint8_t s, m;
          q::get_scale_min_k4(j, x.scales, &s, &m);
          b.sc[j][r] = s;
          b.mn[j / 2][r][j % 2] = m;
        }
        for (int p = 0; p < 4; ++p)
          for (int k = 0; k < 8; ++k) std::memcpy(b.qs[p][k][r], x.qs + 32 * p + 4 * k, 4);
      }
    }
  }
  return out;
}

#if defined(__x86_64__) || defined(__i386__)
namespace {

using namespace x86;

TANDEM_AVX2 inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

template <int T>
TANDEM_AVX2 void x8_dot(int64_t cols, const uint8_t* wp, const uint8_t* const* a, float* out, size_t out_stride) {
  const int64_t nb = cols / q::QK_K;
  const auto* w = reinterpret_cast<const BlockQ4Kx8*>(wp);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256 acc[T], accm[T];  // lane r: row r of token t
  for (int t = 0; t < T; ++t) acc[t] = accm[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const BlockQ4Kx8& b = w[i];
    const q::BlockQ8_K* y[T];
    for (int t = 0; t < T; ++t) y[t] = reinterpret_cast<const q::BlockQ8_K*>(a[t]) + i;
    __m256i isum[T];  // int32 lane r: Σ scale·q·y of row r
    for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
    for (int p = 0; p < 4; ++p) {
      // Scales of sub-blocks 2p, 2p+1 as int16 pairs [s_r, s_r] per row.
      __m128i s8;
      s8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.sc[2 * p]));
      const __m256i sc_lo = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(s8, s8));
      s8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.sc[2 * p + 1]));
      const __m256i sc_hi = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(s8, s8));
      __m256i lo[T], hi[T];  // int16: ≤ 16 products of ≤ 15·127 each, below 2^15
      for (int t = 0; t < T; ++t) lo[t] = hi[t] = _mm256_setzero_si256();
#pragma GCC unroll 8
      for (int g = 0; g < 8; ++g) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs[p][g]));
        const __m256i ql = _mm256_and_si256(v, m4);
        const __m256i qh = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        for (int t = 0; t < T; ++t) {
          lo[t] = _mm256_add_epi16(lo[t], _mm256_maddubs_epi16(ql, bcast4(y[t]->qs + 64 * p + 4 * g)));
          hi[t] = _mm256_add_epi16(hi[t], _mm256_maddubs_epi16(qh, bcast4(y[t]->qs + 64 * p + 32 + 4 * g)));
        }
      }
      for (int t = 0; t < T; ++t)
        isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(_mm256_madd_epi16(lo[t], sc_lo), _mm256_madd_epi16(hi[t], sc_hi)));
    }
    const __m256 xd = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.d)));
    const __m256 xm = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.dmin)));
    for (int t = 0; t < T; ++t) {
      // Σ_j min_j·bsum_j per row: mins of two sub-blocks interleaved per
      // row against the pair of sums.
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[t]->bsums));
      const __m128i bp = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
      alignas(16) int32_t pairs[4];  // int16 pairs (bp[2k], bp[2k+1])
      _mm_store_si128(reinterpret_cast<__m128i*>(pairs), bp);
      __m256i mins = _mm256_setzero_si256();
      for (int k = 0; k < 4; ++k) {
        const __m256i m16 = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.mn[k])));
        mins = _mm256_add_epi32(mins, _mm256_madd_epi16(m16, _mm256_set1_epi32(pairs[k])));
      }
      const __m256 yd = _mm256_set1_ps(y[t]->d);
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(yd, xd), _mm256_cvtepi32_ps(isum[t]), acc[t]);
      accm[t] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(-y[t]->d), xm), _mm256_cvtepi32_ps(mins), accm[t]);
    }
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(out + t * out_stride, _mm256_add_ps(acc[t], accm[t]));
}

}  // namespace
#endif

void q4_K_x8_dot(int64_t cols, const uint8_t* w, const uint8_t* const* a, int n_tok, float* out, size_t out_stride) {
#if defined(__x86_64__) || defined(__i386__)
  switch (n_tok) {
    case 1: return x8_dot<1>(cols, w, a, out, out_stride);
    case 2: return x8_dot<2>(cols, w, a, out, out_stride);
    case 3: return x8_dot<3>(cols, w, a, out, out_stride);
    case 4: return x8_dot<4>(cols, w, a, out, out_stride);
    default: break;
  }
#endif
  throw core::Error("q4_K_x8_dot: 1 to 4 tokens per call on an AVX2 CPU");
}

}  // namespace tandem::cpu
