#pragma once
// CUDA and cuBLAS failures become core::Error naming the call: load-time and
// launch errors reach the worker's control plane as a status, never a crash.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "core/error.h"

namespace tandem::gpu {

inline void cuda_check(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess)
    throw core::Error(std::string("CUDA: ") + what + " failed: " + cudaGetErrorString(e) + " (" + file + ":" +
                      std::to_string(line) + ")");
}

inline void cublas_check(cublasStatus_t s, const char* what, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw core::Error(std::string("cuBLAS: ") + what + " failed with status " + std::to_string(static_cast<int>(s)) +
                      " (" + file + ":" + std::to_string(line) + ")");
}

}  // namespace tandem::gpu

#define TANDEM_CUDA_CHECK(expr) ::tandem::gpu::cuda_check((expr), #expr, __FILE__, __LINE__)
#define TANDEM_CUBLAS_CHECK(expr) ::tandem::gpu::cublas_check((expr), #expr, __FILE__, __LINE__)
// After a kernel launch: launch configuration errors surface here.
#define TANDEM_CUDA_LAUNCH_CHECK() TANDEM_CUDA_CHECK(cudaGetLastError())
