#pragma once
// f32 -> fp16 rows for the cuBLAS prefill path.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace tandem::gpu {

// out[i] = __float2half_rn(x[i]), i < count (device pointers).
void f32_to_f16(const float* x, __half* out, int64_t count, cudaStream_t stream);

}  // namespace tandem::gpu
