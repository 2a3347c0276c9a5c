// Reference (scalar) code for the float formats and the 32-wide "legacy"
// quants Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1. Sources of truth: ggml's
// ggml-quants.c (dequantize_row_*, quantize_row_*_ref), ggml-cpu/quants.c
// (ggml_vec_dot_*_generic) and ggml-cpu/arch/x86/quants.c (activation
// quantizers). Float expressions are written in ggml's order on purpose.
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/quant_blocks.h"
#include "core/quant_dequant.h"
#include "core/quant_ref_common.h"  // also: FMA contraction off for this file
#include "core/quant_reference.h"

// (A fused multiply-add rounds once where ggml rounds twice, e.g. Q4_1's
// d*q + m, so results would stop being bit-exact with -march=native.)

namespace tandem::core::quant::ref {
namespace {

// Float -> int truncation as C's (int)(v) for in-range values; out-of-range
// and NaN (only reachable from non-finite inputs) are clamped instead of
// being undefined behaviour.
inline int trunc_to_int(float v) {
  if (!(v > -1073741824.0f)) return v != v ? 0 : -1073741824;
  if (v > 1073741824.0f) return 1073741824;
  return static_cast<int>(v);
}

// roundf() to an int8, as ggml's `y.qs[j] = roundf(x)` (the reference Q8
// quantizers); in range for finite inputs.
inline int8_t roundf_to_i8(float v) {
  const float r = std::roundf(v);
  if (!(r >= -128.0f)) return r != r ? 0 : -128;
  if (r > 127.0f) return 127;
  return static_cast<int8_t>(r);
}

// Round to nearest, ties to even (what _mm256_round_ps(_MM_ROUND_NEAREST)
// computes for |v| <= 2^22).
using detail::nearest_int;

// _mm256_cvtps_epi32 + the saturating packs of the x86 quantizers. The input
// is already an integer-valued float in -127..127 for finite data.
inline int8_t nearest_even_to_i8(float v) {
  if (v != v) return -128;  // cvtps gives INT_MIN for NaN, packs saturate it
  if (v >= 127.0f) return 127;
  if (v <= -128.0f) return -128;
  return static_cast<int8_t>(nearest_int(v));
}

}  // namespace

// =============================================================================
// Float formats.

void to_float_f32(const void* src, float* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

void to_float_f16(const void* src, float* dst, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(h[i]);
}

void to_float_bf16(const void* src, float* dst, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(h[i]);
}

void from_float_f16(const float* src, void* dst, int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(src[i]);
}

void from_float_bf16(const float* src, void* dst, int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_bf16(src[i]);
}

// =============================================================================
// Dequantization (dequantize_row_*).

void to_float_q4_0(const void* src, float* dst, int64_t n) { dequant_row<BlockQ4_0>(src, dst, n); }

void to_float_q4_1(const void* src, float* dst, int64_t n) { dequant_row<BlockQ4_1>(src, dst, n); }

void to_float_q5_0(const void* src, float* dst, int64_t n) { dequant_row<BlockQ5_0>(src, dst, n); }

void to_float_q5_1(const void* src, float* dst, int64_t n) { dequant_row<BlockQ5_1>(src, dst, n); }

void to_float_q8_0(const void* src, float* dst, int64_t n) { dequant_row<BlockQ8_0>(src, dst, n); }

void to_float_q8_1(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const BlockQ8_1*>(src);
  const int64_t nb = n / QK8_1;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < QK8_1; ++j) dst[i * QK8_1 + j] = x[i].qs[j] * d;
  }
}

// =============================================================================
// File-creation quantizers (quantize_row_*_ref).

