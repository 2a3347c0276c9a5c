// AVX2 dot products of K-quant weight rows (Q2_K..Q6_K) with Q8_K
// activation rows, as one kernel template over R weight rows × T activation
// rows. R = T = 1 is the single-row dot; R = 4 keeps four independent FMA
// chains busy in decode; R = 4, T = 2 unpacks each weight block once for two
// tokens in prefill. Every (row, token) pair runs the same instruction
// sequence whatever R and T are, so all variants give bit-identical results.
//
// Per super-block of 256 values the integer work is exact: quants ×
// activations × sub-block scales in int32 lanes, and the per-sub-block mins
// (or the Q6_K offset) against Q8_K's bsums. Scales are decoded with vector
// shuffles straight from the block: building them in a small array and
// reloading it as a vector costs a store-forwarding stall per block, which
// made the first version of these kernels compute-bound at ~4 GB/s.
#include <cstring>

#include "core/quant_blocks.h"
#include "cpu_worker/simd_dot_kquants.h"
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

// Logical right shift of every byte by a run-time count.
TANDEM_AVX2 inline __m256i srl_bytes(__m256i v, int count, __m256i mask) {
  return _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(count)), mask);
}

// pshufb masks: kPairMask[c] turns 16 int8 sub-block scales into the bytes
// [s(2c) × 8, s(2c+1) × 8] (scales per 16 values, a 32-value chunk spans two);
// kWordMask[c] broadcasts int16 lane c of a 128-bit lane (scales per 32).
struct ShuffleMasks {
  alignas(16) uint8_t pair[8][16];
  alignas(32) uint8_t word[8][32];
  constexpr ShuffleMasks() : pair{}, word{} {
    for (int c = 0; c < 8; ++c) {
      for (int i = 0; i < 16; ++i) pair[c][i] = static_cast<uint8_t>(2 * c + (i >= 8));
      for (int i = 0; i < 32; ++i) word[c][i] = static_cast<uint8_t>(2 * c + (i & 1));
    }
  }
};
constexpr ShuffleMasks kMasks;

// int16 scale vector [s(2c) × 8 | s(2c+1) × 8] from 16 int8 scales: maddubs
// lanes 0..7 hold values 0..15 of the chunk, lanes 8..15 values 16..31.
TANDEM_AVX2 inline __m256i pair_scales(__m128i sc8, int c) {
  return _mm256_cvtepi8_epi16(
      _mm_shuffle_epi8(sc8, _mm_load_si128(reinterpret_cast<const __m128i*>(kMasks.pair[c]))));
}

TANDEM_AVX2 inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// ---- per-type block decoders ---------------------------------------------------
// Each decoder, built from one weight block, offers:
//   quants(c)            the 32 quants of chunk c (values 32c .. 32c+31)
//   dot(qv, c, y)        int32 lanes of Σ scale·q·y over the chunk
//   offset(bsums)        int32 lanes subtracted once per block (Q6_K's -32)
//   mins(bsums)          int32 lanes of Σ min·bsum, scaled by -dmin (kHasMin)
//   d, dmin              the block's float scales

// The 6-bit scales and mins of Q4_K / Q5_K: bytes 0..3 = scales 0..3,
// 4..7 = scales 4..7, 8..11 = mins 0..3, 12..15 = mins 4..7.
TANDEM_AVX2 inline __m256i k4_scales_mins(const uint8_t* packed) {
  uint32_t u[4];
  std::memcpy(u, packed, 12);
  constexpr uint32_t k6 = 0x3f3f3f3f, k4 = 0x0f0f0f0f, k2 = 0x03030303;
  u[3] = ((u[2] >> 4) & k4) | (((u[1] >> 6) & k2) << 4);
  const uint32_t mins_lo = u[1] & k6;
  u[1] = (u[2] & k4) | (((u[0] >> 6) & k2) << 4);
  u[2] = mins_lo;
  u[0] &= k6;
  return _mm256_cvtepu8_epi16(_mm_set_epi32(static_cast<int>(u[3]), static_cast<int>(u[2]), static_cast<int>(u[1]),
                                            static_cast<int>(u[0])));
}

