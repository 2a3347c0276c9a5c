#pragma once
// Q4_0, Q4_1, Q8_0 and IQ4_NL weights repacked at load into groups of four rows,
// block by block: the four rows' fp16 scales (and Q4_1's minimums) side by
// side, then their quants.
//
// Why: the four-row kernel of the file layout gathers four scattered fp16
// scales per block with a chain of inserts and reads four streams; with the
// scales side by side one 8-byte load converts all four, and the matrix is
// one forward stream. Measured on SmolLM2 Q4_1 (docs/PERFORMANCE.md).
//
// Each row's arithmetic is unchanged (ggml's order: per block the exact
// int32 lane sums, one FMA with d·d_y; Q4_1's Σ m·s added the same way), so
// results are bit-identical to best_vec_dot's and the logits stay equal to
// llama.cpp's.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/quant_types.h"
#include "cpu_worker/simd_dot.h"

namespace tandem::cpu {

struct BlockQ4_0x4 {
  uint16_t d[4];      // per row: fp16 scale
  uint8_t qs[4][16];  // per row: the block's nibbles
};
static_assert(sizeof(BlockQ4_0x4) == 72, "BlockQ4_0x4 layout");

struct BlockQ4_1x4 {
  uint16_t d[4];      // per row: fp16 scale
  uint16_t m[4];      // per row: fp16 minimum
  uint8_t qs[4][16];  // per row: the block's nibbles
};
static_assert(sizeof(BlockQ4_1x4) == 80, "BlockQ4_1x4 layout");

struct BlockQ8_0x4 {
  uint16_t d[4];     // per row: fp16 scale
  int8_t qs[4][32];  // per row: the block's quants
};
static_assert(sizeof(BlockQ8_0x4) == 136, "BlockQ8_0x4 layout");

// True when `type` is Q4_0/Q4_1/Q8_0/IQ4_NL, AVX2 is present, rows % 4 == 0 and the
// TANDEM_REPACK environment variable is not 0.
bool x4_enabled(core::quant::Type type, int64_t rows, int64_t cols);

// Bytes of one four-row group of `cols` values.
size_t x4_group_bytes(core::quant::Type type, int64_t cols);

// Groups [g0, g1) (rows 4·g0 .. 4·g1) of a rows × cols matrix (rows
// row_bytes apart) → out + g · x4_group_bytes(type, cols).
void repack_x4_groups(core::quant::Type type, const uint8_t* data, size_t row_bytes, int64_t cols, int64_t g0,
                      int64_t g1, uint8_t* out);

// The whole matrix (rows % 4 == 0).
std::vector<uint8_t> repack_x4(core::quant::Type type, const uint8_t* data, size_t row_bytes, int64_t rows,
                               int64_t cols);

// Four rows (one group at w, `n` values) against one activation row:
// out[0..3]; and against two (prefill): out0[0..3], out1[0..3]. The stride
// argument of the function types is unused. nullptr without AVX2 or for a
// type without the layout.
VecDotRowsFn x4_rows_kernel(core::quant::Type type);
VecDotRows2Fn x4_rows2_kernel(core::quant::Type type);

}  // namespace tandem::cpu
