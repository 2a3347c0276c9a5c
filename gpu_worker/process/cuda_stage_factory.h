#pragma once
// A StageFactory that runs the shard on CUDA device `device`.
#include "services/worker/worker_runtime.h"

namespace tandem::gpu {

services::StageFactory cuda_stage_factory(int device);

}  // namespace tandem::gpu