// Σ mins·bsums for scales-per-32 types: bsums are per 16, so pairs are added.
TANDEM_AVX2 inline __m256i k4_mins(__m128i mins16, const int16_t* bsums) {
  const __m256i b = load32(bsums);
  const __m128i pairs = _mm_hadd_epi16(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
  return _mm256_zextsi128_si256(_mm_madd_epi16(mins16, pairs));
}

struct Q4K {
  using Block = q::BlockQ4_K;
  static constexpr bool kHasMin = true;
  static constexpr bool kHasOffset = false;
  const Block& x;
  __m256i scales;  // the 8 int16 scales in both 128-bit lanes
  __m128i mins;    // 8 int16 mins
  TANDEM_AVX2 explicit Q4K(const Block& b) : x(b) {
    const __m256i sm = k4_scales_mins(b.scales);
    const __m128i s = _mm256_castsi256_si128(sm);
    scales = _mm256_set_m128i(s, s);
    mins = _mm256_extracti128_si256(sm, 1);
  }
  TANDEM_AVX2 float d() const { return h2f(x.d); }
  TANDEM_AVX2 float dmin() const { return h2f(x.dmin); }
  TANDEM_AVX2 __m256i quants(int c) const {
    const __m256i v = load32(x.qs + 32 * (c / 2));
    return _mm256_and_si256((c & 1) ? _mm256_srli_epi16(v, 4) : v, _mm256_set1_epi8(0x0F));
  }
  TANDEM_AVX2 __m256i dot(__m256i qv, int c, __m256i y) const {
    const __m256i sc = _mm256_shuffle_epi8(scales, load32(kMasks.word[c]));
    return _mm256_madd_epi16(_mm256_maddubs_epi16(qv, y), sc);
  }
  TANDEM_AVX2 __m256i min_sums(const int16_t* bsums) const { return k4_mins(mins, bsums); }
};

struct Q5K {
  using Block = q::BlockQ5_K;
  static constexpr bool kHasMin = true;
  static constexpr bool kHasOffset = false;
  const Block& x;
  __m256i scales;
  __m128i mins;
  __m256i qh;  // bit c of byte l: 5th bit of value 32c + l
  TANDEM_AVX2 explicit Q5K(const Block& b) : x(b) {
    const __m256i sm = k4_scales_mins(b.scales);
    const __m128i s = _mm256_castsi256_si128(sm);
    scales = _mm256_set_m128i(s, s);
    mins = _mm256_extracti128_si256(sm, 1);
    qh = load32(b.qh);
  }
  TANDEM_AVX2 float d() const { return h2f(x.d); }
  TANDEM_AVX2 float dmin() const { return h2f(x.dmin); }
  TANDEM_AVX2 __m256i quants(int c) const {
    const __m256i v = load32(x.qs + 32 * (c / 2));
    const __m256i lo = _mm256_and_si256((c & 1) ? _mm256_srli_epi16(v, 4) : v, _mm256_set1_epi8(0x0F));
    const __m256i hb = _mm256_slli_epi16(srl_bytes(qh, c, _mm256_set1_epi8(1)), 4);  // 0 or 16
    return _mm256_or_si256(lo, hb);
  }
  TANDEM_AVX2 __m256i dot(__m256i qv, int c, __m256i y) const {
    const __m256i sc = _mm256_shuffle_epi8(scales, load32(kMasks.word[c]));
    return _mm256_madd_epi16(_mm256_maddubs_epi16(qv, y), sc);
  }
  TANDEM_AVX2 __m256i min_sums(const int16_t* bsums) const { return k4_mins(mins, bsums); }
};

struct Q6K {
  using Block = q::BlockQ6_K;
  static constexpr bool kHasMin = false;
  static constexpr bool kHasOffset = true;
  const Block& x;
  __m128i sc8;  // 16 int8 sub-block scales
  TANDEM_AVX2 explicit Q6K(const Block& b) : x(b), sc8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales))) {}
  TANDEM_AVX2 float d() const { return h2f(x.d); }
  TANDEM_AVX2 float dmin() const { return 0.0f; }
  // Chunk c = 4h + k of half h: low nibbles of ql[64h + 32(k&1) ...] (high
  // nibbles for k >= 2) and bits 2k, 2k+1 of qh[32h ...]; q in 0..63.
  TANDEM_AVX2 __m256i quants(int c) const {
    const int h = c / 4, k = c % 4;
    const __m256i l4 = load32(x.ql + 64 * h + 32 * (k & 1));
    const __m256i lo = _mm256_and_si256((k & 2) ? _mm256_srli_epi16(l4, 4) : l4, _mm256_set1_epi8(0x0F));
    const __m256i hi = _mm256_slli_epi16(srl_bytes(load32(x.qh + 32 * h), 2 * k, _mm256_set1_epi8(3)), 4);
    return _mm256_or_si256(lo, hi);
  }
  TANDEM_AVX2 __m256i dot(__m256i qv, int c, __m256i y) const {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(qv, y), pair_scales(sc8, c));  // q <= 63: no saturation
  }
  // Σ (q - 32)·y·sc = Σ q·y·sc - 32 Σ sc·bsum.
  TANDEM_AVX2 __m256i offset(const int16_t* bsums) const {
    return _mm256_slli_epi32(_mm256_madd_epi16(load32(bsums), _mm256_cvtepi8_epi16(sc8)), 5);
  }
};