void from_float_q4_0(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ4_0*>(dst);
  const int64_t nb = n / QK4_0;
  for (int64_t i = 0; i < nb; ++i) {
    const float* x = src + i * QK4_0;
    // The value of largest magnitude (first one on ties) sets d = max / -8, so
    // it maps exactly to q = 0 and the other side gets the extra level.
    float amax = 0.0f;
    float max = 0.0f;
    for (int j = 0; j < QK4_0; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      const float x0 = x[j] * id;
      const float x1 = x[j + QK4_0 / 2] * id;
      // (int8_t)(v + 8.5f) truncates: round half up onto 0..16, then clamp.
      int xi0 = trunc_to_int(x0 + 8.5f);
      int xi1 = trunc_to_int(x1 + 8.5f);
      xi0 = xi0 < 15 ? xi0 : 15;
      xi1 = xi1 < 15 ? xi1 : 15;
      y[i].qs[j] = static_cast<uint8_t>((xi0 & 0xFF) | (xi1 << 4));
    }
  }
}

void from_float_q4_1(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ4_1*>(dst);
  const int64_t nb = n / QK4_1;
  for (int64_t i = 0; i < nb; ++i) {
    const float* x = src + i * QK4_1;
    float min = FLT_MAX;
    float max = -FLT_MAX;
    for (int j = 0; j < QK4_1; ++j) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / ((1 << 4) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    y[i].m = fp32_to_fp16(min);
    for (int j = 0; j < QK4_1 / 2; ++j) {
      const float x0 = (x[j] - min) * id;
      const float x1 = (x[j + QK4_1 / 2] - min) * id;
      int xi0 = trunc_to_int(x0 + 0.5f);
      int xi1 = trunc_to_int(x1 + 0.5f);
      xi0 = xi0 < 15 ? xi0 : 15;
      xi1 = xi1 < 15 ? xi1 : 15;
      y[i].qs[j] = static_cast<uint8_t>((xi0 & 0xFF) | (xi1 << 4));
    }
  }
}

void from_float_q5_0(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ5_0*>(dst);
  const int64_t nb = n / QK5_0;
  for (int64_t i = 0; i < nb; ++i) {
    const float* x = src + i * QK5_0;
    float amax = 0.0f;
    float max = 0.0f;
    for (int j = 0; j < QK5_0; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -16;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_0 / 2; ++j) {
      const float x0 = x[j] * id;
      const float x1 = x[j + QK5_0 / 2] * id;
      int xi0 = trunc_to_int(x0 + 16.5f);
      int xi1 = trunc_to_int(x1 + 16.5f);
      xi0 = (xi0 < 31 ? xi0 : 31) & 0xFF;
      xi1 = (xi1 < 31 ? xi1 : 31) & 0xFF;
      y[i].qs[j] = static_cast<uint8_t>((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
      qh |= ((static_cast<uint32_t>(xi0) & 0x10u) >> 4) << j;
      qh |= ((static_cast<uint32_t>(xi1) & 0x10u) >> 4) << (j + QK5_0 / 2);
    }
    std::memcpy(y[i].qh, &qh, sizeof qh);
  }
}

void from_float_q5_1(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ5_1*>(dst);
  const int64_t nb = n / QK5_1;
  for (int64_t i = 0; i < nb; ++i) {
    const float* x = src + i * QK5_1;
    float min = FLT_MAX;
    float max = -FLT_MAX;
    for (int j = 0; j < QK5_1; ++j) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / ((1 << 5) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    y[i].m = fp32_to_fp16(min);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_1 / 2; ++j) {
      const float x0 = (x[j] - min) * id;
      const float x1 = (x[j + QK5_1 / 2] - min) * id;
      // ggml casts straight to uint8_t (no clamp); for finite input the
      // value is at most 31.5 so this is the same.
      const uint32_t xi0 = static_cast<uint32_t>(trunc_to_int(x0 + 0.5f)) & 0xFFu;
      const uint32_t xi1 = static_cast<uint32_t>(trunc_to_int(x1 + 0.5f)) & 0xFFu;
      y[i].qs[j] = static_cast<uint8_t>((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
      qh |= ((xi0 & 0x10u) >> 4) << j;
      qh |= ((xi1 & 0x10u) >> 4) << (j + QK5_1 / 2);
    }
    std::memcpy(y[i].qh, &qh, sizeof qh);
  }
}

void from_float_q8_0(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_0*>(dst);
  const int64_t nb = n / QK8_0;
  for (int64_t i = 0; i < nb; ++i) {
    const float* x = src + i * QK8_0;
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; ++j) amax = amax > std::fabs(x[j]) ? amax : std::fabs(x[j]);
    const float d = amax / ((1 << 7) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < QK8_0; ++j) y[i].qs[j] = roundf_to_i8(x[j] * id);
  }
}

void from_float_q8_1(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_1*>(dst);
  const int64_t nb = n / QK8_1;
  for (int64_t i = 0; i < nb; ++i) {
    const float* x = src + i * QK8_1;
    float amax = 0.0f;
    for (int j = 0; j < QK8_1; ++j) amax = amax > std::fabs(x[j]) ? amax : std::fabs(x[j]);
    const float d = amax / ((1 << 7) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    int sum = 0;
    for (int j = 0; j < QK8_1; ++j) {
      y[i].qs[j] = roundf_to_i8(x[j] * id);
      sum += y[i].qs[j];
    }
    y[i].s = fp32_to_fp16(sum * d);
  }
}

// =============================================================================
// Activation quantizers (x86 AVX/AVX2 path of ggml-cpu).

namespace {
// Shared body of the x86 Q8_0 / Q8_1 quantizers; returns sum(qs).
inline int quantize_act_block32(const float* x, float* d_out, int8_t* qs) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) {
    const float ax = std::fabs(x[j]);
    amax = ax > amax ? ax : amax;
  }
  const float d = amax / 127.f;
  const float id = amax != 0.0f ? 127.f / amax : 0.0f;
  int sum = 0;
  for (int j = 0; j < 32; ++j) {
    qs[j] = nearest_even_to_i8(x[j] * id);
    sum += qs[j];
  }
  *d_out = d;
  return sum;
}
}  // namespace

void quantize_act_q8_0(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_0*>(dst);
  const int64_t nb = n / QK8_0;
  for (int64_t i = 0; i < nb; ++i) {
    float d;
    quantize_act_block32(src + i * QK8_0, &d, y[i].qs);
    y[i].d = fp32_to_fp16(d);
  }
}

void quantize_act_q8_1(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_1*>(dst);
  const int64_t nb = n / QK8_1;
  for (int64_t i = 0; i < nb; ++i) {
    float d;
    const int sum = quantize_act_block32(src + i * QK8_1, &d, y[i].qs);
    y[i].d = fp32_to_fp16(d);
    y[i].s = fp32_to_fp16(d * static_cast<float>(sum));
  }
}

// =============================================================================
// Dot products (ggml_vec_dot_*_generic).

float vec_dot_f32_f32(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const float*>(w);
  const auto* y = static_cast<const float*>(a);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * y[i]);
  return static_cast<float>(sum);
}

float vec_dot_f16_f32(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const float*>(a);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(fp16_to_fp32(x[i]) * y[i]);
  return static_cast<float>(sum);
}

float vec_dot_bf16_f32(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const float*>(a);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(bf16_to_fp32(x[i]) * y[i]);
  return static_cast<float>(sum);
}

float vec_dot_q4_0_q8_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  const int64_t nb = n / QK8_0;
  float sumf = 0;
  for (int64_t ib = 0; ib < nb; ++ib) {
    int sumi0 = 0;
    int sumi1 = 0;
    for (int j = 0; j < QK8_0 / 2; ++j) {
      const int v0 = (x[ib].qs[j] & 0x0F) - 8;
      const int v1 = (x[ib].qs[j] >> 4) - 8;
      sumi0 += v0 * y[ib].qs[j];
      sumi1 += v1 * y[ib].qs[j + QK8_0 / 2];
    }
    const int sumi = sumi0 + sumi1;
    sumf += sumi * fp16_to_fp32(x[ib].d) * fp16_to_fp32(y[ib].d);
  }
  return sumf;
}

float vec_dot_q4_1_q8_1(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_1*>(w);
  const auto* y = static_cast<const BlockQ8_1*>(a);
  const int64_t nb = n / QK8_1;
  float sumf = 0;
  for (int64_t ib = 0; ib < nb; ++ib) {
    int sumi0 = 0;
    int sumi1 = 0;
    for (int j = 0; j < QK8_1 / 2; ++j) {
      const int v0 = x[ib].qs[j] & 0x0F;
      const int v1 = x[ib].qs[j] >> 4;
      sumi0 += v0 * y[ib].qs[j];
      sumi1 += v1 * y[ib].qs[j + QK8_1 / 2];
    }
    const int sumi = sumi0 + sumi1;
    sumf += (fp16_to_fp32(x[ib].d) * fp16_to_fp32(y[ib].d)) * sumi + fp16_to_fp32(x[ib].m) * fp16_to_fp32(y[ib].s);
  }
  return sumf;
}

float vec_dot_q5_0_q8_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ5_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  const int64_t nb = n / QK8_0;
  float sumf = 0;
  for (int64_t ib = 0; ib < nb; ++ib) {
    const uint32_t qh = q5_high_bits(x[ib].qh);
    int sumi0 = 0;
    int sumi1 = 0;
    for (int j = 0; j < QK8_0 / 2; ++j) {
      const uint8_t xh_0 = static_cast<uint8_t>(((qh & (1u << j)) >> j) << 4);
      const uint8_t xh_1 = static_cast<uint8_t>((qh & (1u << (j + 16))) >> (j + 12));
      const int32_t x0 = static_cast<int8_t>(((x[ib].qs[j] & 0x0F) | xh_0) - 16);
      const int32_t x1 = static_cast<int8_t>(((x[ib].qs[j] >> 4) | xh_1) - 16);
      sumi0 += x0 * y[ib].qs[j];
      sumi1 += x1 * y[ib].qs[j + QK8_0 / 2];
    }
    const int sumi = sumi0 + sumi1;
    sumf += (fp16_to_fp32(x[ib].d) * fp16_to_fp32(y[ib].d)) * sumi;
  }
  return sumf;
}

