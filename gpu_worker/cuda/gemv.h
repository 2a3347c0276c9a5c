#pragma once
// Quantized matrix × activations on the device.
//
// gemv: y[t][r] = sum_c W[r][c] * x[t][c] for t < n_tokens (n_tokens <= 8),
// reading each weight block once for all tokens and dequantizing it on the fly
// with core/quant_dequant.h (the same code the CPU reference runs). Activations
// stay f32. Accumulation is f32.
//
// dequant_rows_f16: rows [row0, row0 + n_rows) of W as __half, row-major
// [n_rows × cols], for the cuBLAS prefill path (GEMM on fp16 tiles).
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "gpu_worker/cuda/device_matrix.h"

namespace tandem::gpu {

inline constexpr int kGemvMaxTokens = 8;

// x: device [n_tokens × w.cols] f32; y: device [n_tokens × w.rows] f32.
// Throws core::Error for an unsupported type or n_tokens outside 1..8.
void gemv(const DeviceMatrix& w, const float* x, float* y, int n_tokens, cudaStream_t stream);

// out: device [n_rows × w.cols] __half.
void dequant_rows_f16(const DeviceMatrix& w, int64_t row0, int64_t n_rows, __half* out, cudaStream_t stream);

}  // namespace tandem::gpu
