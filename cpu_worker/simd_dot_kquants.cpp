// AVX2 dot products of K-quant weight rows (Q2_K..Q6_K), and of the
// i-quants whose decoders live in simd_iquant_decoders.h, with Q8_K
// activation rows: decode kernels over 1 or 4 weight rows and one token, and
// a prefill kernel over 4 tokens whose activations are interleaved 8 bytes at
// a time (Q8Kx4), so one broadcast weight group meets four tokens and the
// int16 products of a sub-block add up before the scale multiply — fewer
// multiplies per weight, which is what limits these kernels on CPUs whose
// integer multiplier is the bottleneck.
//
// The float steps are llama.cpp's on AVX2 (llama-cpp-python 0.3.36), bit for
// bit where checked, because every matmul re-quantizes its input to 8 bits:
// over 30 layers a last-bit difference grows into different greedy tokens
// (tests/unit/test_iquant_smollm2.cpp asks for llama.cpp's, and gets its
// logits exactly). Like llama.cpp's, a token's result depends on the size of
// the batch it came in (simd_dot.h, kBatchArithmeticTokens); within one
// arithmetic every kernel (one row, four rows, four tokens, eight-row
// layouts) gives the same bits, and only the grouping of the exact integer
// work differs. The three arithmetics:
//  * lanes (decoders with kLaneSums: Q3_K, Q5_K, IQ2_XXS, IQ2_XS, IQ2_S,
//    IQ3_XXS, IQ3_S, IQ4_XS; llama.cpp's AVX2 vec_dot, checked against its
//    exported ggml_vec_dot_*_q8_K on random blocks): eight int32 lanes per
//    super-block, lane k holding values 4k .. 4k+3 of every 32-value chunk,
//    each fused into its own float lane with y.d·x.d; the float lanes summed
//    at the end as (l0+l4)+(l2+l6) + (l1+l5)+(l3+l7); Q5_K's mins as below.
//  * totals (Q4_K, as llama.cpp's repacked q4_K_8x8 gemv; Q2_K, Q6_K, IQ1_S
//    and IQ1_M, whose vec_dot sums in yet other orders, within rounding of
//    this): per super-block the exact int32 total of scale·q·y (offsets
//    folded in) and of min·bsum, then (y.d·x.d)·total and
//    (-y.d·x.dmin)·mins each fused into per-token accumulators; their sum.
//  * batch (matmuls over kBatchArithmeticTokens or more tokens, all but
//    Q4_K: llama.cpp's tiled kernels): per super-block the exact totals,
//    res = x.d·total, res -= x.dmin·mins in one fused step, and
//    acc = fma(res, y.d, acc).

// Scales are decoded with vector shuffles straight from the block: building
// them in a small array and reloading it as a vector costs a store-forwarding
// stall per block.
#include <cstring>

#include "core/quant_blocks.h"
#include "core/quant_iq_tables.h"
#include "cpu_worker/simd_dot_kquants.h"
#include "cpu_worker/simd_x86.h"

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
// kByteMask[j] broadcasts byte j (a scale per 16 values) to all 16 bytes.
struct ShuffleMasks {
  alignas(16) uint8_t pair[8][16];
  alignas(32) uint8_t word[8][32];
  alignas(16) uint8_t byte[16][16];
  constexpr ShuffleMasks() : pair{}, word{}, byte{} {
    for (int c = 0; c < 8; ++c) {
      for (int i = 0; i < 16; ++i) pair[c][i] = static_cast<uint8_t>(2 * c + (i >= 8));
      for (int i = 0; i < 32; ++i) word[c][i] = static_cast<uint8_t>(2 * c + (i & 1));
    }
    for (int j = 0; j < 16; ++j)
      for (int i = 0; i < 16; ++i) byte[j][i] = static_cast<uint8_t>(j);
  }
};
constexpr ShuffleMasks kMasks;

