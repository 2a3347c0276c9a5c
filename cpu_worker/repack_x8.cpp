#include "cpu_worker/repack_x8.h"

#include <cstring>
#include <string>

#include "core/error.h"
#include "core/quant_blocks.h"
#include "cpu_worker/simd_dot.h"
#include "cpu_worker/simd_x86.h"

namespace tandem::cpu {

namespace q = core::quant;

namespace {

bool has_x8_layout(q::Type t) { return t == q::Type::Q3_K || t == q::Type::Q4_K || t == q::Type::Q6_K; }

size_t x8_block_bytes(q::Type t) {
  return t == q::Type::Q4_K ? sizeof(BlockQ4Kx8) : t == q::Type::Q6_K ? sizeof(BlockQ6Kx8) : sizeof(BlockQ3Kx8);
}

void pack_q4_K(BlockQ4Kx8& b, int r, const q::BlockQ4_K& x) {
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

void pack_q6_K(BlockQ6Kx8& b, int r, const q::BlockQ6_K& x) {
  b.d[r] = x.d;
  for (int j = 0; j < 16; ++j) b.sc[j / 2][r][j % 2] = x.scales[j];
  for (int h = 0; h < 2; ++h)
    for (int g = 0; g < 8; ++g) {
      for (int k = 0; k < 2; ++k) std::memcpy(b.ql[h][k][g][r], x.ql + 64 * h + 32 * k + 4 * g, 4);
      std::memcpy(b.qh[h][g][r], x.qh + 32 * h + 4 * g, 4);
    }
}

void pack_q3_K(BlockQ3Kx8& b, int r, const q::BlockQ3_K& x) {
  b.d[r] = x.d;
  int8_t sc[16];
  q::unpack_q3_k_scales(x.scales, sc);
  for (int j = 0; j < 16; ++j) b.sc[j / 2][r][j % 2] = sc[j];
  uint8_t q3[q::QK_K];  // q + 4 of every value, 0..7
  for (int v = 0; v < q::QK_K; ++v) {
    const int h = v / 128, k = (v % 128) / 32, l = v % 32;
    const int low = (x.qs[32 * h + l] >> (2 * k)) & 3;
    const int high = (x.hmask[l] >> (4 * h + k)) & 1;
    q3[v] = static_cast<uint8_t>(low | high << 2);
  }
  for (int p = 0; p < 4; ++p)
    for (int g = 0; g < 8; ++g)
      for (int i = 0; i < 4; ++i)
        b.qs[p][g][r][i] = static_cast<uint8_t>(q3[64 * p + 4 * g + i] | q3[64 * p + 32 + 4 * g + i] << 4);
}

}  // namespace

bool x8_enabled(q::Type type, int64_t rows, int64_t cols) {
  return repack_enabled() && has_x8_layout(type) && cpu_has_avx2() && rows % 8 == 0 && cols % q::QK_K == 0;
}

size_t x8_group_bytes(q::Type type, int64_t cols) {
  return static_cast<size_t>(cols / q::QK_K) * x8_block_bytes(type);
}

void repack_x8_groups(q::Type type, const uint8_t* data, size_t row_bytes, int64_t cols, int64_t g0, int64_t g1,
                      uint8_t* out) {
  if (!has_x8_layout(type) || cols % q::QK_K != 0)
    throw core::Error("eight-row repack needs Q3_K, Q4_K or Q6_K and cols % 256 == 0");
  const int64_t nb = cols / q::QK_K;
  for (int64_t g = g0; g < g1; ++g)
    for (int r = 0; r < 8; ++r) {
      const uint8_t* row = data + static_cast<size_t>(8 * g + r) * row_bytes;
      for (int64_t i = 0; i < nb; ++i) {
        const size_t at = static_cast<size_t>(g * nb + i);
        if (type == q::Type::Q4_K)
          pack_q4_K(reinterpret_cast<BlockQ4Kx8*>(out)[at], r, reinterpret_cast<const q::BlockQ4_K*>(row)[i]);
        else if (type == q::Type::Q3_K)
          pack_q3_K(reinterpret_cast<BlockQ3Kx8*>(out)[at], r, reinterpret_cast<const q::BlockQ3_K*>(row)[i]);
        else
          pack_q6_K(reinterpret_cast<BlockQ6Kx8*>(out)[at], r, reinterpret_cast<const q::BlockQ6_K*>(row)[i]);
      }
    }
}

std::vector<uint8_t> repack_x8(q::Type type, const uint8_t* data, size_t row_bytes, int64_t rows, int64_t cols) {
  if (!has_x8_layout(type) || rows % 8 != 0 || cols % q::QK_K != 0)
    throw core::Error("eight-row repack needs Q3_K, Q4_K or Q6_K, rows % 8 == 0 and cols % 256 == 0");
  std::vector<uint8_t> out(static_cast<size_t>(rows / 8) * x8_group_bytes(type, cols));
  repack_x8_groups(type, data, row_bytes, cols, 0, rows / 8, out.data());
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

// Q4_K as llama.cpp's repacked q4_K_8x8 kernels (it repacks every Q4_K
// matrix whose rows divide by 8): per row exact int32 totals, fused into the
// accumulator with y.d·x.d — once per super-block for 1 to 3 tokens (its
// gemv), once per pair of sub-blocks (64 values) for 4 tokens (its gemm,
// which takes a batch four tokens at a time and leaves the rest to gemv);
// the mins the same way with -y.d·x.dmin.
template <int T>
TANDEM_AVX2 void q4k_x8(int64_t cols, const uint8_t* wp, const uint8_t* const* a, float* out, size_t out_stride) {
  constexpr bool kPerPair = T == 4;
  const int64_t nb = cols / q::QK_K;
  const auto* w = reinterpret_cast<const BlockQ4Kx8*>(wp);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256 acc[T], accm[T];  // lane r: row r of token t
  for (int t = 0; t < T; ++t) acc[t] = accm[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const BlockQ4Kx8& b = w[i];
    prefetch_span(w + i + 2, sizeof(BlockQ4Kx8));  // two super-blocks ahead
    const q::BlockQ8_K* y[T];
    for (int t = 0; t < T; ++t) y[t] = reinterpret_cast<const q::BlockQ8_K*>(a[t]) + i;
    const __m256 xd = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.d)));
    const __m256 xm = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.dmin)));
    alignas(16) int32_t pairs[T][4];  // per token: int16 bsum pairs (sub-blocks 2k, 2k+1)
    for (int t = 0; t < T; ++t) {
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[t]->bsums));
      _mm_store_si128(reinterpret_cast<__m128i*>(pairs[t]),
                      _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1)));
    }
    // Σ min·bsum of sub-block pair k per row: the two sub-blocks' mins
    // interleaved per row against the token's pair of sums.
    auto pair_mins = [&](int t, int k) {
      const __m256i m16 = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.mn[k])));
      return _mm256_madd_epi16(m16, _mm256_set1_epi32(pairs[t][k]));
    };
    __m256i isum[T];  // int32 lane r: Σ scale·q·y of row r
    for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
    // Sub-block j = 2p + half: low nibbles of chunk p (half 0), then high
    // (half 1) — one half at a time keeps the accumulators in registers.
    for (int j = 0; j < 8; ++j) {
      const int p = j / 2, half = j % 2;
      // The eight rows' scales of sub-block j as int16 pairs [s_r, s_r].
      const __m128i s8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.sc[j]));
      const __m256i sc = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(s8, s8));
      __m256i s16[T];  // int16: ≤ 16 products of ≤ 15·127 each, below 2^15
      for (int t = 0; t < T; ++t) s16[t] = _mm256_setzero_si256();