float vec_dot_q5_1_q8_1(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ5_1*>(w);
  const auto* y = static_cast<const BlockQ8_1*>(a);
  const int64_t nb = n / QK8_1;
  float sumf = 0;
  for (int64_t ib = 0; ib < nb; ++ib) {
    const uint32_t qh = q5_high_bits(x[ib].qh);
    int sumi0 = 0;
    int sumi1 = 0;
    for (int j = 0; j < QK8_1 / 2; ++j) {
      const uint8_t xh_0 = static_cast<uint8_t>(((qh >> j) << 4) & 0x10);
      const uint8_t xh_1 = static_cast<uint8_t>((qh >> (j + 12)) & 0x10);
      const int32_t x0 = (x[ib].qs[j] & 0xF) | xh_0;
      const int32_t x1 = (x[ib].qs[j] >> 4) | xh_1;
      sumi0 += x0 * y[ib].qs[j];
      sumi1 += x1 * y[ib].qs[j + QK8_1 / 2];
    }
    const int sumi = sumi0 + sumi1;
    sumf += (fp16_to_fp32(x[ib].d) * fp16_to_fp32(y[ib].d)) * sumi + fp16_to_fp32(x[ib].m) * fp16_to_fp32(y[ib].s);
  }
  return sumf;
}

float vec_dot_q8_0_q8_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ8_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  const int64_t nb = n / QK8_0;
  float sumf = 0;
  for (int64_t ib = 0; ib < nb; ++ib) {
    int sumi = 0;
    for (int j = 0; j < QK8_0; ++j) sumi += x[ib].qs[j] * y[ib].qs[j];
    sumf += sumi * (fp16_to_fp32(x[ib].d) * fp16_to_fp32(y[ib].d));
  }
  return sumf;
}

}  // namespace tandem::core::quant::ref