// int16 scale vector [s(2c) × 8 | s(2c+1) × 8] from 16 int8 scales: maddubs
// lanes 0..7 hold values 0..15 of the chunk, lanes 8..15 values 16..31.
TANDEM_AVX2 inline __m256i pair_scales(__m128i sc8, int c) {
  return _mm256_cvtepi8_epi16(
      _mm_shuffle_epi8(sc8, _mm_load_si128(reinterpret_cast<const __m128i*>(kMasks.pair[c]))));
}

// 16 int16 lanes all equal to int8 scale j of sc8.
TANDEM_AVX2 inline __m256i bcast_scale16(__m128i sc8, int j) {
  return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, _mm_load_si128(reinterpret_cast<const __m128i*>(kMasks.byte[j]))));
}

TANDEM_AVX2 inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// 8 bytes at p repeated four times: one weight group for four tokens.
TANDEM_AVX2 inline __m256i bcast8(const uint8_t* p) {
  int64_t v;
  std::memcpy(&v, p, 8);
  return _mm256_set1_epi64x(v);
}

TANDEM_AVX2 inline float fma_ss(float a, float b, float c) {
  return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(c)));
}

// ---- per-type block decoders ---------------------------------------------------
// Each decoder, built from one weight block, offers:
//   quants(c)            the 32 quants of chunk c (values 32c .. 32c+31)
//   dot(qv, c, y)        int32 lanes of Σ scale·q·y over the chunk
//   group_dot(c, g, y4)  int16 lanes of Σ q·y for values 32c+8g .. +7 of four
//                        interleaved tokens (4 lanes each), unscaled
//   scale16(j)           the scale of sub-block j (of 32 or 16 values) in 16 int16 lanes
//   offset_total(bsums)  exact int subtracted once per block (Q6_K's -32; kHasOffset)
//   min_total(bsums)     exact Σ min·bsum, to be scaled by -dmin (kHasMin)
//   d, dmin              the block's float scales
// kScalePer32: sub-blocks of 32 values (Q4_K, Q5_K), else of 16.

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
  TANDEM_AVX2 int min_total(const int16_t* bsums) const { return hsum_epi32(k4_mins(mins, bsums)); }
  TANDEM_AVX2 __m256i group_dot(int c, int g, __m256i y4) const {
    const __m256i v = bcast8(x.qs + 32 * (c / 2) + 8 * g);
    return _mm256_maddubs_epi16(_mm256_and_si256((c & 1) ? _mm256_srli_epi16(v, 4) : v, _mm256_set1_epi8(0x0F)), y4);
  }
  TANDEM_AVX2 __m256i scale16(int j) const { return _mm256_shuffle_epi8(scales, load32(kMasks.word[j])); }
  static constexpr bool kScalePer32 = true;
};

struct Q5K {
  using Block = q::BlockQ5_K;
  static constexpr bool kHasMin = true;
  static constexpr bool kHasOffset = false;
  static constexpr bool kLaneSums = true;
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
  TANDEM_AVX2 int min_total(const int16_t* bsums) const { return hsum_epi32(k4_mins(mins, bsums)); }
  TANDEM_AVX2 __m256i group_dot(int c, int g, __m256i y4) const {
    const __m256i v = bcast8(x.qs + 32 * (c / 2) + 8 * g);
    const __m256i lo = _mm256_and_si256((c & 1) ? _mm256_srli_epi16(v, 4) : v, _mm256_set1_epi8(0x0F));
    const __m256i hb = _mm256_slli_epi16(srl_bytes(bcast8(x.qh + 8 * g), c, _mm256_set1_epi8(1)), 4);
    return _mm256_maddubs_epi16(_mm256_or_si256(lo, hb), y4);
  }
  TANDEM_AVX2 __m256i scale16(int j) const { return _mm256_shuffle_epi8(scales, load32(kMasks.word[j])); }
  static constexpr bool kScalePer32 = true;
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
  TANDEM_AVX2 int offset_total(const int16_t* bsums) const {
    return 32 * hsum_epi32(_mm256_madd_epi16(load32(bsums), _mm256_cvtepi8_epi16(sc8)));
  }
  TANDEM_AVX2 __m256i group_dot(int c, int g, __m256i y4) const {
    const int h = c / 4, k = c % 4;
    const __m256i l4 = bcast8(x.ql + 64 * h + 32 * (k & 1) + 8 * g);
    const __m256i lo = _mm256_and_si256((k & 2) ? _mm256_srli_epi16(l4, 4) : l4, _mm256_set1_epi8(0x0F));
    const __m256i hi = _mm256_slli_epi16(srl_bytes(bcast8(x.qh + 32 * h + 8 * g), 2 * k, _mm256_set1_epi8(3)), 4);
    return _mm256_maddubs_epi16(_mm256_or_si256(lo, hi), y4);
  }
  TANDEM_AVX2 __m256i scale16(int j) const { return bcast_scale16(sc8, j); }
  static constexpr bool kScalePer32 = false;
};

