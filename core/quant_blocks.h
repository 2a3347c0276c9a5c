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

}  // namespace tandem::core::quant
