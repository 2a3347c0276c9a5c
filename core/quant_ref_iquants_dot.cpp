// Reference dot products of the i-quants with quantized activations (Q8_K
// for the 256-value types, Q8_0 for IQ4_NL): the scalar path the engine
// falls back to where no SIMD kernel exists, and the yardstick SIMD kernels
// are tested against. Integer sums per group, one float multiply per group
// or super-block, as ggml's ggml_vec_dot_iq*_q8_K generic code: the grid
// magnitudes are small integers, so every partial sum is exact and only the
// final scaling rounds. Block layouts: core/quant_blocks.h; tables:
// core/quant_iq_tables.h.
#include <cstdint>

#include "core/quant_blocks.h"
#include "core/quant_iq_tables.h"
#include "core/quant_ref_common.h"  // also: FMA contraction off for this file
#include "core/quant_reference.h"

namespace tandem::core::quant::ref {
namespace {

// Σ_j grid[j] · q8[j] · ±1 over 8 values; bit j of `signs` set means negative.
inline int32_t dot8_signed(uint64_t row, uint8_t signs, const int8_t* q8) {
  int32_t s = 0;
  for (int j = 0; j < 8; ++j) {
    const int32_t v = iq_grid_byte(row, j) * q8[j];
    s += (signs >> j) & 1 ? -v : v;
  }
  return s;
}

// The same for two 4-value rows (IQ3 grids): row1 meets q8[0..4), row2 q8[4..8).
inline int32_t dot4x2_signed(uint32_t row1, uint32_t row2, uint8_t signs, const int8_t* q8) {
  int32_t s = 0;
  for (int j = 0; j < 4; ++j) {
    const int32_t a = iq_grid_byte(row1, j) * q8[j];
    const int32_t b = iq_grid_byte(row2, j) * q8[j + 4];
    s += (signs >> j) & 1 ? -a : a;
    s += (signs >> (j + 4)) & 1 ? -b : b;
  }
  return s;
}

// IQ1 grids hold signed values -1, 0, 1.
inline int32_t dot8_iq1(uint64_t row, const int8_t* q8) {
  int32_t s = 0;
  for (int j = 0; j < 8; ++j) s += static_cast<int8_t>(iq_grid_byte(row, j)) * q8[j];
  return s;
}

inline int32_t sum8(const int8_t* q8) {
  int32_t s = 0;
  for (int j = 0; j < 8; ++j) s += q8[j];
  return s;
}

}  // namespace

float vec_dot_iq2_xxs_q8_K(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockIQ2_XXS*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const int8_t* q8 = y[i].qs;
    int32_t bsum = 0;
    for (int g = 0; g < QK_K / 32; ++g) {
      const uint32_t idx = u16_pair(x[i].qs + 4 * g);     // 4 grid indices, one per byte
      const uint32_t aux = u16_pair(x[i].qs + 4 * g + 2);  // 4 ksigns indices, scale on top
      int32_t sumi = 0;
      for (int l = 0; l < 4; ++l, q8 += 8)
        sumi += dot8_signed(iq2xxs_grid[(idx >> (8 * l)) & 0xFF], ksigns_iq2xs[(aux >> (7 * l)) & 127], q8);
      bsum += sumi * static_cast<int32_t>(2 * (aux >> 28) + 1);
    }
    sumf += fp16_to_fp32(x[i].d) * y[i].d * bsum;
  }
  return 0.125f * sumf;
}

float vec_dot_iq2_xs_q8_K(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockIQ2_XS*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const int8_t* q8 = y[i].qs;
    int32_t bsum = 0;
    for (int g = 0; g < QK_K / 32; ++g) {
      int32_t half[2] = {0, 0};  // groups of 16 with their own scale
      for (int l = 0; l < 4; ++l, q8 += 8) {
        const uint16_t q = x[i].qs[4 * g + l];
        half[l / 2] += dot8_signed(iq2xs_grid[q & 511], ksigns_iq2xs[q >> 9], q8);
      }
      bsum += half[0] * (2 * (x[i].scales[g] & 0xF) + 1) + half[1] * (2 * (x[i].scales[g] >> 4) + 1);
    }
    sumf += fp16_to_fp32(x[i].d) * y[i].d * bsum;
  }
  return 0.125f * sumf;
}

float vec_dot_iq2_s_q8_K(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockIQ2_S*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const int8_t* q8 = y[i].qs;
    const uint8_t* signs = x[i].qs + QK_K / 8;
    int32_t bsum = 0;
    for (int g = 0; g < QK_K / 32; ++g) {
      int32_t half[2] = {0, 0};
      for (int l = 0; l < 4; ++l, q8 += 8) {
        const int idx = x[i].qs[4 * g + l] | ((x[i].qh[g] << (8 - 2 * l)) & 0x300);
        half[l / 2] += dot8_signed(iq2s_grid[idx], signs[4 * g + l], q8);
      }
      bsum += half[0] * (2 * (x[i].scales[g] & 0xF) + 1) + half[1] * (2 * (x[i].scales[g] >> 4) + 1);
    }
    sumf += fp16_to_fp32(x[i].d) * y[i].d * bsum;
  }
  return 0.125f * sumf;
}