#pragma GCC unroll 8
      for (int g = 0; g < 8; ++g) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs[p][g]));
        const __m256i qv = _mm256_and_si256(half ? _mm256_srli_epi16(v, 4) : v, m4);
        for (int t = 0; t < T; ++t)
          s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(qv, bcast4(y[t]->qs + 32 * j + 4 * g)));
      }
      for (int t = 0; t < T; ++t) isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(s16[t], sc));
      if (kPerPair && half == 1)
        for (int t = 0; t < T; ++t) {
          acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(y[t]->d), xd), _mm256_cvtepi32_ps(isum[t]), acc[t]);
          accm[t] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(-y[t]->d), xm), _mm256_cvtepi32_ps(pair_mins(t, p)),
                                    accm[t]);
          isum[t] = _mm256_setzero_si256();
        }
    }
    if constexpr (!kPerPair)
      for (int t = 0; t < T; ++t) {
        __m256i mins = pair_mins(t, 0);
        for (int k = 1; k < 4; ++k) mins = _mm256_add_epi32(mins, pair_mins(t, k));
        acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(y[t]->d), xd), _mm256_cvtepi32_ps(isum[t]), acc[t]);
        accm[t] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(-y[t]->d), xm), _mm256_cvtepi32_ps(mins), accm[t]);
      }
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(out + t * out_stride, _mm256_add_ps(acc[t], accm[t]));
}


