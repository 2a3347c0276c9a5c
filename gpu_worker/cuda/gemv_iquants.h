#pragma once
// gemv.h's entry points for the i-quants (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS,
// IQ3_S, IQ1_S, IQ1_M, IQ4_NL, IQ4_XS), instantiated in gemv_iquants.cu: a
// translation unit of their own, so they compile in parallel with gemv.cu and
// only they carry the device copies of the i-quant tables. Internal to the
// CUDA backend: callers use gemv.h, which dispatches here.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/quant_types.h"
#include "gpu_worker/cuda/device_matrix.h"

namespace tandem::gpu {

// True for the nine i-quant types.
bool gemv_iquants_support(core::quant::Type t);

// gemv / dequant_rows_f16 (gemv.h) for an i-quant matrix, same contract and
// errors; false, doing nothing, when w.type is not an i-quant.
bool gemv_iquants(const DeviceMatrix& w, const float* x, float* y, int n_tokens, cudaStream_t stream);
bool dequant_rows_f16_iquants(const DeviceMatrix& w, int64_t row0, int64_t n_rows, __half* out, cudaStream_t stream);

}  // namespace tandem::gpu
