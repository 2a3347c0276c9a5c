// Reference dequantization of ggml's i-quants: IQ2_XXS, IQ2_XS, IQ2_S,
// IQ3_XXS, IQ3_S, IQ1_S, IQ1_M, IQ4_NL, IQ4_XS. Source of truth: ggml's
// ggml-quants.c dequantize_row_iq*; each function below computes the same
// float expressions in the same order (e.g. (db * grid) * sign, not
// db * (grid * sign)), so the values equal ggml's bit for bit. Block layouts
// are documented on the structs in core/quant_blocks.h, tables in
// core/quant_iq_tables.h.
//
// No expression here has a multiply feeding an add, so FMA contraction could
// not change a value today; contraction stays off like in the sibling files
// so that remains true if a formula changes.
#include <cstdint>

#include "core/quant_blocks.h"
#include "core/quant_iq_tables.h"
#include "core/quant_ref_common.h"  // also: FMA contraction off for this file
#include "core/quant_reference.h"

namespace tandem::core::quant::ref {
namespace {

// ggml writes (signs & kmask_iq2xs[j] ? -1.f : 1.f): bit j of a sign byte.
inline float sign_of(uint8_t signs, int j) { return (signs >> j) & 1 ? -1.f : 1.f; }

// 8 values y[j] = db * grid[j] * sign_j from a grid row of 8 magnitudes.
inline void put8(float* y, float db, uint64_t row, uint8_t signs) {
  for (int j = 0; j < 8; ++j) y[j] = db * iq_grid_byte(row, j) * sign_of(signs, j);
}

// IQ1 values y[j] = dl * (grid[j] + delta) from a grid row of 8 int8.
inline void put8_iq1(float* y, float dl, uint64_t row, float delta) {
  for (int j = 0; j < 8; ++j) y[j] = dl * (static_cast<int8_t>(iq_grid_byte(row, j)) + delta);
}

}  // namespace

void to_float_iq2_xxs(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const BlockIQ2_XXS*>(src);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int g = 0; g < QK_K / 32; ++g) {
      const uint32_t a0 = u16_pair(x[i].qs + 4 * g);      // 4 grid indices, one per byte
      const uint32_t a1 = u16_pair(x[i].qs + 4 * g + 2);  // 4 ksigns indices, scale on top
      const float db = d * (0.5f + (a1 >> 28)) * 0.25f;
      for (int l = 0; l < 4; ++l) {
        put8(dst, db, iq2xxs_grid[(a0 >> (8 * l)) & 0xFF], ksigns_iq2xs[(a1 >> (7 * l)) & 127]);
        dst += 8;
      }
    }
  }
}

void to_float_iq2_xs(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const BlockIQ2_XS*>(src);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int g = 0; g < QK_K / 32; ++g) {
      const float db[2] = {d * (0.5f + (x[i].scales[g] & 0xF)) * 0.25f, d * (0.5f + (x[i].scales[g] >> 4)) * 0.25f};
      for (int l = 0; l < 4; ++l) {
        const uint16_t q = x[i].qs[4 * g + l];
        put8(dst, db[l / 2], iq2xs_grid[q & 511], ksigns_iq2xs[q >> 9]);
        dst += 8;
      }
    }
  }
}

void to_float_iq2_s(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const BlockIQ2_S*>(src);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const uint8_t* qs = x[i].qs;
    const uint8_t* signs = x[i].qs + QK_K / 8;
    for (int g = 0; g < QK_K / 32; ++g) {
      const float db[2] = {d * (0.5f + (x[i].scales[g] & 0xF)) * 0.25f, d * (0.5f + (x[i].scales[g] >> 4)) * 0.25f};
      for (int l = 0; l < 4; ++l) {
        const int idx = qs[4 * g + l] | ((x[i].qh[g] << (8 - 2 * l)) & 0x300);
        put8(dst, db[l / 2], iq2s_grid[idx], signs[4 * g + l]);
        dst += 8;
      }
    }
  }
}