// Σ_j sc_j·bsum_j per row (scale pairs [sub-block pair][row][2] against the
// token's bsum pairs): the offset term of Q3_K (×4) and Q6_K (×32).
TANDEM_AVX2 inline __m256i scale_bsums(const int8_t (*sc)[8][2], const int16_t* bsums) {
  alignas(32) int32_t bpair[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(bpair), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bsums)));
  __m256i off = _mm256_setzero_si256();
  for (int k = 0; k < 8; ++k) {
    const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc[k])));
    off = _mm256_add_epi32(off, _mm256_madd_epi16(s16, _mm256_set1_epi32(bpair[k])));
  }
  return off;
}

// [s_r, s_r] int16 pairs of sub-block 2c + e for the eight rows.
TANDEM_AVX2 inline __m256i pair_scale(const int8_t (*sc)[8][2], int c, int e) {
  const __m128i pair = _mm_loadu_si128(reinterpret_cast<const __m128i*>(sc[c]));
  const __m128i sel = _mm_add_epi8(_mm_setr_epi8(0, 0, 2, 2, 4, 4, 6, 6, 8, 8, 10, 10, 12, 12, 14, 14),
                                   _mm_set1_epi8(static_cast<char>(e)));
  return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(pair, sel));
}

// Q6_K: per sub-block of 16 values (groups 4e .. 4e+3 of chunk c), int16
// sums of two groups at a time (q ≤ 63), then the scale; the -32 offset once
// per block through the bsums, as the row kernel does.
// Batch: llama.cpp's tiled float steps (res = x.d·total, acc = fma(res, y.d,
// acc)) instead of fma(y.d·x.d, total, acc).
template <int T, bool Batch>
TANDEM_AVX2 void q6k_x8(int64_t cols, const uint8_t* wp, const uint8_t* const* a, float* out, size_t out_stride) {
  const int64_t nb = cols / q::QK_K;
  const auto* w = reinterpret_cast<const BlockQ6Kx8*>(wp);
  const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
  __m256 acc[T];  // lane r: row r of token t
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const BlockQ6Kx8& b = w[i];
    prefetch_span(w + i + 2, sizeof(BlockQ6Kx8));  // two super-blocks ahead
    const q::BlockQ8_K* y[T];
    for (int t = 0; t < T; ++t) y[t] = reinterpret_cast<const q::BlockQ8_K*>(a[t]) + i;
    __m256i isum[T];
    for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
    if constexpr (T <= 2) {
      // Decode: each load of ql[h][0][g], ql[h][1][g] and qh[h][g] gives the
      // quants of all four chunks k of half h (group g), so every byte is
      // loaded once; four int16 accumulators, one per chunk.
      const __m256i m30 = _mm256_set1_epi8(0x30), m0c = _mm256_set1_epi8(0x0C);
      for (int h = 0; h < 2; ++h)
        for (int e = 0; e < 2; ++e)
          for (int gp = 0; gp < 2; ++gp) {
            __m256i s16[T][4];  // ≤ 4 products of ≤ 63·127: below 2^15
            for (int t = 0; t < T; ++t)
              for (int k = 0; k < 4; ++k) s16[t][k] = _mm256_setzero_si256();
            for (int gg = 0; gg < 2; ++gg) {
              const int g = 4 * e + 2 * gp + gg;
              const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql[h][0][g]));
              const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql[h][1][g]));
              const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh[h][g]));
              const __m256i qv[4] = {
                  _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hb, m3), 4)),
                  _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(hb, m0c), 2)),
                  _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hb, m30)),
                  _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                  _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30))};
              for (int k = 0; k < 4; ++k)
                for (int t = 0; t < T; ++t)
                  s16[t][k] = _mm256_add_epi16(s16[t][k],
                                               _mm256_maddubs_epi16(qv[k], bcast4(y[t]->qs + 32 * (4 * h + k) + 4 * g)));
            }
            for (int k = 0; k < 4; ++k) {
              const __m256i sc = pair_scale(b.sc, 4 * h + k, e);
              for (int t = 0; t < T; ++t) isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(s16[t][k], sc));
            }
          }
    } else
    for (int c = 0; c < 8; ++c) {  // chunk c = 4h + k: values 32c .. 32c+31
      const int h = c / 4, k = c % 4;
      for (int e = 0; e < 2; ++e) {  // sub-block 2c + e: groups 4e .. 4e+3
        const __m256i sc = pair_scale(b.sc, c, e);
        for (int gp = 0; gp < 2; ++gp) {
          __m256i s16[T];  // ≤ 4 products of ≤ 63·127: below 2^15
          for (int t = 0; t < T; ++t) s16[t] = _mm256_setzero_si256();
          for (int gg = 0; gg < 2; ++gg) {
            const int g = 4 * e + 2 * gp + gg;
            const __m256i l = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql[h][k & 1][g]));
            const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh[h][g]));
            const __m256i lo = _mm256_and_si256((k & 2) ? _mm256_srli_epi16(l, 4) : l, m4);
            const __m256i hi = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * k), m3), 4);
            const __m256i qv = _mm256_or_si256(lo, hi);
            for (int t = 0; t < T; ++t)
              s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(qv, bcast4(y[t]->qs + 32 * c + 4 * g)));
          }
          for (int t = 0; t < T; ++t) isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(s16[t], sc));
        }
      }
    }
    const __m256 xd = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.d)));
    for (int t = 0; t < T; ++t) {
      const __m256i total = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(scale_bsums(b.sc, y[t]->bsums), 5));
      if constexpr (Batch)
        acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(xd, _mm256_cvtepi32_ps(total)), _mm256_set1_ps(y[t]->d), acc[t]);
      else
        acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(y[t]->d), xd), _mm256_cvtepi32_ps(total), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(out + t * out_stride, acc[t]);
}


