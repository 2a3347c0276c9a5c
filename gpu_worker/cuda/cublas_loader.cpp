#include "gpu_worker/cuda/cublas_loader.h"

#include <dlfcn.h>

#include <mutex>
#include <string>

#include "core/error.h"

namespace tandem::gpu {

namespace {
template <typename F>
void bind(void* lib, const char* name, F& out) {
  out = reinterpret_cast<F>(dlsym(lib, name));
  if (!out) throw core::Error(std::string("cuBLAS: symbol ") + name + " not found");
}
}  // namespace

const CublasApi& cublas_api() {
  static CublasApi api;
  static std::once_flag once;
  std::call_once(once, [] {
    // The major version the headers were built against.
    const std::string name = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
    void* lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = dlopen("libcublas.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib) throw core::Error("cannot load " + name + " (" + dlerror() + "); is the CUDA toolkit's lib directory on the library path?");
    bind(lib, "cublasCreate_v2", api.create);
    bind(lib, "cublasDestroy_v2", api.destroy);
    bind(lib, "cublasSetStream_v2", api.set_stream);
    bind(lib, "cublasGemmEx", api.gemm_ex);
  });
  if (!api.gemm_ex) throw core::Error("cuBLAS could not be loaded earlier in this process");
  return api;
}

}  // namespace tandem::gpu
