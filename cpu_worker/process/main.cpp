// tandem-cpu-worker: the pipeline stage whose layers live in RAM and run on
// the CPU kernels (oneTBB + AVX2).
#include "services/worker/cpu_stage_factory.h"
#include "services/worker/worker_runtime.h"

int main(int argc, char** argv) {
  return tandem::services::worker_main(argc, argv, "cpu", tandem::services::cpu_stage_factory("host CPU"));
}