struct Q3K {
  using Block = q::BlockQ3_K;
  static constexpr bool kHasMin = false;
  static constexpr bool kHasOffset = false;
  const Block& x;
  __m128i sc8;  // 16 int8 sub-block scales, already minus 32
  __m256i hm;   // bit 4h + k of byte l: high bit of value 128h + 32k + l
  TANDEM_AVX2 explicit Q3K(const Block& b) : x(b), hm(load32(b.hmask)) {
    // Low nibbles: bytes 0..7 (sub-blocks 0..7), their high nibbles
    // (8..15); top two bits: bytes 8..11, two bits per sub-block.
    uint32_t u[4];
    std::memcpy(u, b.scales, 12);
    constexpr uint32_t k4 = 0x0f0f0f0f, k2 = 0x03030303;
    const uint32_t top = u[2];
    u[2] = ((u[0] >> 4) & k4) | (((top >> 4) & k2) << 4);
    u[3] = ((u[1] >> 4) & k4) | (((top >> 6) & k2) << 4);
    u[0] = (u[0] & k4) | ((top & k2) << 4);
    u[1] = (u[1] & k4) | (((top >> 2) & k2) << 4);
    sc8 = _mm_sub_epi8(_mm_set_epi32(static_cast<int>(u[3]), static_cast<int>(u[2]), static_cast<int>(u[1]),
                                     static_cast<int>(u[0])),
                       _mm_set1_epi8(32));
  }
  TANDEM_AVX2 float d() const { return h2f(x.d); }
  TANDEM_AVX2 float dmin() const { return 0.0f; }
  // Low two bits of chunk c = 4h + k: bits 2k, 2k+1 of qs[32h + l].
  TANDEM_AVX2 __m256i quants(int c) const {
    return srl_bytes(load32(x.qs + 32 * (c / 4)), 2 * (c % 4), _mm256_set1_epi8(3));
  }
  // q = low - 4 where the high bit is clear: Σ low·y - Σ (4 or 0)·y.
  TANDEM_AVX2 __m256i dot(__m256i qv, int c, __m256i y) const {
    const __m256i one = _mm256_set1_epi8(1);
    const __m256i sub4 = _mm256_slli_epi16(_mm256_xor_si256(srl_bytes(hm, c, one), one), 2);
    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(qv, y), _mm256_maddubs_epi16(sub4, y));
    return _mm256_madd_epi16(p, pair_scales(sc8, c));
  }
};

struct Q2K {
  using Block = q::BlockQ2_K;
  static constexpr bool kHasMin = true;
  static constexpr bool kHasOffset = false;
  const Block& x;
  __m128i sc8;  // 16 4-bit scales
  __m128i mn8;  // 16 4-bit mins
  TANDEM_AVX2 explicit Q2K(const Block& b) : x(b) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
    sc8 = _mm_and_si128(v, _mm_set1_epi8(0x0F));
    mn8 = _mm_and_si128(_mm_srli_epi16(v, 4), _mm_set1_epi8(0x0F));
  }
  TANDEM_AVX2 float d() const { return h2f(x.d); }
  TANDEM_AVX2 float dmin() const { return h2f(x.dmin); }
  TANDEM_AVX2 __m256i quants(int c) const {
    return srl_bytes(load32(x.qs + 32 * (c / 4)), 2 * (c % 4), _mm256_set1_epi8(3));
  }
  TANDEM_AVX2 __m256i dot(__m256i qv, int c, __m256i y) const {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(qv, y), pair_scales(sc8, c));
  }
  TANDEM_AVX2 __m256i min_sums(const int16_t* bsums) const {
    return _mm256_madd_epi16(load32(bsums), _mm256_cvtepu8_epi16(mn8));
  }
};

// ---- the kernel ------------------------------------------------------------------