// Q3_K in llama.cpp's vec_dot arithmetic (decode: under
// kBatchArithmeticTokens tokens, simd_dot.h): per row eight int32 lanes per
// super-block, lane g holding values 4g .. 4g+3 of every 32-value chunk with
// the -4 taken out inside it, each fused into its own float lane with
// y.d·x.d; the eight summed at the end in hsum_ps's order. Equal, row for
// row, to the row kernel's lanes (simd_dot_kquants.cpp).
template <int T>
TANDEM_AVX2 void q3k_x8_lanes(int64_t cols, const uint8_t* wp, const uint8_t* const* a, float* out,
                              size_t out_stride) {
  const int64_t nb = cols / q::QK_K;
  const auto* w = reinterpret_cast<const BlockQ3Kx8*>(wp);
  const __m256i m4 = _mm256_set1_epi8(0x0F), four = _mm256_set1_epi8(4);
  __m256 acc[T][8];  // [token][lane g]: float lane r is row r
  for (int t = 0; t < T; ++t)
    for (int g = 0; g < 8; ++g) acc[t][g] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const BlockQ3Kx8& b = w[i];
    prefetch_span(w + i + 2, sizeof(BlockQ3Kx8));  // two super-blocks ahead
    const q::BlockQ8_K* y[T];
    for (int t = 0; t < T; ++t) y[t] = reinterpret_cast<const q::BlockQ8_K*>(a[t]) + i;
    const __m256 xd = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.d)));
    __m256 d[T];
    for (int t = 0; t < T; ++t) d[t] = _mm256_mul_ps(_mm256_set1_ps(y[t]->d), xd);
    for (int g = 0; g < 8; ++g) {  // lane g: values 4g .. 4g+3 of each chunk, sub-block 2c + g/4
      __m256i isum[T];  // int32 lane r: row r's lane g
      for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
      for (int p = 0; p < 4; ++p) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs[p][g]));
        for (int half = 0; half < 2; ++half) {
          const int c = 2 * p + half;
          const __m256i qv = _mm256_and_si256(half ? _mm256_srli_epi16(v, 4) : v, m4);
          const __m256i sc = pair_scale(b.sc, c, g / 4);
          for (int t = 0; t < T; ++t) {
            const __m256i yb = bcast4(y[t]->qs + 32 * c + 4 * g);
            const __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(qv, yb), _mm256_maddubs_epi16(four, yb));
            isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(p16, sc));
          }
        }
      }
      for (int t = 0; t < T; ++t) acc[t][g] = _mm256_fmadd_ps(d[t], _mm256_cvtepi32_ps(isum[t]), acc[t][g]);
    }
  }
  for (int t = 0; t < T; ++t) {
    const __m256 e = _mm256_add_ps(_mm256_add_ps(acc[t][0], acc[t][4]), _mm256_add_ps(acc[t][2], acc[t][6]));
    const __m256 f = _mm256_add_ps(_mm256_add_ps(acc[t][1], acc[t][5]), _mm256_add_ps(acc[t][3], acc[t][7]));
    _mm256_storeu_ps(out + t * out_stride, _mm256_add_ps(e, f));
  }
}