struct Q3K {
  using Block = q::BlockQ3_K;
  static constexpr bool kHasMin = false;
  static constexpr bool kHasOffset = true;
  static constexpr bool kLaneSums = true;
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
  // q + 4 in 0..7 for chunk c = 4h + k: low two bits are bits 2k, 2k+1 of
  // qs[32h + l], the third is the high bit (set means "no -4"); the -4 is
  // taken out once per block through the bsums (offset_total), so each
  // chunk costs one multiply instead of two.
  TANDEM_AVX2 __m256i quants(int c) const {
    const __m256i lo = srl_bytes(load32(x.qs + 32 * (c / 4)), 2 * (c % 4), _mm256_set1_epi8(3));
    return _mm256_or_si256(lo, _mm256_slli_epi16(srl_bytes(hm, c, _mm256_set1_epi8(1)), 2));
  }
  TANDEM_AVX2 __m256i dot(__m256i qv, int c, __m256i y) const {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(qv, y), pair_scales(sc8, c));
  }
  // Σ (q' - 4)·y·sc = Σ q'·y·sc - 4 Σ sc·bsum.
  TANDEM_AVX2 int offset_total(const int16_t* bsums) const {
    return 4 * hsum_epi32(_mm256_madd_epi16(load32(bsums), _mm256_cvtepi8_epi16(sc8)));
  }
  // The lanes arithmetic needs the -4 inside each lane: (q' - 4)·y pair
  // sums (|·| ≤ 2·4·127) before the scale.
  TANDEM_AVX2 __m256i lane_dot(int c, __m256i y) const {
    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(quants(c), y), _mm256_maddubs_epi16(_mm256_set1_epi8(4), y));
    return _mm256_madd_epi16(p, pair_scales(sc8, c));
  }
  TANDEM_AVX2 __m256i lane_group_dot(int c, int g, __m256i y4) const {
    return _mm256_sub_epi16(group_dot(c, g, y4), _mm256_maddubs_epi16(_mm256_set1_epi8(4), y4));
  }
  TANDEM_AVX2 __m256i group_dot(int c, int g, __m256i y4) const {
    const __m256i lo = srl_bytes(bcast8(x.qs + 32 * (c / 4) + 8 * g), 2 * (c % 4), _mm256_set1_epi8(3));
    const __m256i hb = _mm256_slli_epi16(srl_bytes(bcast8(x.hmask + 8 * g), c, _mm256_set1_epi8(1)), 2);
    return _mm256_maddubs_epi16(_mm256_or_si256(lo, hb), y4);
  }
  TANDEM_AVX2 __m256i scale16(int j) const { return bcast_scale16(sc8, j); }
  static constexpr bool kScalePer32 = false;
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
  TANDEM_AVX2 int min_total(const int16_t* bsums) const {
    return hsum_epi32(_mm256_madd_epi16(load32(bsums), _mm256_cvtepu8_epi16(mn8)));
  }
  TANDEM_AVX2 __m256i group_dot(int c, int g, __m256i y4) const {
    return _mm256_maddubs_epi16(srl_bytes(bcast8(x.qs + 32 * (c / 4) + 8 * g), 2 * (c % 4), _mm256_set1_epi8(3)), y4);
  }
  TANDEM_AVX2 __m256i scale16(int j) const { return bcast_scale16(sc8, j); }
  static constexpr bool kScalePer32 = false;
};

