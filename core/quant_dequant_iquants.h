#pragma once
// Per-chunk dequantization of the i-quants (IQ2_XXS ... IQ4_XS), the
// companion of core/quant_dequant.h for the formats whose blocks index the
// lookup tables of core/quant_iq_tables.h. TANDEM_HD like the others: the CUDA
// kernels (gpu_worker/cuda/gemv_iquants.cu) run these, and the host unit
// tests check them bit for bit against the reference to_float_iq*
// (core/quant_ref_iquants.cpp), itself checked against gguf-py. A separate
// header so that only the translation units that decode i-quants carry the
// device copies of the tables.
//
// A 256-value i-quant block is eight 32-value groups; chunk c (16 values) is
// the half c % 2 of group c / 2, i.e. two 8-value rows l = 2(c % 2) and
// 2(c % 2) + 1 of the group (the l of the block layouts in quant_blocks.h).
// IQ4_NL (32 values) has two chunks: low nibbles, then high nibbles.
//
// Each function computes the reference's float expressions in the same order
// ((db * grid) * sign, d * (0.5 + s) * 0.25, ...). None of them multiplies
// into an add, so FMA contraction cannot change a value and no explicit
// rounding (mul_add) is needed; keep it that way or use mul_add/mul_sub.
#include <cstdint>

#include "core/quant_blocks.h"
#include "core/quant_dequant.h"
#include "core/quant_iq_tables.h"

