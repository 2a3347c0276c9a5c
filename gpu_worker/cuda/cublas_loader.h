#pragma once
// cuBLAS, loaded with dlopen the first time a stage needs it.
//
// Why not link it: libcublasLt carries ~94 KiB of static TLS, and a library
// linked into the executable adds its TLS to every thread's minimum stack;
// civetweb (prometheus-cpp's /metrics server) starts its threads with a
// ~100 KiB stack, so pthread_create fails and the worker cannot serve
// metrics. Loaded later, the TLS is allocated per thread on demand instead.
#include <cublas_v2.h>

namespace tandem::gpu {

struct CublasApi {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  // cublasGemmEx has C++ overloads: the C signature, spelled out.
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                            const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                            cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t) = nullptr;
};

// Throws core::Error naming the library when it cannot be loaded.
const CublasApi& cublas_api();

}  // namespace tandem::gpu