// Q3_K in the batch arithmetic (kBatchArithmeticTokens tokens or more; as
// llama.cpp's tiled kernels: res = x.d·total, acc = fma(res, y.d, acc)).
// Nibbles as Q4_Kx8's (q + 4, 0..7); per 32-value chunk two sub-blocks of 16
// (groups 0-3, 4-7), each summed in int16 before its scale; -4·Σ sc·bsum
// once per block.
template <int T>
TANDEM_AVX2 void q3k_x8(int64_t cols, const uint8_t* wp, const uint8_t* const* a, float* out, size_t out_stride) {
  const int64_t nb = cols / q::QK_K;
  const auto* w = reinterpret_cast<const BlockQ3Kx8*>(wp);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const BlockQ3Kx8& b = w[i];
    prefetch_span(w + i + 2, sizeof(BlockQ3Kx8));  // two super-blocks ahead
    const q::BlockQ8_K* y[T];
    for (int t = 0; t < T; ++t) y[t] = reinterpret_cast<const q::BlockQ8_K*>(a[t]) + i;
    __m256i isum[T];
    for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
    for (int c = 0; c < 8; ++c) {  // values 32c .. 32c+31: nibble half c % 2 of chunk pair p = c / 2
      const int p = c / 2, half = c % 2;
      for (int e = 0; e < 2; ++e) {  // sub-block 2c + e: groups 4e .. 4e+3
        __m256i s16[T];  // ≤ 8 products of ≤ 7·127
        for (int t = 0; t < T; ++t) s16[t] = _mm256_setzero_si256();
        for (int gg = 0; gg < 4; ++gg) {
          const int g = 4 * e + gg;
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs[p][g]));
          const __m256i qv = _mm256_and_si256(half ? _mm256_srli_epi16(v, 4) : v, m4);
          for (int t = 0; t < T; ++t)
            s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(qv, bcast4(y[t]->qs + 32 * c + 4 * g)));
        }
        const __m256i sc = pair_scale(b.sc, c, e);
        for (int t = 0; t < T; ++t) isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(s16[t], sc));
      }
    }
    const __m256 xd = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.d)));
    for (int t = 0; t < T; ++t) {
      const __m256i total = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(scale_bsums(b.sc, y[t]->bsums), 2));
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(xd, _mm256_cvtepi32_ps(total)), _mm256_set1_ps(y[t]->d), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(out + t * out_stride, acc[t]);
}

}  // namespace
#endif

X8DotFn x8_kernel(q::Type type, int n_tok, bool batch) {
  (void)batch;  // unused where there are no x86 kernels
#if defined(__x86_64__) || defined(__i386__)
  static constexpr X8DotFn q3[2][4] = {{q3k_x8_lanes<1>, q3k_x8_lanes<2>, q3k_x8_lanes<3>, q3k_x8_lanes<4>},
                                       {q3k_x8<1>, q3k_x8<2>, q3k_x8<3>, q3k_x8<4>}};
  static constexpr X8DotFn q4[4] = {q4k_x8<1>, q4k_x8<2>, q4k_x8<3>, q4k_x8<4>};
  static constexpr X8DotFn q6[2][4] = {{q6k_x8<1, false>, q6k_x8<2, false>, q6k_x8<3, false>, q6k_x8<4, false>},
                                       {q6k_x8<1, true>, q6k_x8<2, true>, q6k_x8<3, true>, q6k_x8<4, true>}};
  if (n_tok >= 1 && n_tok <= 4 && cpu_has_avx2()) {
    if (type == q::Type::Q3_K) return q3[batch][n_tok - 1];
    if (type == q::Type::Q4_K) return q4[n_tok - 1];
    if (type == q::Type::Q6_K) return q6[batch][n_tok - 1];
  }
#endif
  throw core::Error("eight-row kernel: Q3_K, Q4_K or Q6_K, 1 to 4 tokens per call, on an AVX2 CPU (asked: " +
                    std::string(q::type_name(type)) + ", " + std::to_string(n_tok) + " tokens)");
}

void x8_dot(q::Type type, int64_t cols, const uint8_t* w, const uint8_t* const* a, int n_tok, float* out,
            size_t out_stride) {
  x8_kernel(type, n_tok)(cols, w, a, out, out_stride);
}

}  // namespace tandem::cpu
