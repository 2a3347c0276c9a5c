#pragma once
// Lookup tables of ggml's i-quant formats. An i-quant block stores indices
// into these tables rather than values, so they are part of the file format
// and must equal ggml's entry for entry; core/quant_iq_tables.inc is
// generated from llama.cpp's gguf-py by tools/gen_iquant_tables.py.
//
// Grid rows are packed as in ggml: row i of a grid is one little-endian
// integer whose byte j is value j of the row (iq_grid_byte below reads it
// without depending on the host's byte order). The arrays are constexpr so
// host code reads them directly; CUDA kernels will need a copy in
// __constant__ memory (a host array is not addressable from the device).
//
// Shapes:
//   iq2xxs_grid   [256]  rows of 8 magnitudes, each in {8, 25, 43}
//   iq2xs_grid    [512]  rows of 8, same values
//   iq2s_grid     [1024] rows of 8, same values
//   iq3xxs_grid   [256]  rows of 4 magnitudes in {4, 12, 20, 28, 36, 44, 52, 62}
//   iq3s_grid     [512]  rows of 4 odd magnitudes in 1..15
//   iq1s_grid     [2048] rows of 8 int8 in {-1, 0, 1} (IQ1_S and IQ1_M)
//   ksigns_iq2xs  [128]  7 stored sign bits -> 8 sign bits (bit j set: value j
//                        negative); the 8th makes the number of minuses even
//   kvalues_iq4nl [16]   the non-linear levels of IQ4_NL and IQ4_XS
//   IQ1S_DELTA           IQ1 values are scale * (grid + delta), delta = +-IQ1S_DELTA
#include <cstdint>

#include "core/quant_blocks.h"

namespace tandem::core::quant {

#include "core/quant_iq_tables.inc"

// Byte j of a packed grid row (uint64_t rows: j in 0..7; uint32_t: 0..3).
TANDEM_HD inline uint8_t iq_grid_byte(uint64_t row, int j) { return static_cast<uint8_t>(row >> (8 * j)); }

}  // namespace tandem::core::quant
