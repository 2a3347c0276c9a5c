#pragma once
// Lookup tables of ggml's i-quant formats. An i-quant block stores indices
// into these tables rather than values, so they are part of the file format
// and must equal ggml's entry for entry; core/quant_iq_tables.inc is
// generated from llama.cpp's gguf-py by tools/gen_iquant_tables.py.
//
// Grid rows are packed as in ggml: row i of a grid is one little-endian
// integer whose byte j is value j of the row (iq_grid_byte below reads it
// without depending on the host's byte order). The arrays are constexpr so
// host code reads them directly. Device code cannot address a host array, so
// under nvcc the same .inc is expanded a second time into namespace `device`
// as __device__ const arrays (global memory, read through the read-only
// cache: lanes index them divergently, which __constant__ memory would
// serialize). Code shared by both sides reads entries with TANDEM_IQ_AT(name, i).
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

#define TANDEM_IQ_TABLE(type, name, n) inline constexpr type name[n]
#include "core/quant_iq_tables.inc"
#undef TANDEM_IQ_TABLE

#if defined(__CUDACC__)
// ~35 KiB per translation unit that includes this header under nvcc (only
// gpu_worker/cuda/gemv_iquants.cu does).
namespace device {
#define TANDEM_IQ_TABLE(type, name, n) static __device__ const type name[n]
#include "core/quant_iq_tables.inc"
#undef TANDEM_IQ_TABLE
}  // namespace device
#endif

// Entry i of table `name` in TANDEM_HD code: the constexpr array on the host,
// its __device__ copy in device code (an ld.global.nc load).
#if defined(__CUDA_ARCH__)
#define TANDEM_IQ_AT(name, i) (__ldg(&::tandem::core::quant::device::name[i]))
#else
#define TANDEM_IQ_AT(name, i) (::tandem::core::quant::name[i])
#endif

// Byte j of a packed grid row (uint64_t rows: j in 0..7; uint32_t: 0..3).
TANDEM_HD inline uint8_t iq_grid_byte(uint64_t row, int j) { return static_cast<uint8_t>(row >> (8 * j)); }

}  // namespace tandem::core::quant
