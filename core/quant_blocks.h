#pragma once
// Block layouts of ggml's quantization formats, byte for byte as they sit in a
// GGUF file, plus the scalar conversions every format needs (fp16, bf16). The
// structs are plain arrays of bytes and halves: no padding, little-endian
// fields, so a tensor's data can be reinterpreted in place as an array of them.
//
// Everything here is header-only and marked TANDEM_HD so CUDA kernels can use
// the same decode helpers as the CPU code. The conversions use integer
// arithmetic only: that makes them exact (round-to-nearest-even, like ggml's
// scalar GGML_FP32_TO_FP16 and F16C's _cvtss_sh) and immune to the compiler
// fusing a multiply and an add into an FMA, which would change ggml's
// float-trick formulation in some translation units and not in others.
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define TANDEM_HD __host__ __device__
#else
#define TANDEM_HD
#endif

namespace tandem::core::quant {

// ---------------------------------------------------------------------------
// Bit casts (memcpy on the host, intrinsics in device code).

TANDEM_HD inline uint32_t f32_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

TANDEM_HD inline float f32_from_bits(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// ---------------------------------------------------------------------------
// IEEE binary16 <-> binary32, bit-exact with ggml's ggml_compute_fp16_to_fp32 /
// ggml_compute_fp32_to_fp16 (ggml-impl.h):
//  * fp16 -> fp32 is exact; a NaN keeps its payload and gets the quiet bit
//    (ggml's float multiply quiets it, as F16C's vcvtph2ps does).
//  * fp32 -> fp16 rounds to nearest, ties to even; values >= 65520 become inf;
//    any NaN becomes the canonical quiet NaN 0x7E00 with the input's sign.

TANDEM_HD inline float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0x1F) {  // inf / NaN
    bits = sign | 0x7F800000u | (mant << 13) | (mant ? 0x00400000u : 0u);
  } else if (exp != 0) {  // normal: rebias 15 -> 127
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {  // signed zero
    bits = sign;
  } else {  // subnormal: value = mant * 2^-24; normalize the leading 1 away
    uint32_t e = 113;
    while (!(mant & 0x400u)) {
      mant <<= 1;
      --e;
    }
    bits = sign | (e << 23) | ((mant & 0x3FFu) << 13);
  }
  return f32_from_bits(bits);
}

TANDEM_HD inline uint16_t fp32_to_fp16(float f) {
  const uint32_t u = f32_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return sign | 0x7E00u;   // NaN -> canonical quiet NaN
  if (a >= 0x477FF000u) return sign | 0x7C00u;  // >= 65520 (incl. inf) -> inf
  if (a < 0x38800000u) {                        // below 2^-14: subnormal or zero
    const uint32_t e = a >> 23;
    if (e < 102) return sign;  // < 2^-25 rounds to zero
    const uint32_t mant = (a & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126 - e;  // to units of 2^-24; 14..24
    uint32_t q = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;  // may carry into 0x400 (min normal)
    return static_cast<uint16_t>(sign | q);
  }
  // Normal: drop 13 mantissa bits and rebias; a carry out of the mantissa
  // correctly bumps the exponent.
  uint32_t h = (a >> 13) - (112u << 10);
  const uint32_t rem = a & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

// bfloat16 <-> fp32 exactly as ggml_compute_bf16_to_fp32 / ggml_compute_fp32_to_bf16:
// widening is a shift; narrowing rounds to nearest even and forces NaNs quiet
// (bit 6 of the bf16, i.e. the top mantissa bit) keeping their upper bits.
TANDEM_HD inline float bf16_to_fp32(uint16_t h) { return f32_from_bits(static_cast<uint32_t>(h) << 16); }

TANDEM_HD inline uint16_t fp32_to_bf16(float f) {
  const uint32_t u = f32_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 64u);
  return static_cast<uint16_t>((u + (0x7FFFu + ((u >> 16) & 1u))) >> 16);
}

// ---------------------------------------------------------------------------
// Block sizes (weights per block), as ggml-common.h.

inline constexpr int QK4_0 = 32;
inline constexpr int QK4_1 = 32;
inline constexpr int QK5_0 = 32;
inline constexpr int QK5_1 = 32;
inline constexpr int QK8_0 = 32;
inline constexpr int QK8_1 = 32;
inline constexpr int QK_K = 256;         // K-quant super-block
inline constexpr int K_SCALE_SIZE = 12;  // packed 6-bit scales+mins of Q4_K / Q5_K
inline constexpr int QK4_NL = 32;        // IQ4_NL block (the only 32-wide i-quant)

// fp16 fields are kept as raw uint16_t bits (no half type on the host).

// Q4_0: x = d * (q - 8), q in 0..15.
// qs[j] low nibble = element j, high nibble = element j + 16.
struct BlockQ4_0 {
  uint16_t d;             // scale (fp16)
  uint8_t qs[QK4_0 / 2];  // nibbles
};
static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 block size");

// Q4_1: x = d * q + m, q in 0..15. Nibble order as Q4_0.
struct BlockQ4_1 {
  uint16_t d;             // scale (fp16)
  uint16_t m;             // min (fp16)
  uint8_t qs[QK4_1 / 2];  // nibbles
};
static_assert(sizeof(BlockQ4_1) == 20, "Q4_1 block size");

// Q5_0: x = d * (q - 16), q in 0..31. Low 4 bits as Q4_0's nibbles; bit 4 of
// element j is bit j of the little-endian uint32 qh.
struct BlockQ5_0 {
  uint16_t d;             // scale (fp16)
  uint8_t qh[4];          // 5th bits (bytes, not uint32: the block is 2-byte aligned)
  uint8_t qs[QK5_0 / 2];  // low nibbles
};
static_assert(sizeof(BlockQ5_0) == 22, "Q5_0 block size");

// Q5_1: x = d * q + m, q in 0..31; bit layout as Q5_0.
struct BlockQ5_1 {
  uint16_t d;             // scale (fp16)
  uint16_t m;             // min (fp16)
  uint8_t qh[4];          // 5th bits
  uint8_t qs[QK5_1 / 2];  // low nibbles
};
static_assert(sizeof(BlockQ5_1) == 24, "Q5_1 block size");

// Q8_0: x = d * q, q in -128..127 (the quantizers emit -127..127).
struct BlockQ8_0 {
  uint16_t d;  // scale (fp16)
  int8_t qs[QK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block size");

// Q8_1: activation format paired with Q4_1/Q5_1; s = d * sum(qs) lets the dot
// product add the weights' min term without touching the quants.
struct BlockQ8_1 {
  uint16_t d;  // scale (fp16)
  uint16_t s;  // d * sum(qs) (fp16)
  int8_t qs[QK8_1];
};
static_assert(sizeof(BlockQ8_1) == 36, "Q8_1 block size");

// Q2_K: 16 sub-blocks of 16; x = d*sc * q - dmin*m, q in 0..3.
// scales[i]: low nibble = sc of sub-block i, high nibble = m.
// qs: two 128-element halves of 32 bytes; in half h, byte l holds, at bit
// shift 2k, element 128h + 32k + l.
struct BlockQ2_K {
  uint8_t scales[QK_K / 16];  // 4-bit scales | 4-bit mins
  uint8_t qs[QK_K / 4];       // 2-bit quants
  uint16_t d;                 // super-block scale of the scales (fp16)
  uint16_t dmin;              // super-block scale of the mins (fp16)
};
static_assert(sizeof(BlockQ2_K) == 84, "Q2_K block size");

// Q3_K: 16 sub-blocks of 16; x = d * (sc - 32) * (q - 4), q in 0..7.
// Low 2 bits of q: same arrangement as Q2_K's qs. High bit of element
// 128h + 32k + l: bit (4h + k) of hmask[l] (set means "no -4").
// scales: 16 6-bit values; low nibbles in bytes 0..7 (sub-block i in byte
// i%8, high nibble when i >= 8), top 2 bits in bytes 8..11 (sub-block i in
// byte 8 + i%4 at shift 2*(i/4)).
struct BlockQ3_K {
  uint8_t hmask[QK_K / 8];  // high bits
  uint8_t qs[QK_K / 4];     // low 2 bits
  uint8_t scales[12];       // 6-bit scales, packed as above
  uint16_t d;               // super-block scale (fp16)
};
static_assert(sizeof(BlockQ3_K) == 110, "Q3_K block size");

// Q4_K: 8 sub-blocks of 32; x = d*sc * q - dmin*m, q in 0..15, sc/m 6-bit.
// scales (K_SCALE_SIZE bytes), for sub-block j:
//   j < 4: sc = scales[j] & 63, m = scales[j+4] & 63
//   j >= 4: sc = (scales[j+4] & 15) | (scales[j-4] >> 6) << 4,
//           m  = (scales[j+4] >> 4) | (scales[j]   >> 6) << 4
// qs: four 64-element chunks of 32 bytes; byte l of chunk c holds element
// 64c + l (low nibble) and 64c + 32 + l (high nibble).
struct BlockQ4_K {
  uint16_t d;                    // super-block scale of the scales (fp16)
  uint16_t dmin;                 // super-block scale of the mins (fp16)
  uint8_t scales[K_SCALE_SIZE];  // packed 6-bit scales and mins
  uint8_t qs[QK_K / 2];          // nibbles
};
static_assert(sizeof(BlockQ4_K) == 144, "Q4_K block size");

// Q5_K: as Q4_K with a 5th bit: element 64c + l has it at bit 2c of qh[l],
// element 64c + 32 + l at bit 2c + 1.
struct BlockQ5_K {
  uint16_t d;                    // super-block scale of the scales (fp16)
  uint16_t dmin;                 // super-block scale of the mins (fp16)
  uint8_t scales[K_SCALE_SIZE];  // packed 6-bit scales and mins
  uint8_t qh[QK_K / 8];          // 5th bits
  uint8_t qs[QK_K / 2];          // low nibbles
};
static_assert(sizeof(BlockQ5_K) == 176, "Q5_K block size");

// Q6_K: 16 sub-blocks of 16; x = d * sc * (q - 32), q in 0..63, sc int8.
// Two 128-element halves; half h uses ql[64h .. 64h+63], qh[32h .. 32h+31].
// For l in 0..31 (element offsets within the half):
//   l      : ql[l] & 15      | ((qh[l] >> 0) & 3) << 4
//   l + 32 : ql[l + 32] & 15 | ((qh[l] >> 2) & 3) << 4
//   l + 64 : ql[l] >> 4      | ((qh[l] >> 4) & 3) << 4
//   l + 96 : ql[l + 32] >> 4 | ((qh[l] >> 6) & 3) << 4
struct BlockQ6_K {
  uint8_t ql[QK_K / 2];      // low 4 bits
  uint8_t qh[QK_K / 4];      // high 2 bits
  int8_t scales[QK_K / 16];  // 8-bit sub-block scales
  uint16_t d;                // super-block scale (fp16)
};
static_assert(sizeof(BlockQ6_K) == 210, "Q6_K block size");

// Q8_K: activation format of the K-quant dot products. d is a full float;
// bsums[i] = sum of qs[16i .. 16i+15], so the dots can apply the weights'
// per-sub-block mins without touching the quants.
struct BlockQ8_K {
  float d;
  int8_t qs[QK_K];
  int16_t bsums[QK_K / 16];
};
static_assert(sizeof(BlockQ8_K) == 292, "Q8_K block size");

// ---------------------------------------------------------------------------
// I-quants (ggml-common.h block_iq*). Except IQ4_NL they are 256-value
// super-blocks of eight 32-value groups; group g covers elements 32g..32g+31.
// Most store indices into the tables of core/quant_iq_tables.h: a grid row
// gives 8 (or 4) magnitudes, a sign byte flips them (bit j set: value j is
// negative). "ksigns index" means a 7-bit index into ksigns_iq2xs, which
// expands to such a byte. Scales are ggml's: db = d * (0.5 + s) * 0.25 for
// the IQ2 types, d * (0.5 + s) * 0.5 for IQ3_XXS, d * (1 + 2s) for IQ3_S,
// d * (2s + 1) for the IQ1 types (s: a 4- or 3-bit field).

// IQ2_XXS (2.06 bpw): group g is qs[4g .. 4g+3], read as two little-endian
// uint32 a0 = qs[4g] | qs[4g+1] << 16, a1 = qs[4g+2] | qs[4g+3] << 16:
//   byte l of a0 (l = 0..3): iq2xxs_grid row of elements 32g + 8l .. +7
//   bits 7l .. 7l+6 of a1:   their ksigns index
//   bits 28..31 of a1:       the group's 4-bit scale s
struct BlockIQ2_XXS {
  uint16_t d;             // super-block scale (fp16)
  uint16_t qs[QK_K / 8];  // [8 groups][4] as above
};
static_assert(sizeof(BlockIQ2_XXS) == 66, "IQ2_XXS block size");

// IQ2_XS (2.31 bpw): qs[4g + l] covers elements 32g + 8l .. +7: low 9 bits =
// iq2xs_grid row, high 7 bits = ksigns index. scales[g]: low nibble = scale
// of l = 0, 1 (first 16 values), high nibble = scale of l = 2, 3.
struct BlockIQ2_XS {
  uint16_t d;                 // super-block scale (fp16)
  uint16_t qs[QK_K / 8];      // [8 groups][4] grid index | ksigns index << 9
  uint8_t scales[QK_K / 32];  // [8 groups] two 4-bit scales
};
static_assert(sizeof(BlockIQ2_XS) == 74, "IQ2_XS block size");

// IQ2_S (2.5 bpw): 10-bit iq2s_grid index of elements 32g + 8l .. +7 (l =
// 0..3) = qs[4g + l] | ((qh[g] >> 2l) & 3) << 8; their sign byte (plain, no
// ksigns) is qs[QK_K/8 + 4g + l]. scales[g] as IQ2_XS.
struct BlockIQ2_S {
  uint16_t d;                 // super-block scale (fp16)
  uint8_t qs[QK_K / 4];       // [0, 32): low 8 index bits, [32, 64): sign bytes; [8 groups][4] each
  uint8_t qh[QK_K / 32];      // [8 groups] four 2-bit index tops
  uint8_t scales[QK_K / 32];  // [8 groups] two 4-bit scales
};
static_assert(sizeof(BlockIQ2_S) == 82, "IQ2_S block size");

// IQ3_XXS (3.06 bpw): qs[8g + k] (k = 0..7) is the iq3xxs_grid row of
// elements 32g + 4k .. +3. Group g's scales-and-signs word is the
// little-endian uint32 at qs[QK_K/4 + 4g]: bits 7l .. 7l+6 = ksigns index of
// elements 32g + 8l .. +7 (l = 0..3), bits 28..31 = 4-bit scale.
struct BlockIQ3_XXS {
  uint16_t d;                  // super-block scale (fp16)
  uint8_t qs[3 * (QK_K / 8)];  // [0, 64): [8 groups][8] grid indices; [64, 96): [8 groups] uint32 words
};
static_assert(sizeof(BlockIQ3_XXS) == 98, "IQ3_XXS block size");

// IQ3_S (3.44 bpw): 9-bit iq3s_grid index of elements 32g + 4k .. +3 (k =
// 0..7) = qs[8g + k] | ((qh[g] >> k) & 1) << 8; signs[4g + l] is the sign
// byte of elements 32g + 8l .. +7. scales[p]: low nibble = scale of group
// 2p, high nibble = group 2p + 1.
struct BlockIQ3_S {
  uint16_t d;                 // super-block scale (fp16)
  uint8_t qs[QK_K / 4];       // [8 groups][8] low 8 index bits
  uint8_t qh[QK_K / 32];      // [8 groups] 8 index tops
  uint8_t signs[QK_K / 8];    // [8 groups][4] sign bytes
  uint8_t scales[QK_K / 64];  // [4 pairs of groups] two 4-bit scales
};
static_assert(sizeof(BlockIQ3_S) == 110, "IQ3_S block size");

// IQ1_S (1.56 bpw): 11-bit iq1s_grid index of elements 32g + 8l .. +7 (l =
// 0..3) = qs[4g + l] | ((qh[g] >> 3l) & 7) << 8. qh[g] bits 12..14: 3-bit
// scale s; bit 15: delta sign (set: -IQ1S_DELTA). x = d*(2s+1) * (grid + delta).
struct BlockIQ1_S {
  uint16_t d;              // super-block scale (fp16)
  uint8_t qs[QK_K / 8];    // [8 groups][4] low 8 index bits
  uint16_t qh[QK_K / 32];  // [8 groups] index tops | scale << 12 | delta sign << 15
};
static_assert(sizeof(BlockIQ1_S) == 50, "IQ1_S block size");

// IQ1_M (1.75 bpw): no d field. Elements 32g + 8l .. +7 (l = 0..3) use
// iq1s_grid row qs[4g + l] | (nibble & 7) << 8 and delta sign (nibble & 8),
// where nibble is the low (l even) or high (l odd) half of qh[2g + l/2].
// scales holds four little-endian uint16 sc[0..3]; bits 3h .. 3h+2 of
// sc[g/2] (h = 0..3) are 3-bit scales: h = 2(g%2) for l = 0, 1, h = 2(g%2)+1
// for l = 2, 3. The top nibbles of sc[0], sc[1], sc[2], sc[3] are bits 0-3,
// 4-7, 8-11, 12-15 of the fp16 super-block scale (iq1m_scale_bits).
struct BlockIQ1_M {
  uint8_t qs[QK_K / 8];       // [8 groups][4] low 8 index bits
  uint8_t qh[QK_K / 16];      // [8 groups][2] two (3 index bits | delta sign) nibbles
  uint8_t scales[QK_K / 32];  // 4 x uint16: 12 bits of 3-bit scales + 4 bits of fp16 d
};
static_assert(sizeof(BlockIQ1_M) == 56, "IQ1_M block size");

// IQ4_NL (4.5 bpw, 32-wide): x = d * kvalues_iq4nl[q]; nibble order as Q4_0
// (qs[j] low nibble = element j, high nibble = element j + 16).
struct BlockIQ4_NL {
  uint16_t d;              // scale (fp16)
  uint8_t qs[QK4_NL / 2];  // nibbles
};
static_assert(sizeof(BlockIQ4_NL) == 18, "IQ4_NL block size");

// IQ4_XS (4.25 bpw): IQ4_NL's levels with a 6-bit scale per group:
// ls = ((scales_l[g/2] >> 4(g%2)) & 15) | ((scales_h >> 2g) & 3) << 4,
// x = d * (ls - 32) * kvalues_iq4nl[q]. Group g's nibbles are qs[16g .. 16g+15]
// in Q4_0's order (low nibble = element j, high = j + 16 within the group).
struct BlockIQ4_XS {
  uint16_t d;                   // super-block scale (fp16)
  uint16_t scales_h;            // [8 groups] top 2 bits of the scale
  uint8_t scales_l[QK_K / 64];  // [8 groups] low 4 bits of the scale
  uint8_t qs[QK_K / 2];         // [8 groups][16] nibbles
};
static_assert(sizeof(BlockIQ4_XS) == 136, "IQ4_XS block size");

// ---------------------------------------------------------------------------
// Small decode helpers shared by the reference code, the SIMD kernels and
// (later) CUDA.

// 5th bit of element j (0..31) of a Q5_0/Q5_1 block.
TANDEM_HD inline uint32_t q5_high_bits(const uint8_t qh[4]) {
  return static_cast<uint32_t>(qh[0]) | static_cast<uint32_t>(qh[1]) << 8 | static_cast<uint32_t>(qh[2]) << 16 |
         static_cast<uint32_t>(qh[3]) << 24;
}

// Scale and min (6 bits each) of sub-block j (0..7) of a Q4_K / Q5_K block;
// ggml's get_scale_min_k4.
TANDEM_HD inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// The 16 signed scales (sc - 32, in -32..31) of a Q3_K block.
TANDEM_HD inline void unpack_q3_k_scales(const uint8_t* packed, int8_t out[16]) {
  for (int i = 0; i < 16; ++i) {
    const int lo = i < 8 ? (packed[i] & 0xF) : (packed[i - 8] >> 4);
    const int hi = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
    out[i] = static_cast<int8_t>((lo | (hi << 4)) - 32);
  }
}

// Two consecutive little-endian uint16 as one uint32 (IQ2_XXS's qs words).
TANDEM_HD inline uint32_t u16_pair(const uint16_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 16;
}

// Little-endian uint32 / uint16 from bytes (IQ3_XXS's words, IQ1_M's scales).
TANDEM_HD inline uint32_t le_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}
TANDEM_HD inline uint16_t le_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }

// IQ1_M's fp16 super-block scale, assembled from the top nibbles of its four
// uint16 scale words (ggml's iq1m_scale_t).
TANDEM_HD inline uint16_t iq1m_scale_bits(const BlockIQ1_M& b) {
  uint16_t d = 0;
  for (int k = 0; k < 4; ++k) d = static_cast<uint16_t>(d | (le_u16(b.scales + 2 * k) >> 12) << (4 * k));
  return d;
}

// IQ4_XS's 6-bit scale of group g (0..7), still biased by 32.
TANDEM_HD inline int iq4_xs_scale(const BlockIQ4_XS& b, int g) {
  return ((b.scales_l[g / 2] >> (4 * (g % 2))) & 0xF) | (((b.scales_h >> (2 * g)) & 3) << 4);
}

}  // namespace tandem::core::quant
