// tandem-gpu-worker: the pipeline stage whose layers live on the GPU. Until
// the CUDA backend lands (issue #4) and on machines without a CUDA device, it
// runs its layers on the host with the CPU kernels: same results, same
// protocol, so the three-process pipeline runs everywhere.
#include "services/worker/cpu_stage_factory.h"
#include "services/worker/worker_runtime.h"

int main(int argc, char** argv) {
  return tandem::services::worker_main(argc, argv, "gpu",
                                       tandem::services::cpu_stage_factory("host (no CUDA backend yet: CPU kernels)"));
}
