#pragma once
// Runtime-dispatched CPU kernels for the matmul inner loop: dot products of a
// weight row with an activation row, and the activation quantizers that feed
// them. On x86-64 CPUs with AVX2+FMA+F16C the AVX2 versions are used (the
// file is built without -mavx2; the kernels carry a target attribute), else
// the scalar references in core/quant_reference.h.
//
// Guarantees:
//  * quantize_activations' output is bit-identical whichever path runs: both
//    follow ggml's x86 AVX2 quantizers (round to nearest even).
//  * SIMD dot products use the same exact integer sums per block as the
//    references and differ only in the order floats are added (~1e-6 rel.).
//  * Activations must come from quantize_activations (or the reference
//    quantizers): the SIMD dots assume quants in -127..127.
#include <cstdint>

#include "core/quant_types.h"

namespace tandem::cpu {

namespace quant = core::quant;

using VecDotFn = float (*)(int64_t n, const void* w, const void* a);
using QuantizeRowFn = void (*)(const float* x, void* dst, int64_t n);

// AVX2, FMA and F16C all present (checked once). Setting the environment
// variable TANDEM_NO_SIMD=1 before the first call forces the scalar paths.
bool cpu_has_avx2();

// Weights may be copied into the kernels' interleaved layouts at load
// (repack_x4 / repack_x8); TANDEM_REPACK=0 in the environment, read once,
// keeps every matrix in the file layout.
bool repack_enabled();

// Activation format the dot product of `weight_type` expects: Q8_0 / Q8_1 /
// Q8_K for the quants, F32 for F32 / F16 / BF16 weights.
quant::Type vec_dot_type(quant::Type weight_type);

// Fastest dot product for weight rows of `weight_type` against activations
// in vec_dot_type(weight_type); n is a multiple of the block size. Falls back
// to the scalar reference; nullptr when the type has no dot product at all.
VecDotFn best_vec_dot(quant::Type weight_type);

// Four weight rows (w, w + w_stride, ...) against one activation row:
// out[0..3], each bit-identical to best_vec_dot's result for that row.
// nullptr when the type has no such kernel on this CPU.
using VecDotRowsFn = void (*)(int64_t n, const uint8_t* w, size_t w_stride, const void* a, float* out);
VecDotRowsFn best_vec_dot_rows4(quant::Type weight_type);

// Four weight rows against two activation rows (prefill): out0[0..3] for a0,
// out1[0..3] for a1, each bit-identical to best_vec_dot's.
using VecDotRows2Fn = void (*)(int64_t n, const uint8_t* w, size_t w_stride, const void* a0, const void* a1,
                               float* out0, float* out1);
VecDotRows2Fn best_vec_dot_rows4x2(quant::Type weight_type);

// Four Q8_K activation rows interleaved 8 values at a time, for the K-quant
// prefill kernels: per super-block of 256 values the rows' d and bsums, then
// for each group of 8 values the 8 bytes of token 0, 1, 2 and 3 (32 bytes).
struct BlockQ8Kx4 {
  float d[4];
  int16_t bsums[4][16];
  int8_t qs[32][4][8];  // [value group][token][8 values]
};
static_assert(sizeof(BlockQ8Kx4) == 16 + 128 + 1024, "BlockQ8Kx4 layout");

// rows (n values each) → n / 256 BlockQ8Kx4 at dst.
void interleave_q8_K_x4(const void* const rows[4], void* dst, int64_t n);

// `rows` weight rows (w, w + w_stride, ...) against four interleaved tokens
// (a4, BlockQ8Kx4): out[t * out_stride + r]. Each result is bit-identical to
// best_vec_dot's for that row and token, so a token's output does not depend
// on the batch it was computed in. nullptr when the type has no such kernel.
using KTokens4Fn = void (*)(int64_t n, const uint8_t* w, size_t w_stride, int64_t rows, const void* a4, float* out,
                            size_t out_stride);
KTokens4Fn best_vec_dot_tokens4(quant::Type weight_type);

// llama.cpp multiplies K-quant and i-quant matrices (those it does not
// repack: all but Q4_K) over a batch of 8 or more tokens with its tiled
// kernels, whose float steps differ from its vec_dot's, so its results for a
// token depend on the batch. matmul() follows it, per run of one sequence
// (matmul.h): from this many rows on, these "batch" kernels (same integer
// work, the tiled kernels' float steps; simd_dot_kquants.cpp) replace the
// ones above. nullptr when the type has a single arithmetic, or no AVX2 here.
constexpr int64_t kBatchArithmeticTokens = 8;
VecDotFn batch_vec_dot(quant::Type weight_type);
VecDotRowsFn batch_vec_dot_rows4(quant::Type weight_type);
KTokens4Fn batch_vec_dot_tokens4(quant::Type weight_type);

// Converts n f32 activations into act_type blocks (copies for F32). n is a
// multiple of the block size. Aborts for a type with no quantizer (a
// programming error, not an input error).
void quantize_activations(quant::Type act_type, const float* x, void* dst, int64_t n);

// The individual paths, for tests and benchmarks. avx2_* return nullptr when
// there is no AVX2 kernel for the type or the CPU lacks AVX2.
VecDotFn avx2_vec_dot(quant::Type weight_type);
QuantizeRowFn avx2_quantizer(quant::Type act_type);
QuantizeRowFn scalar_quantizer(quant::Type act_type);

}  // namespace tandem::cpu
