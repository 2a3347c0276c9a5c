#pragma once
// Per-chunk dequantization of every weight format, written once for the CPU
// reference (core/quant_ref_*.cpp: to_float) and the CUDA kernels
// (gpu_worker/): TANDEM_HD makes these __host__ __device__ under nvcc, so the
// host tests that check to_float bit for bit against ggml exercise the very
// arithmetic the GPU runs.
//
// A chunk is 16 consecutive values of a block in ggml's element order: a
// 32-value block has 2 chunks, a 256-value K-quant super-block 16. Sixteen
// floats fit in registers, which is what a GPU thread can afford; a whole
// K-quant block (256) would spill. Each function computes exactly ggml's
// dequantize_row_* expression for those elements (same operations, same order).
#include <cstdint>

#include "core/quant_blocks.h"

namespace tandem::core::quant {

inline constexpr int kDequantChunk = 16;

// a * b + c and a * b - c with two roundings everywhere: nvcc would otherwise
// fuse them into one FMA (one rounding) by default, and the device values
// would stop matching ggml's (the host build does not contract: ISO C++ mode).
TANDEM_HD inline float mul_add(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(__fmul_rn(a, b), c);
#else
  return a * b + c;
#endif
}
TANDEM_HD inline float mul_sub(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(__fmul_rn(a, b), c);
#else
  return a * b - c;
#endif
}

TANDEM_HD inline void dequant_chunk(const BlockQ4_0& b, int c, float out[16]) {
  const float d = fp16_to_fp32(b.d);
  for (int l = 0; l < 16; ++l) {
    const int q = c == 0 ? (b.qs[l] & 0x0F) - 8 : (b.qs[l] >> 4) - 8;
    out[l] = q * d;
  }
}

TANDEM_HD inline void dequant_chunk(const BlockQ4_1& b, int c, float out[16]) {
  const float d = fp16_to_fp32(b.d);
  const float m = fp16_to_fp32(b.m);
  for (int l = 0; l < 16; ++l) {
    const int q = c == 0 ? (b.qs[l] & 0x0F) : (b.qs[l] >> 4);
    out[l] = mul_add(static_cast<float>(q), d, m);
  }
}

TANDEM_HD inline void dequant_chunk(const BlockQ5_0& b, int c, float out[16]) {
  const float d = fp16_to_fp32(b.d);
  const uint32_t qh = q5_high_bits(b.qh);
  for (int l = 0; l < 16; ++l) {
    int32_t q;
    if (c == 0) q = ((b.qs[l] & 0x0F) | static_cast<uint8_t>(((qh >> l) << 4) & 0x10)) - 16;
    else q = ((b.qs[l] >> 4) | static_cast<uint8_t>((qh >> (l + 12)) & 0x10)) - 16;
    out[l] = q * d;
  }
}

TANDEM_HD inline void dequant_chunk(const BlockQ5_1& b, int c, float out[16]) {
  const float d = fp16_to_fp32(b.d);
  const float m = fp16_to_fp32(b.m);
  const uint32_t qh = q5_high_bits(b.qh);
  for (int l = 0; l < 16; ++l) {
    int q;
    if (c == 0) q = (b.qs[l] & 0x0F) | static_cast<uint8_t>(((qh >> l) << 4) & 0x10);
    else q = (b.qs[l] >> 4) | static_cast<uint8_t>((qh >> (l + 12)) & 0x10);
    out[l] = mul_add(static_cast<float>(q), d, m);
  }
}

TANDEM_HD inline void dequant_chunk(const BlockQ8_0& b, int c, float out[16]) {
  const float d = fp16_to_fp32(b.d);
  for (int l = 0; l < 16; ++l) out[l] = b.qs[16 * c + l] * d;
}

// Q2_K / Q3_K: chunk c = half h (128 values), then k = c % 8: 2-bit plane
// j = k / 2 (shift 2j) of the 16 bytes qs[32h + 16(k % 2) ..], scale 8h + k.
TANDEM_HD inline void dequant_chunk(const BlockQ2_K& b, int c, float out[16]) {
  const float d = fp16_to_fp32(b.d);
  const float min = fp16_to_fp32(b.dmin);
  const int h = c / 8, k = c % 8, shift = 2 * (k / 2);
  const uint8_t* q = b.qs + 32 * h + 16 * (k % 2);
  const uint8_t sc = b.scales[8 * h + k];
  const float dl = d * (sc & 0xF);
  const float ml = min * (sc >> 4);
  for (int l = 0; l < 16; ++l) out[l] = mul_sub(dl, static_cast<float>(static_cast<int8_t>((q[l] >> shift) & 3)), ml);
}

TANDEM_HD inline void dequant_chunk(const BlockQ3_K& b, int c, float out[16]) {
  const float d_all = fp16_to_fp32(b.d);
  int8_t scales[16];
  unpack_q3_k_scales(b.scales, scales);  // already minus 32
  const int h = c / 8, k = c % 8, j = k / 2, shift = 2 * j;
  const uint8_t* q = b.qs + 32 * h + 16 * (k % 2);
  const uint8_t* hm = b.hmask + 16 * (k % 2);
  const uint8_t m = static_cast<uint8_t>(1u << (4 * h + j));
  const float dl = d_all * scales[8 * h + k];
  for (int l = 0; l < 16; ++l) out[l] = dl * (static_cast<int8_t>((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
}

// Q4_K / Q5_K: chunk c = group g of 64 (c / 4), then low or high nibbles
// ((c % 4) / 2, scale 2g or 2g + 1) of the 16 bytes qs[32g + 16(c % 2) ..].
// Scale and min of sub-block j (0..7) of a Q4_K/Q5_K block: d * sc, dmin * m.
template <typename B>
TANDEM_HD inline void k4_scale_min(const B& b, int j, float* dl, float* ml) {
  uint8_t sc, m;
  get_scale_min_k4(j, b.scales, &sc, &m);
  *dl = fp16_to_fp32(b.d) * sc;
  *ml = fp16_to_fp32(b.dmin) * m;
}

TANDEM_HD inline void dequant_chunk(const BlockQ4_K& b, int c, float out[16]) {
  const int g = c / 4, hi = (c % 4) / 2, sub = c % 2;
  float dl, ml;
  k4_scale_min(b, 2 * g + hi, &dl, &ml);
  const uint8_t* q = b.qs + 32 * g + 16 * sub;
  for (int l = 0; l < 16; ++l) out[l] = mul_sub(dl, static_cast<float>(hi ? (q[l] >> 4) : (q[l] & 0xF)), ml);
}

TANDEM_HD inline void dequant_chunk(const BlockQ5_K& b, int c, float out[16]) {
  const int g = c / 4, hi = (c % 4) / 2, sub = c % 2;
  float dl, ml;
  k4_scale_min(b, 2 * g + hi, &dl, &ml);
  const uint8_t* ql = b.qs + 32 * g + 16 * sub;
  const uint8_t* qh = b.qh + 16 * sub;
  const uint8_t u = static_cast<uint8_t>((hi ? 2u : 1u) << (2 * g));
  for (int l = 0; l < 16; ++l)
    out[l] = mul_sub(dl, static_cast<float>((hi ? (ql[l] >> 4) : (ql[l] & 0xF)) + (qh[l] & u ? 16 : 0)), ml);
}

// Q6_K: chunk c = half h (c / 8), quarter r = (c % 8) / 2 of that half (which
// of the four 6-bit planes), l range 16(c % 2) ..; scale 8h + 2r + (c % 2).
TANDEM_HD inline void dequant_chunk(const BlockQ6_K& b, int c, float out[16]) {
  const float d = fp16_to_fp32(b.d);
  const int h = c / 8, r = (c % 8) / 2, sub = c % 2;
  const uint8_t* ql = b.ql + 64 * h + (r & 1) * 32 + 16 * sub;
  const uint8_t* qh = b.qh + 32 * h + 16 * sub;
  const int8_t sc = b.scales[8 * h + 2 * r + sub];
  const int lo_shift = (r >> 1) * 4;  // planes 0,1: low nibble; 2,3: high nibble
  const int hi_shift = 2 * r;
  for (int l = 0; l < 16; ++l) {
    const int8_t q = static_cast<int8_t>((((ql[l] >> lo_shift) & 0xF) | (((qh[l] >> hi_shift) & 3) << 4)) - 32);
    out[l] = d * sc * q;
  }
}

// Dense formats, 16 values per chunk counted from the row start.
TANDEM_HD inline void dequant_chunk_f16(const uint16_t* x, int64_t c, float out[16]) {
  for (int l = 0; l < 16; ++l) out[l] = fp16_to_fp32(x[16 * c + l]);
}
TANDEM_HD inline void dequant_chunk_bf16(const uint16_t* x, int64_t c, float out[16]) {
  for (int l = 0; l < 16; ++l) out[l] = bf16_to_fp32(x[16 * c + l]);
}

// Values per block of each block type.
template <typename B> struct BlockValues;
template <> struct BlockValues<BlockQ4_0> { static constexpr int n = QK4_0; };
template <> struct BlockValues<BlockQ4_1> { static constexpr int n = QK4_1; };
template <> struct BlockValues<BlockQ5_0> { static constexpr int n = QK5_0; };
template <> struct BlockValues<BlockQ5_1> { static constexpr int n = QK5_1; };
template <> struct BlockValues<BlockQ8_0> { static constexpr int n = QK8_0; };
template <> struct BlockValues<BlockQ2_K> { static constexpr int n = QK_K; };
template <> struct BlockValues<BlockQ3_K> { static constexpr int n = QK_K; };
template <> struct BlockValues<BlockQ4_K> { static constexpr int n = QK_K; };
template <> struct BlockValues<BlockQ5_K> { static constexpr int n = QK_K; };
template <> struct BlockValues<BlockQ6_K> { static constexpr int n = QK_K; };

// A row of blocks into floats: dst[n] (n a multiple of the block size).
template <typename B>
inline void dequant_row(const void* src, float* dst, int64_t n) {
  constexpr int kChunks = BlockValues<B>::n / kDequantChunk;
  const auto* x = static_cast<const B*>(src);
  const int64_t nb = n / BlockValues<B>::n;
  for (int64_t i = 0; i < nb; ++i)
    for (int c = 0; c < kChunks; ++c) dequant_chunk(x[i], c, dst + i * BlockValues<B>::n + c * kDequantChunk);
}

}  // namespace tandem::core::quant
