#pragma once
// A StageFactory running the shard on the host CPU (the CPU worker, and the
// GPU worker's fallback when there is no CUDA device).
#include <string>

#include "services/worker/worker_runtime.h"

namespace tandem::services {

StageFactory cpu_stage_factory(std::string device_name);

}  // namespace tandem::services