#include "cpu_worker/simd_iquant_decoders.h"

// Decoders whose quants can exceed 31: the prefill kernel must not add the
// int16 pair sums of several groups before widening them.
template <typename P>
constexpr bool wide_quants() {
  if constexpr (requires { P::kWideQuants; }) return P::kWideQuants;
  return false;
}

// Wide decoders whose magnitudes stay ≤ 64 (the IQ2 and IQ3 grids, up to
// 62): two groups' int16 pair sums stay below 2^15 (2·2·64·127 < 32768),
// so the prefill kernel widens pairs of groups, half the multiply-adds.
template <typename P>
constexpr bool pair_quants() {
  if constexpr (requires { P::kPairQuants; }) return P::kPairQuants;
  return false;
}

// Blocks to prefetch ahead: four K-quant super-blocks (576-840 bytes); the
// i-quants' blocks are a half or less of that, so they look ~1 KiB ahead.
template <typename P>
constexpr int64_t prefetch_blocks() {
  if constexpr (requires { P::kSmallBlocks; }) return static_cast<int64_t>(1024 / sizeof(typename P::Block));
  return wide_quants<P>() ? static_cast<int64_t>(1024 / sizeof(typename P::Block)) : 4;
}

// Which float steps a kernel takes (see the top of this file): llama.cpp's
// vec_dot / repacked ones (lanes or totals, by decoder), or its tiled
// kernels' for big batches.
enum class Arith { kVecDot, kBatch };

// Decoders in the lanes arithmetic (see the top of this file).
template <typename P>
constexpr bool lane_sums() {
  if constexpr (requires { P::kLaneSums; }) return P::kLaneSums;
  return false;
}

// One chunk's int32 lanes, and one group's int16 pair sums of four tokens, in
// the lanes arithmetic: decoders with an offset (Q3_K) take it out per lane.
template <typename P>
TANDEM_AVX2 inline __m256i lane_chunk(const P& blk, int c, __m256i y) {
  if constexpr (P::kHasOffset) return blk.lane_dot(c, y);
  else return blk.dot(blk.quants(c), c, y);
}
template <typename P>
TANDEM_AVX2 inline __m256i lane_group(const P& blk, int c, int g, __m256i y4) {
  if constexpr (P::kHasOffset) return blk.lane_group_dot(c, g, y4);
  else return blk.group_dot(c, g, y4);
}

// Σ min·bsum of one block for four interleaved tokens (lane t: token t).
template <typename P>
TANDEM_AVX2 inline __m128i mins4(const P& blk, const BlockQ8Kx4& yb) {
  return _mm_setr_epi32(blk.min_total(yb.bsums[0]), blk.min_total(yb.bsums[1]), blk.min_total(yb.bsums[2]),
                        blk.min_total(yb.bsums[3]));
}

// ---- the kernels -----------------------------------------------------------------

// The lanes arithmetic over one row and one token: out = Σ lanes of
// Σ_blocks (y.d·x.d)·lane, plus the mins.
template <typename P>
TANDEM_AVX2 inline float lanes_dot(int64_t nb, const typename P::Block* row, const q::BlockQ8_K* y) {
  __m256 acc = _mm256_setzero_ps();  // float lane k: Σ over blocks of d·(int32 lane k)
  float accm = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    prefetch_span(row + i + prefetch_blocks<P>(), sizeof(typename P::Block));
    const P blk(row[i]);
    __m256i isum = _mm256_setzero_si256();  // int32 lane k: values 4k .. 4k+3 of every chunk
#pragma GCC unroll 8
    for (int c = 0; c < 8; ++c) isum = _mm256_add_epi32(isum, lane_chunk(blk, c, load32(y[i].qs + 32 * c)));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * blk.d()), _mm256_cvtepi32_ps(isum), acc);
    if constexpr (P::kHasMin)
      accm = fma_ss(-y[i].d * blk.dmin(), static_cast<float>(blk.min_total(y[i].bsums)), accm);
  }
  return P::kHasMin ? hsum_ps(acc) + accm : hsum_ps(acc);
}

