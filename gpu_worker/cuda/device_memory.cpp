#include "gpu_worker/cuda/device_memory.h"

#include <cuda_runtime.h>

#include <cstdio>

#include "core/error.h"
#include "gpu_worker/cuda/cuda_error.h"

namespace tandem::gpu {

namespace {
std::string gib(uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(b) / (1ull << 30));
  return buf;
}
}  // namespace

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error of a missing driver
    return 0;
  }
  return n;
}

DeviceMemory::DeviceMemory(int device) : device_(device) {
  const int n = cuda_device_count();
  if (device < 0 || device >= n)
    throw core::Error("CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(n) + " found)");
  TANDEM_CUDA_CHECK(cudaSetDevice(device));
  cudaDeviceProp p{};
  TANDEM_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  name_ = "cuda:" + std::to_string(device) + " " + p.name;
}

DeviceMemory::~DeviceMemory() {
  for (void* b : blocks_) cudaFree(b);
}

void DeviceMemory::check_fits(const MemoryPlan& plan, const std::string& what) const {
  size_t free_b = 0, total_b = 0;
  TANDEM_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const uint64_t need = plan.total() + kReserve;
  if (need > free_b)
    throw core::OutOfMemory(what + " needs " + gib(need) + " on " + name_ + " but only " + gib(free_b) + " of " + gib(total_b) +
                      " are free: short by " + gib(need - free_b) + " (weights " + gib(plan.weights) + ", KV " +
                      gib(plan.kv) + ", scratch " + gib(plan.scratch) + ", reserve " + gib(kReserve) +
                      "); put fewer layers on the GPU (--gpu-layers) or shrink the context (--ctx, --max-sequences)");
}

void* DeviceMemory::alloc(size_t bytes, MemoryKind kind) {
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw core::OutOfMemory("CUDA: cannot allocate " + gib(bytes) + " on " + name_ + ": " + cudaGetErrorString(e));
  }
  blocks_.push_back(p);
  used_[static_cast<int>(kind)] += bytes;
  return p;
}

}  // namespace tandem::gpu
