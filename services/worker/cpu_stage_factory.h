#pragma once
// A StageFactory running the shard on the host CPU (the CPU worker, and the
// GPU worker's fallback when there is no CUDA device).
#include <string>

#include "core/quant_types.h"
#include "services/worker/worker_runtime.h"

namespace tandem::services {

StageFactory cpu_stage_factory(std::string device_name);

// "f16", "q8_0", ... -> the type; throws core::Error naming `which` otherwise.
core::quant::Type parse_kv_type(const std::string& name, const char* which);

}  // namespace tandem::services