// The lanes arithmetic over four interleaved tokens and `rows` rows: each
// 8-value group g is widened on its own into isum[g], whose int32 lanes 2t
// and 2t+1 are token t's lanes 2g and 2g+1, so no lane mixes with another.
template <typename P>
TANDEM_AVX2 void lanes_tokens4(int64_t nb, const uint8_t* w, size_t stride, int64_t rows, const BlockQ8Kx4* y,
                               float* out, size_t out_stride) {
  using Block = typename P::Block;
  const __m128 sign = _mm_set1_ps(-0.0f);
  const __m256i dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
  for (int64_t r = 0; r < rows; ++r) {
    const auto* x = reinterpret_cast<const Block*>(w + static_cast<size_t>(r) * stride);
    __m256 acc[4];  // acc[g], lanes 2t + j: token t's float lane 2g + j
    for (__m256& a : acc) a = _mm256_setzero_ps();
    __m128 accm = _mm_setzero_ps();  // lane t: token t
    for (int64_t i = 0; i < nb; ++i) {
      prefetch_span(x + i + prefetch_blocks<P>(), sizeof(Block));
      const P blk(x[i]);
      const BlockQ8Kx4& yb = y[i];
      __m256i isum[4];
      for (__m256i& s : isum) s = _mm256_setzero_si256();
#pragma GCC unroll 8
      for (int c = 0; c < 8; ++c) {
        const uint8_t* yc = reinterpret_cast<const uint8_t*>(yb.qs) + 128 * c;  // groups 4c .. 4c+3
        for (int g = 0; g < 4; ++g)
          isum[g] = _mm256_add_epi32(isum[g], _mm256_madd_epi16(lane_group(blk, c, g, load32(yc + 32 * g)),
                                                                blk.scale16(P::kScalePer32 ? c : 2 * c + g / 2)));
      }
      const __m128 yd = _mm_loadu_ps(yb.d);
      const __m256 d = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_mul_ps(yd, _mm_set1_ps(blk.d()))), dup);
      for (int g = 0; g < 4; ++g) acc[g] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(isum[g]), acc[g]);
      if constexpr (P::kHasMin) {
        const __m128i mins = mins4(blk, yb);
        accm = _mm_fmadd_ps(_mm_mul_ps(_mm_xor_ps(yd, sign), _mm_set1_ps(blk.dmin())), _mm_cvtepi32_ps(mins), accm);
      }
    }
    // Per token (l0+l4)+(l2+l6) in lane 2t, (l1+l5)+(l3+l7) in lane 2t+1,
    // then their sum: the order of the single-token kernel's hsum_ps.
    const __m256 v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
    const __m256 h = _mm256_hadd_ps(v, v);  // lanes 0, 1: tokens 0, 1; lanes 4, 5: tokens 2, 3
    __m128 tok = _mm_shuffle_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1), _MM_SHUFFLE(1, 0, 1, 0));
    if constexpr (P::kHasMin) tok = _mm_add_ps(tok, accm);
    alignas(16) float o[4];
    _mm_store_ps(o, tok);
    for (int t = 0; t < 4; ++t) out[t * out_stride + r] = o[t];
  }
}