float vec_dot_iq3_xxs_q8_K(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockIQ3_XXS*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const int8_t* q8 = y[i].qs;
    int32_t bsum = 0;
    for (int g = 0; g < QK_K / 32; ++g) {
      const uint32_t aux = le_u32(x[i].qs + QK_K / 4 + 4 * g);  // 4 ksigns indices, scale on top
      const uint8_t* qs = x[i].qs + 8 * g;
      int32_t sumi = 0;
      for (int l = 0; l < 4; ++l, q8 += 8)
        sumi += dot4x2_signed(iq3xxs_grid[qs[2 * l]], iq3xxs_grid[qs[2 * l + 1]], ksigns_iq2xs[(aux >> (7 * l)) & 127], q8);
      bsum += sumi * static_cast<int32_t>(2 * (aux >> 28) + 1);
    }
    sumf += fp16_to_fp32(x[i].d) * y[i].d * bsum;
  }
  return 0.25f * sumf;
}

float vec_dot_iq3_s_q8_K(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockIQ3_S*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const int8_t* q8 = y[i].qs;
    int32_t bsum = 0;
    for (int g = 0; g < QK_K / 32; ++g) {
      const uint8_t* qs = x[i].qs + 8 * g;
      const int qh = x[i].qh[g];
      int32_t sumi = 0;
      for (int l = 0; l < 4; ++l, q8 += 8) {
        const uint32_t row1 = iq3s_grid[qs[2 * l] | ((qh << (8 - 2 * l)) & 256)];
        const uint32_t row2 = iq3s_grid[qs[2 * l + 1] | ((qh << (7 - 2 * l)) & 256)];
        sumi += dot4x2_signed(row1, row2, x[i].signs[4 * g + l], q8);
      }
      bsum += sumi * (2 * ((x[i].scales[g / 2] >> (4 * (g % 2))) & 0xF) + 1);
    }
    sumf += fp16_to_fp32(x[i].d) * y[i].d * bsum;
  }
  return sumf;
}

float vec_dot_iq1_s_q8_K(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockIQ1_S*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const int8_t* q8 = y[i].qs;
    int32_t sumi = 0, sumi_delta = 0;  // Σ scale·grid·q8 and Σ scale·(±1)·q8
    for (int g = 0; g < QK_K / 32; ++g) {
      const uint16_t qh = x[i].qh[g];
      const int32_t ls = 2 * ((qh >> 12) & 7) + 1;
      int32_t lsum = 0;
      for (int l = 0; l < 4; ++l, q8 += 8) lsum += dot8_iq1(iq1s_grid[x[i].qs[4 * g + l] | (((qh >> (3 * l)) & 7) << 8)], q8);
      sumi += ls * lsum;
      // Σ q8 over the group's 32 values, from the activation's 16-value sums.
      const int32_t q8sum = y[i].bsums[2 * g] + y[i].bsums[2 * g + 1];
      sumi_delta += ls * (qh & 0x8000 ? -q8sum : q8sum);
    }
    sumf += fp16_to_fp32(x[i].d) * y[i].d * (sumi + IQ1S_DELTA * sumi_delta);
  }
  return sumf;
}

float vec_dot_iq1_m_q8_K(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockIQ1_M*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const int8_t* q8 = y[i].qs;
    int32_t sumi = 0, sumi_delta = 0;
    for (int g = 0; g < QK_K / 32; ++g) {
      const uint16_t sc = le_u16(x[i].scales + 2 * (g / 2));
      const int32_t ls[2] = {2 * ((sc >> (6 * (g % 2))) & 7) + 1, 2 * ((sc >> (6 * (g % 2) + 3)) & 7) + 1};
      for (int l = 0; l < 4; ++l, q8 += 8) {
        const int nib = (x[i].qh[2 * g + l / 2] >> (4 * (l % 2))) & 0xF;  // 3 index bits | delta sign
        const int32_t s = sum8(q8);
        sumi += ls[l / 2] * dot8_iq1(iq1s_grid[x[i].qs[4 * g + l] | ((nib & 7) << 8)], q8);
        sumi_delta += ls[l / 2] * (nib & 8 ? -s : s);
      }
    }
    sumf += fp16_to_fp32(iq1m_scale_bits(x[i])) * y[i].d * (sumi + IQ1S_DELTA * sumi_delta);
  }
  return sumf;
}

float vec_dot_iq4_nl_q8_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockIQ4_NL*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK4_NL; ++i) {
    int32_t sumi = 0;
    for (int j = 0; j < QK4_NL / 2; ++j)
      sumi += y[i].qs[j] * kvalues_iq4nl[x[i].qs[j] & 0xF] + y[i].qs[j + QK4_NL / 2] * kvalues_iq4nl[x[i].qs[j] >> 4];
    sumf += fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d) * sumi;
  }
  return sumf;
}

float vec_dot_iq4_xs_q8_K(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockIQ4_XS*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d4d8 = fp16_to_fp32(x[i].d) * y[i].d;
    const int8_t* q8 = y[i].qs;
    for (int g = 0; g < QK_K / 32; ++g, q8 += 32) {
      const uint8_t* qs = x[i].qs + 16 * g;
      int32_t sumi = 0;
      for (int j = 0; j < 16; ++j) sumi += q8[j] * kvalues_iq4nl[qs[j] & 0xF] + q8[j + 16] * kvalues_iq4nl[qs[j] >> 4];
      sumf += d4d8 * (iq4_xs_scale(x[i], g) - 32) * sumi;
    }
  }
  return sumf;
}

}  // namespace tandem::core::quant::ref