// out[t * R + r] = row r of w (rows `stride` bytes apart) · activation row y[t].
template <typename P, int R, int T>
TANDEM_AVX2 inline void kq_dot(int64_t n, const uint8_t* w, size_t stride, const q::BlockQ8_K* const* y, float* out) {
  using Block = typename P::Block;
  const int64_t nb = n / q::QK_K;
  __m256 acc[R][T];   // Σ d·(exact int32 lanes) per block
  __m256 accm[R][T];  // Σ -dmin·(mins lanes) per block (types with mins)
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = accm[r][t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    for (int r = 0; r < R; ++r) {
      const P blk(reinterpret_cast<const Block*>(w + static_cast<size_t>(r) * stride)[i]);
      __m256i isum[T];
      for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
#pragma GCC unroll 8
      for (int c = 0; c < 8; ++c) {
        const __m256i qv = blk.quants(c);
        for (int t = 0; t < T; ++t)
          isum[t] = _mm256_add_epi32(isum[t], blk.dot(qv, c, load32(y[t][i].qs + 32 * c)));
      }
      const float xd = blk.d();
      for (int t = 0; t < T; ++t) {
        if constexpr (P::kHasOffset) isum[t] = _mm256_sub_epi32(isum[t], blk.offset(y[t][i].bsums));
        acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(y[t][i].d * xd), _mm256_cvtepi32_ps(isum[t]), acc[r][t]);
        if constexpr (P::kHasMin)
          accm[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(-y[t][i].d * blk.dmin()),
                                       _mm256_cvtepi32_ps(blk.min_sums(y[t][i].bsums)), accm[r][t]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t)
      out[t * R + r] = P::kHasMin ? hsum_ps(acc[r][t]) + hsum_ps(accm[r][t]) : hsum_ps(acc[r][t]);
}

template <typename P>
TANDEM_AVX2 float dot1(int64_t n, const void* w, const void* a) {
  const q::BlockQ8_K* y[1] = {static_cast<const q::BlockQ8_K*>(a)};
  float out;
  kq_dot<P, 1, 1>(n, static_cast<const uint8_t*>(w), 0, y, &out);
  return out;
}

template <typename P>
TANDEM_AVX2 void dot4(int64_t n, const uint8_t* w, size_t stride, const void* a, float* out) {
  const q::BlockQ8_K* y[1] = {static_cast<const q::BlockQ8_K*>(a)};
  kq_dot<P, 4, 1>(n, w, stride, y, out);
}

template <typename P>
TANDEM_AVX2 void dot4x2(int64_t n, const uint8_t* w, size_t stride, const void* a0, const void* a1, float* out0,
                        float* out1) {
  const q::BlockQ8_K* y[2] = {static_cast<const q::BlockQ8_K*>(a0), static_cast<const q::BlockQ8_K*>(a1)};
  float out[8];
  kq_dot<P, 4, 2>(n, w, stride, y, out);
  std::memcpy(out0, out, 4 * sizeof(float));
  std::memcpy(out1, out + 4, 4 * sizeof(float));
}

}  // namespace
#endif

VecDotFn kquant_dot_avx2(Type t) {
#if defined(__x86_64__) || defined(__i386__)
  switch (t) {
    case Type::Q2_K: return dot1<Q2K>;
    case Type::Q3_K: return dot1<Q3K>;
    case Type::Q4_K: return dot1<Q4K>;
    case Type::Q5_K: return dot1<Q5K>;
    case Type::Q6_K: return dot1<Q6K>;
    default: return nullptr;
  }
#else
  (void)t;
  return nullptr;
#endif
}

VecDotRowsFn kquant_rows4_avx2(Type t) {
#if defined(__x86_64__) || defined(__i386__)
  switch (t) {
    case Type::Q2_K: return dot4<Q2K>;
    case Type::Q3_K: return dot4<Q3K>;
    case Type::Q4_K: return dot4<Q4K>;
    case Type::Q5_K: return dot4<Q5K>;
    case Type::Q6_K: return dot4<Q6K>;
    default: return nullptr;
  }
#else
  (void)t;
  return nullptr;
#endif
}

VecDotRows2Fn kquant_rows4x2_avx2(Type t) {
#if defined(__x86_64__) || defined(__i386__)
  switch (t) {
    case Type::Q2_K: return dot4x2<Q2K>;
    case Type::Q3_K: return dot4x2<Q3K>;
    case Type::Q4_K: return dot4x2<Q4K>;
    case Type::Q5_K: return dot4x2<Q5K>;
    case Type::Q6_K: return dot4x2<Q6K>;
    default: return nullptr;
  }
#else
  (void)t;
  return nullptr;
#endif
}

}  // namespace tandem::cpu