// Decode: out[r] = row r of w (rows `stride` bytes apart) · activation row y.
template <typename P, int R, Arith A = Arith::kVecDot>
TANDEM_AVX2 inline void kq_dot(int64_t n, const uint8_t* w, size_t stride, const q::BlockQ8_K* y, float* out) {
  using Block = typename P::Block;
  const int64_t nb = n / q::QK_K;
  if constexpr (A == Arith::kVecDot && lane_sums<P>()) {
    for (int r = 0; r < R; ++r)
      out[r] = lanes_dot<P>(nb, reinterpret_cast<const Block*>(w + static_cast<size_t>(r) * stride), y);
    return;
  }
  float acc[R], accm[R];  // per row: Σ (y.d·x.d)·total, Σ (-y.d·x.dmin)·mins
  for (int r = 0; r < R; ++r) acc[r] = accm[r] = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    for (int r = 0; r < R; ++r) {
      const Block* row = reinterpret_cast<const Block*>(w + static_cast<size_t>(r) * stride);
      prefetch_span(row + i + prefetch_blocks<P>(), sizeof(Block));
      const P blk(row[i]);
      __m256i isum = _mm256_setzero_si256();
#pragma GCC unroll 8
      for (int c = 0; c < 8; ++c)
        isum = _mm256_add_epi32(isum, blk.dot(blk.quants(c), c, load32(y[i].qs + 32 * c)));
      int total = hsum_epi32(isum);
      if constexpr (P::kHasOffset) total -= blk.offset_total(y[i].bsums);
      if constexpr (A == Arith::kBatch) {
        float res = blk.d() * static_cast<float>(total);
        if constexpr (P::kHasMin) res = fma_ss(-blk.dmin(), static_cast<float>(blk.min_total(y[i].bsums)), res);
        acc[r] = fma_ss(res, y[i].d, acc[r]);
        continue;
      }
      acc[r] = fma_ss(y[i].d * blk.d(), static_cast<float>(total), acc[r]);
      if constexpr (P::kHasMin)
        accm[r] = fma_ss(-y[i].d * blk.dmin(), static_cast<float>(blk.min_total(y[i].bsums)), accm[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = P::kHasMin && A == Arith::kVecDot ? acc[r] + accm[r] : acc[r];
}

// Prefill: four tokens (interleaved, Q8Kx4) × `rows` weight rows;
// out[t * out_stride + r] for token t, row r. Same per-token arithmetic as
// kq_dot: the integer totals are exact, the float steps identical.
template <typename P, Arith A = Arith::kVecDot>
TANDEM_AVX2 void kq_tokens4(int64_t n, const uint8_t* w, size_t stride, int64_t rows, const void* a4, float* out,
                            size_t out_stride) {
  using Block = typename P::Block;
  const int64_t nb = n / q::QK_K;
  const auto* y = static_cast<const BlockQ8Kx4*>(a4);
  if constexpr (A == Arith::kVecDot && lane_sums<P>()) {
    lanes_tokens4<P>(nb, w, stride, rows, y, out, out_stride);
    return;
  }
  const __m128 sign = _mm_set1_ps(-0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const auto* x = reinterpret_cast<const Block*>(w + static_cast<size_t>(r) * stride);
    __m128 acc = _mm_setzero_ps(), accm = _mm_setzero_ps();  // lane t: token t
    for (int64_t i = 0; i < nb; ++i) {
      prefetch_span(x + i + prefetch_blocks<P>(), sizeof(Block));
      const P blk(x[i]);
      const BlockQ8Kx4& yb = y[i];
      __m256i isum = _mm256_setzero_si256();  // int32 lanes 2t, 2t+1: token t
#pragma GCC unroll 8
      for (int c = 0; c < 8; ++c) {
        const uint8_t* yc = reinterpret_cast<const uint8_t*>(yb.qs) + 128 * c;  // groups 4c .. 4c+3
        if constexpr (pair_quants<P>()) {
          // Two groups (sharing one scale) per widening (quants up to 64).
          for (int h = 0; h < 2; ++h) {
            const __m256i s16 = _mm256_add_epi16(blk.group_dot(c, 2 * h, load32(yc + 64 * h)),
                                                 blk.group_dot(c, 2 * h + 1, load32(yc + 64 * h + 32)));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(s16, blk.scale16(P::kScalePer32 ? c : 2 * c + h)));
          }
        } else if constexpr (wide_quants<P>()) {
          // Each group's int16 pairs widened on their own (quants up to 127).
          for (int g = 0; g < 4; ++g)
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(blk.group_dot(c, g, load32(yc + 32 * g)),
                                                            blk.scale16(P::kScalePer32 ? c : 2 * c + g / 2)));
        } else if constexpr (P::kScalePer32) {
          // q ≤ 31: four groups' int16 pair sums stay below 2^15.
          __m256i s16 = blk.group_dot(c, 0, load32(yc));
          for (int g = 1; g < 4; ++g) s16 = _mm256_add_epi16(s16, blk.group_dot(c, g, load32(yc + 32 * g)));
          isum = _mm256_add_epi32(isum, _mm256_madd_epi16(s16, blk.scale16(c)));
        } else {
          for (int h = 0; h < 2; ++h) {
            const __m256i s16 = _mm256_add_epi16(blk.group_dot(c, 2 * h, load32(yc + 64 * h)),
                                                 blk.group_dot(c, 2 * h + 1, load32(yc + 64 * h + 32)));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(s16, blk.scale16(2 * c + h)));
          }
        }
      }
      const __m256i pairs = _mm256_hadd_epi32(isum, isum);
      __m128i total = _mm_unpacklo_epi64(_mm256_castsi256_si128(pairs), _mm256_extracti128_si256(pairs, 1));
      if constexpr (P::kHasOffset)
        total = _mm_sub_epi32(total, _mm_setr_epi32(blk.offset_total(yb.bsums[0]), blk.offset_total(yb.bsums[1]),
                                                    blk.offset_total(yb.bsums[2]), blk.offset_total(yb.bsums[3])));
      const __m128 yd = _mm_loadu_ps(yb.d);
      if constexpr (A == Arith::kBatch) {
        __m128 res = _mm_mul_ps(_mm_set1_ps(blk.d()), _mm_cvtepi32_ps(total));
        if constexpr (P::kHasMin) {
          const __m128i mins = mins4(blk, yb);
          res = _mm_fnmadd_ps(_mm_set1_ps(blk.dmin()), _mm_cvtepi32_ps(mins), res);
        }
        acc = _mm_fmadd_ps(res, yd, acc);
        continue;
      }
      acc = _mm_fmadd_ps(_mm_mul_ps(yd, _mm_set1_ps(blk.d())), _mm_cvtepi32_ps(total), acc);
      if constexpr (P::kHasMin) {
        const __m128i mins = mins4(blk, yb);
        accm = _mm_fmadd_ps(_mm_mul_ps(_mm_xor_ps(yd, sign), _mm_set1_ps(blk.dmin())), _mm_cvtepi32_ps(mins), accm);
      }
    }
    alignas(16) float o[4];
    _mm_store_ps(o, P::kHasMin && A == Arith::kVecDot ? _mm_add_ps(acc, accm) : acc);
    for (int t = 0; t < 4; ++t) out[t * out_stride + r] = o[t];
  }
}