namespace tandem::core::quant {

// 8 values y[j] = db * grid[j] * sign_j: a grid row of 8 magnitudes and a
// sign byte (bit j set: value j negative).
TANDEM_HD inline void iq_put8(float* y, float db, uint64_t row, uint8_t signs) {
  for (int j = 0; j < 8; ++j) y[j] = db * iq_grid_byte(row, j) * ((signs >> j) & 1 ? -1.f : 1.f);
}

// The same from two rows of 4 (IQ3 grids): row1 -> y[0..3], row2 -> y[4..7].
TANDEM_HD inline void iq_put4x2(float* y, float db, uint32_t row1, uint32_t row2, uint8_t signs) {
  for (int j = 0; j < 4; ++j) {
    y[j] = db * iq_grid_byte(row1, j) * ((signs >> j) & 1 ? -1.f : 1.f);
    y[j + 4] = db * iq_grid_byte(row2, j) * ((signs >> (j + 4)) & 1 ? -1.f : 1.f);
  }
}

// IQ1 values y[j] = dl * (grid[j] + delta) from a row of 8 int8.
TANDEM_HD inline void iq1_put8(float* y, float dl, uint64_t row, float delta) {
  for (int j = 0; j < 8; ++j) y[j] = dl * (static_cast<int8_t>(iq_grid_byte(row, j)) + delta);
}

TANDEM_HD inline void dequant_chunk(const BlockIQ2_XXS& b, int c, float out[16]) {
  const int g = c / 2;
  const uint32_t a0 = u16_pair(b.qs + 4 * g);      // 4 grid indices, one per byte
  const uint32_t a1 = u16_pair(b.qs + 4 * g + 2);  // 4 ksigns indices, scale on top
  const float db = fp16_to_fp32(b.d) * (0.5f + (a1 >> 28)) * 0.25f;
  for (int k = 0; k < 2; ++k) {
    const int l = 2 * (c % 2) + k;
    iq_put8(out + 8 * k, db, TANDEM_IQ_AT(iq2xxs_grid, (a0 >> (8 * l)) & 0xFF),
            TANDEM_IQ_AT(ksigns_iq2xs, (a1 >> (7 * l)) & 127));
  }
}

TANDEM_HD inline void dequant_chunk(const BlockIQ2_XS& b, int c, float out[16]) {
  const int g = c / 2, h = c % 2;
  const float db = fp16_to_fp32(b.d) * (0.5f + (h ? b.scales[g] >> 4 : b.scales[g] & 0xF)) * 0.25f;
  for (int k = 0; k < 2; ++k) {
    const uint16_t q = b.qs[4 * g + 2 * h + k];
    iq_put8(out + 8 * k, db, TANDEM_IQ_AT(iq2xs_grid, q & 511), TANDEM_IQ_AT(ksigns_iq2xs, q >> 9));
  }
}

TANDEM_HD inline void dequant_chunk(const BlockIQ2_S& b, int c, float out[16]) {
  const int g = c / 2, h = c % 2;
  const float db = fp16_to_fp32(b.d) * (0.5f + (h ? b.scales[g] >> 4 : b.scales[g] & 0xF)) * 0.25f;
  for (int k = 0; k < 2; ++k) {
    const int l = 2 * h + k;
    const int idx = b.qs[4 * g + l] | ((b.qh[g] << (8 - 2 * l)) & 0x300);
    iq_put8(out + 8 * k, db, TANDEM_IQ_AT(iq2s_grid, idx), b.qs[QK_K / 8 + 4 * g + l]);
  }
}

TANDEM_HD inline void dequant_chunk(const BlockIQ3_XXS& b, int c, float out[16]) {
  const int g = c / 2;
  const uint32_t aux = le_u32(b.qs + QK_K / 4 + 4 * g);  // 4 ksigns indices, scale on top
  const float db = fp16_to_fp32(b.d) * (0.5f + (aux >> 28)) * 0.5f;
  for (int k = 0; k < 2; ++k) {
    const int l = 2 * (c % 2) + k;
    iq_put4x2(out + 8 * k, db, TANDEM_IQ_AT(iq3xxs_grid, b.qs[8 * g + 2 * l]),
              TANDEM_IQ_AT(iq3xxs_grid, b.qs[8 * g + 2 * l + 1]), TANDEM_IQ_AT(ksigns_iq2xs, (aux >> (7 * l)) & 127));
  }
}

TANDEM_HD inline void dequant_chunk(const BlockIQ3_S& b, int c, float out[16]) {
  const int g = c / 2;
  const int s = (b.scales[g / 2] >> (4 * (g % 2))) & 0xF;
  const float db = fp16_to_fp32(b.d) * (1 + 2 * s);
  const uint8_t* qs = b.qs + 8 * g;
  const int qh = b.qh[g];
  for (int k = 0; k < 2; ++k) {
    const int l = 2 * (c % 2) + k;
    iq_put4x2(out + 8 * k, db, TANDEM_IQ_AT(iq3s_grid, qs[2 * l] | ((qh << (8 - 2 * l)) & 256)),
              TANDEM_IQ_AT(iq3s_grid, qs[2 * l + 1] | ((qh << (7 - 2 * l)) & 256)), b.signs[4 * g + l]);
  }
}

TANDEM_HD inline void dequant_chunk(const BlockIQ1_S& b, int c, float out[16]) {
  const int g = c / 2;
  const uint16_t qh = b.qh[g];
  const float dl = fp16_to_fp32(b.d) * (2 * ((qh >> 12) & 7) + 1);
  const float delta = qh & 0x8000 ? -IQ1S_DELTA : IQ1S_DELTA;
  for (int k = 0; k < 2; ++k) {
    const int l = 2 * (c % 2) + k;
    iq1_put8(out + 8 * k, dl, TANDEM_IQ_AT(iq1s_grid, b.qs[4 * g + l] | (((qh >> (3 * l)) & 7) << 8)), delta);
  }
}

TANDEM_HD inline void dequant_chunk(const BlockIQ1_M& b, int c, float out[16]) {
  const int g = c / 2, h = c % 2;
  const uint16_t sc = le_u16(b.scales + 2 * (g / 2));
  const float dl = fp16_to_fp32(iq1m_scale_bits(b)) * (2 * ((sc >> (6 * (g % 2) + 3 * h)) & 7) + 1);
  const uint8_t nibs = b.qh[2 * g + h];  // rows l = 2h (low nibble), 2h + 1 (high)
  for (int k = 0; k < 2; ++k) {
    const int nib = (nibs >> (4 * k)) & 0xF;  // 3 index bits | delta sign
    const float delta = nib & 8 ? -IQ1S_DELTA : IQ1S_DELTA;
    iq1_put8(out + 8 * k, dl, TANDEM_IQ_AT(iq1s_grid, b.qs[4 * g + 2 * h + k] | ((nib & 7) << 8)), delta);
  }
}

TANDEM_HD inline void dequant_chunk(const BlockIQ4_NL& b, int c, float out[16]) {
  const float d = fp16_to_fp32(b.d);
  for (int j = 0; j < 16; ++j) out[j] = d * TANDEM_IQ_AT(kvalues_iq4nl, c == 0 ? b.qs[j] & 0xF : b.qs[j] >> 4);
}

TANDEM_HD inline void dequant_chunk(const BlockIQ4_XS& b, int c, float out[16]) {
  const int g = c / 2;
  const float dl = fp16_to_fp32(b.d) * (iq4_xs_scale(b, g) - 32);
  const uint8_t* qs = b.qs + 16 * g;
  for (int j = 0; j < 16; ++j) out[j] = dl * TANDEM_IQ_AT(kvalues_iq4nl, c % 2 == 0 ? qs[j] & 0xF : qs[j] >> 4);
}

template <> struct BlockValues<BlockIQ2_XXS> { static constexpr int n = QK_K; };
template <> struct BlockValues<BlockIQ2_XS> { static constexpr int n = QK_K; };
template <> struct BlockValues<BlockIQ2_S> { static constexpr int n = QK_K; };
template <> struct BlockValues<BlockIQ3_XXS> { static constexpr int n = QK_K; };
template <> struct BlockValues<BlockIQ3_S> { static constexpr int n = QK_K; };
template <> struct BlockValues<BlockIQ1_S> { static constexpr int n = QK_K; };
template <> struct BlockValues<BlockIQ1_M> { static constexpr int n = QK_K; };
template <> struct BlockValues<BlockIQ4_NL> { static constexpr int n = QK4_NL; };
template <> struct BlockValues<BlockIQ4_XS> { static constexpr int n = QK_K; };

}  // namespace tandem::core::quant
