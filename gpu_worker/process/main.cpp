// tandem-gpu-worker: the pipeline stage whose layers live on the GPU (CUDA
// device 0). Where the build has no CUDA, or the machine no device, it runs
// its layers on the host with the CPU kernels: same protocol, same results,
// so the three-process pipeline runs everywhere. TANDEM_GPU_WORKER_HOST=1
// forces the host path on a machine with a GPU (for comparisons).
#include <cstdlib>
#include <string>

#include "services/worker/cpu_stage_factory.h"
#include "services/worker/worker_runtime.h"
#if TANDEM_HAVE_CUDA
#include "gpu_worker/cuda/device_memory.h"
#include "gpu_worker/process/cuda_stage_factory.h"
#endif

int main(int argc, char** argv) {
  using namespace tandem;
  const char* force_host = std::getenv("TANDEM_GPU_WORKER_HOST");
  const bool host = force_host && std::string(force_host) == "1";
#if TANDEM_HAVE_CUDA
  if (!host && gpu::cuda_device_count() > 0) return services::worker_main(argc, argv, "gpu", gpu::cuda_stage_factory(0));
  const char* device = host ? "host (TANDEM_GPU_WORKER_HOST=1: CPU kernels)" : "host (no CUDA device: CPU kernels)";
#else
  const char* device = host ? "host (TANDEM_GPU_WORKER_HOST=1: CPU kernels)" : "host (built without CUDA: CPU kernels)";
#endif
  return services::worker_main(argc, argv, "gpu", services::cpu_stage_factory(device));
}