template <typename P, Arith A = Arith::kVecDot>
TANDEM_AVX2 float dot1(int64_t n, const void* w, const void* a) {
  float out;
  kq_dot<P, 1, A>(n, static_cast<const uint8_t*>(w), 0, static_cast<const q::BlockQ8_K*>(a), &out);
  return out;
}

// Four rows one after another: interleaving them block by block (R = 4)
// measured 10-20% slower on AVX2 (register spills), unlike the legacy types.
template <typename P, Arith A = Arith::kVecDot>
TANDEM_AVX2 void dot4(int64_t n, const uint8_t* w, size_t stride, const void* a, float* out) {
  for (int r = 0; r < 4; ++r)
    kq_dot<P, 1, A>(n, w + static_cast<size_t>(r) * stride, 0, static_cast<const q::BlockQ8_K*>(a), out + r);
}

}  // namespace
#endif

#if defined(__x86_64__) || defined(__i386__)
namespace {

// The kernel family K instantiated for the decoder of K-quant type t.
struct Dot1 {
  template <typename P>
  static constexpr VecDotFn fn = dot1<P>;
};
struct Dot4 {
  template <typename P>
  static constexpr VecDotRowsFn fn = dot4<P>;
};
struct Tokens4 {
  template <typename P>
  static constexpr KTokens4Fn fn = kq_tokens4<P>;
};
struct BatchDot1 {
  template <typename P>
  static constexpr VecDotFn fn = dot1<P, Arith::kBatch>;
};
struct BatchDot4 {
  template <typename P>
  static constexpr VecDotRowsFn fn = dot4<P, Arith::kBatch>;
};
struct BatchTokens4 {
  template <typename P>
  static constexpr KTokens4Fn fn = kq_tokens4<P, Arith::kBatch>;
};

template <typename K>
auto pick(Type t) -> decltype(K::template fn<Q4K>) {
  switch (t) {
    case Type::Q2_K: return K::template fn<Q2K>;
    case Type::Q3_K: return K::template fn<Q3K>;
    case Type::Q4_K: return K::template fn<Q4K>;
    case Type::Q5_K: return K::template fn<Q5K>;
    case Type::Q6_K: return K::template fn<Q6K>;
    case Type::IQ2_XXS: return K::template fn<IQ2XXS>;
    case Type::IQ2_XS: return K::template fn<IQ2XS>;
    case Type::IQ2_S: return K::template fn<IQ2S>;
    case Type::IQ3_XXS: return K::template fn<IQ3XXS>;
    case Type::IQ3_S: return K::template fn<IQ3S>;
    case Type::IQ4_XS: return K::template fn<IQ4XS>;
    case Type::IQ1_S: return K::template fn<IQ1S>;
    case Type::IQ1_M: return K::template fn<IQ1M>;
    default: return nullptr;
  }
}

}  // namespace

