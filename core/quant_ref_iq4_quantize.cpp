// File-creation quantizers for IQ4_NL and IQ4_XS, the two i-quants that
// llama-quantize makes without an importance matrix by a closed search (the
// grid i-quants need a neighbour search and, below 3 bits, an imatrix).
// Source of truth: ggml-quants.c quantize_row_iq4_nl_impl / quantize_iq4_nl /
// quantize_iq4_xs with quant_weights == NULL and ntry == 7. The search keeps
// the scale whose weighted error is smallest, so every float expression keeps
// ggml's order and types: a different rounding can flip a choice and change
// the file's bytes, which the SmolLM2 fixture test compares with llama.cpp's.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/quant_blocks.h"
#include "core/quant_iq_tables.h"
#include "core/quant_ref_common.h"  // also: FMA contraction off for this file
#include "core/quant_reference.h"

namespace tandem::core::quant::ref {
namespace {

using detail::kGroupMaxEps;
using detail::nearest_int;
constexpr int kTries = 7;               // ggml's ntry for both IQ4 types
constexpr int kGroup = 32;              // values sharing one scale

// Index of the level nearest x in the sorted 16 levels; ties go up. The
// same choice as ggml's binary search (best_index_int8), found by counting
// the levels <= x: branch-free, since the quantizer calls it ~17 times per
// value and the search's branches are unpredictable.
inline uint8_t nearest_level(float x) {
  const int8_t* v = kvalues_iq4nl;
  if (x <= v[0]) return 0;
  if (x >= v[15]) return 15;
  int hi = 1;  // v[hi - 1] <= x < v[hi]
  for (int k = 1; k < 15; ++k) hi += x >= v[k] ? 1 : 0;
  return static_cast<uint8_t>(x - v[hi - 1] < v[hi] - x ? hi - 1 : hi);
}

// The best scale for one group of 32 (weights x^2): start from the level
// that maps the largest magnitude onto -127, refine by least squares, then
// try 2*kTries+1 other starting points. Fills L with the first pass's levels
// (IQ4_NL re-derives them from the final scale; IQ4_XS from the quantized one).
float best_group_scale(const float* x, uint8_t* L) {
  const int8_t* v = kvalues_iq4nl;
  float weight[kGroup];
  for (int j = 0; j < kGroup; ++j) weight[j] = x[j] * x[j];
  float amax = 0, max = 0;
  for (int j = 0; j < kGroup; ++j) {
    const float ax = std::fabs(x[j]);
    if (ax > amax) {
      amax = ax;
      max = x[j];
    }
  }
  if (amax < kGroupMaxEps) return 0.f;
  float d = -max / v[0];
  float id = 1 / d;
  float sumqx = 0, sumq2 = 0;
  for (int j = 0; j < kGroup; ++j) {
    const float al = id * x[j];
    const uint8_t l = nearest_level(al);
    L[j] = l;
    const float q = v[l];
    const float w = weight[j];
    sumqx += w * q * x[j];
    sumq2 += w * q * q;
  }
  d = sumqx / sumq2;
  float best = d * sumqx;
  for (int itry = -kTries; itry <= kTries; ++itry) {
    id = (itry + v[0]) / max;
    sumqx = sumq2 = 0;
    for (int j = 0; j < kGroup; ++j) {
      const float al = id * x[j];
      const float q = v[nearest_level(al)];
      const float w = weight[j];
      sumqx += w * q * x[j];
      sumq2 += w * q * q;
    }
    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
      d = sumqx / sumq2;
      best = d * sumqx;
    }
  }
  return d;
}

// qs[16g + j] holds element j of group g in its low nibble and element j+16
// in its high nibble (L: [groups][32] level indices).
void pack_nibbles(const uint8_t* L, int groups, uint8_t* qs) {
  for (int g = 0; g < groups; ++g) {
    for (int j = 0; j < 16; ++j) {
      qs[16 * g + j] = static_cast<uint8_t>(L[32 * g + j] | (L[32 * g + 16 + j] << 4));
    }
  }
}

}  // namespace

void from_float_iq4_nl(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<BlockIQ4_NL*>(dst);
  uint8_t L[kGroup];  // level index per value of the block
  for (int64_t b = 0; b < n / QK4_NL; ++b) {
    const float* x = src + b * QK4_NL;
    const float d = best_group_scale(x, L);
    y[b].d = fp32_to_fp16(d);
    const float id = d ? 1 / d : 0;
    for (int j = 0; j < kGroup; ++j) L[j] = nearest_level(id * x[j]);
    pack_nibbles(L, 1, y[b].qs);
  }
}

void from_float_iq4_xs(const float* src, void* dst, int64_t n) {
  constexpr int kGroups = QK_K / kGroup;
  auto* y = static_cast<BlockIQ4_XS*>(dst);
  uint8_t L[QK_K];        // [8 groups][32] level indices
  float scales[kGroups];  // each group's unquantized scale
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const float* x = src + b * QK_K;
    BlockIQ4_XS& out = y[b];
    float max_scale = 0, amax_scale = 0;
    for (int g = 0; g < kGroups; ++g) {
      scales[g] = best_group_scale(x + kGroup * g, L + kGroup * g);
      const float abs_d = std::fabs(scales[g]);
      if (abs_d > amax_scale) {
        amax_scale = abs_d;
        max_scale = scales[g];
      }
    }
    // 6-bit group scales l in -32..31 (stored + 32) against one fp16 d
    // chosen so the largest-magnitude scale lands on -32.
    out.scales_h = 0;
    std::memset(out.scales_l, 0, sizeof(out.scales_l));
    const float d = -max_scale / 32;
    out.d = fp32_to_fp16(d);
    const float id = d ? 1 / d : 0.f;
    for (int g = 0; g < kGroups; ++g) {
      int l = nearest_int(id * scales[g]);
      l = l < -32 ? -32 : (l > 31 ? 31 : l);
      const float dl = d * l;
      const float idl = dl ? 1 / dl : 0.f;
      for (int j = 0; j < kGroup; ++j) L[kGroup * g + j] = nearest_level(idl * x[kGroup * g + j]);
      l += 32;
      const auto lo = static_cast<uint8_t>(l & 0xf);
      const auto hi = static_cast<uint16_t>(l >> 4);
      if (g % 2 == 0) {
        out.scales_l[g / 2] = lo;
      } else {
        out.scales_l[g / 2] |= static_cast<uint8_t>(lo << 4);
      }
      out.scales_h |= static_cast<uint16_t>(hi << 2 * (g % 8));
    }
    pack_nibbles(L, kGroups, out.qs);
  }
}

}  // namespace tandem::core::quant::ref
