#include "gpu_worker/cuda/convert.h"
#include "gpu_worker/cuda/cuda_error.h"

namespace tandem::gpu {

namespace {
__global__ void f32_to_f16_kernel(const float* __restrict__ x, __half* __restrict__ out, int64_t count) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) out[i] = __float2half_rn(x[i]);
}
}  // namespace

void f32_to_f16(const float* x, __half* out, int64_t count, cudaStream_t stream) {
  if (count <= 0) return;
  const int threads = 256;
  const auto blocks = static_cast<unsigned>((count + threads - 1) / threads);
  f32_to_f16_kernel<<<blocks, threads, 0, stream>>>(x, out, count);
  TANDEM_CUDA_LAUNCH_CHECK();
}

}  // namespace tandem::gpu