VecDotFn kquant_dot_avx2(Type t) { return pick<Dot1>(t); }
VecDotRowsFn kquant_rows4_avx2(Type t) { return pick<Dot4>(t); }
KTokens4Fn kquant_tokens4_avx2(Type t) { return pick<Tokens4>(t); }
// Q4_K keeps its one arithmetic: llama.cpp runs it repacked at every batch size.
VecDotFn kquant_batch_dot_avx2(Type t) { return t == Type::Q4_K ? nullptr : pick<BatchDot1>(t); }
VecDotRowsFn kquant_batch_rows4_avx2(Type t) { return t == Type::Q4_K ? nullptr : pick<BatchDot4>(t); }
KTokens4Fn kquant_batch_tokens4_avx2(Type t) { return t == Type::Q4_K ? nullptr : pick<BatchTokens4>(t); }
#else
VecDotFn kquant_dot_avx2(Type) { return nullptr; }
VecDotRowsFn kquant_rows4_avx2(Type) { return nullptr; }
KTokens4Fn kquant_tokens4_avx2(Type) { return nullptr; }
VecDotFn kquant_batch_dot_avx2(Type) { return nullptr; }
VecDotRowsFn kquant_batch_rows4_avx2(Type) { return nullptr; }
KTokens4Fn kquant_batch_tokens4_avx2(Type) { return nullptr; }
#endif

void interleave_q8_K_x4(const void* const rows[4], void* dst, int64_t n) {
  const int64_t nb = n / q::QK_K;
  auto* out = static_cast<BlockQ8Kx4*>(dst);
  for (int64_t i = 0; i < nb; ++i) {
    for (int t = 0; t < 4; ++t) {
      const q::BlockQ8_K& b = static_cast<const q::BlockQ8_K*>(rows[t])[i];
      out[i].d[t] = b.d;
      std::memcpy(out[i].bsums[t], b.bsums, sizeof b.bsums);
      for (int g = 0; g < q::QK_K / 8; ++g) std::memcpy(out[i].qs[g][t], b.qs + 8 * g, 8);
    }
  }
}

}  // namespace tandem::cpu