void to_float_iq3_xxs(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const BlockIQ3_XXS*>(src);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const uint8_t* qs = x[i].qs;
    for (int g = 0; g < QK_K / 32; ++g) {
      const uint32_t aux = le_u32(x[i].qs + QK_K / 4 + 4 * g);  // 4 ksigns indices, scale on top
      const float db = d * (0.5f + (aux >> 28)) * 0.5f;
      for (int l = 0; l < 4; ++l) {
        const uint8_t signs = ksigns_iq2xs[(aux >> (7 * l)) & 127];
        const uint32_t row1 = iq3xxs_grid[qs[8 * g + 2 * l]];
        const uint32_t row2 = iq3xxs_grid[qs[8 * g + 2 * l + 1]];
        for (int j = 0; j < 4; ++j) {
          dst[j] = db * iq_grid_byte(row1, j) * sign_of(signs, j);
          dst[j + 4] = db * iq_grid_byte(row2, j) * sign_of(signs, j + 4);
        }
        dst += 8;
      }
    }
  }
}

void to_float_iq3_s(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const BlockIQ3_S*>(src);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int g = 0; g < QK_K / 32; ++g) {
      const int s = (x[i].scales[g / 2] >> (4 * (g % 2))) & 0xF;
      const float db = d * (1 + 2 * s);
      const uint8_t* qs = x[i].qs + 8 * g;
      const int qh = x[i].qh[g];
      for (int l = 0; l < 4; ++l) {
        const uint8_t signs = x[i].signs[4 * g + l];
        const uint32_t row1 = iq3s_grid[qs[2 * l] | ((qh << (8 - 2 * l)) & 256)];
        const uint32_t row2 = iq3s_grid[qs[2 * l + 1] | ((qh << (7 - 2 * l)) & 256)];
        for (int j = 0; j < 4; ++j) {
          dst[j] = db * iq_grid_byte(row1, j) * sign_of(signs, j);
          dst[j + 4] = db * iq_grid_byte(row2, j) * sign_of(signs, j + 4);
        }
        dst += 8;
      }
    }
  }
}

void to_float_iq1_s(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const BlockIQ1_S*>(src);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int g = 0; g < QK_K / 32; ++g) {
      const uint16_t qh = x[i].qh[g];
      const float dl = d * (2 * ((qh >> 12) & 7) + 1);
      const float delta = qh & 0x8000 ? -IQ1S_DELTA : IQ1S_DELTA;
      for (int l = 0; l < 4; ++l) {
        put8_iq1(dst, dl, iq1s_grid[x[i].qs[4 * g + l] | (((qh >> (3 * l)) & 7) << 8)], delta);
        dst += 8;
      }
    }
  }
}

void to_float_iq1_m(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const BlockIQ1_M*>(src);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_fp32(iq1m_scale_bits(x[i]));
    for (int g = 0; g < QK_K / 32; ++g) {
      const uint16_t sc = le_u16(x[i].scales + 2 * (g / 2));
      const float dl[2] = {d * (2 * ((sc >> (6 * (g % 2))) & 7) + 1), d * (2 * ((sc >> (6 * (g % 2) + 3)) & 7) + 1)};
      for (int l = 0; l < 4; ++l) {
        const int nib = (x[i].qh[2 * g + l / 2] >> (4 * (l % 2))) & 0xF;  // 3 index bits | delta sign
        const float delta = nib & 8 ? -IQ1S_DELTA : IQ1S_DELTA;
        put8_iq1(dst, dl[l / 2], iq1s_grid[x[i].qs[4 * g + l] | ((nib & 7) << 8)], delta);
        dst += 8;
      }
    }
  }
}

void to_float_iq4_nl(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const BlockIQ4_NL*>(src);
  for (int64_t i = 0; i < n / QK4_NL; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < QK4_NL / 2; ++j) {
      dst[j] = d * kvalues_iq4nl[x[i].qs[j] & 0xF];
      dst[j + QK4_NL / 2] = d * kvalues_iq4nl[x[i].qs[j] >> 4];
    }
    dst += QK4_NL;
  }
}

void to_float_iq4_xs(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const BlockIQ4_XS*>(src);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int g = 0; g < QK_K / 32; ++g) {
      const float dl = d * (iq4_xs_scale(x[i], g) - 32);
      const uint8_t* qs = x[i].qs + 16 * g;
      for (int j = 0; j < 16; ++j) {
        dst[j] = dl * kvalues_iq4nl[qs[j] & 0xF];
        dst[j + 16] = dl * kvalues_iq4nl[qs[j] >> 4];
      }
      dst += 32;
    }
  }
}

}  // namespace tandem::core::quant::ref
