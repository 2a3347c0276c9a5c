#include "gpu_worker/process/cuda_stage_factory.h"

#include <cstdlib>
#include <string>

#include "gpu_worker/cuda/cuda_stage.h"
#include "services/worker/cpu_stage_factory.h"

namespace tandem::gpu {

services::StageFactory cuda_stage_factory(int device) {
  return [device](std::shared_ptr<const core::gguf::File> file, const services::ShardRequest& s) {
    CudaStageOptions o;
    o.device = device;
    o.k_type = services::parse_kv_type(s.kv_type_k, "kv_type_k");
    o.v_type = services::parse_kv_type(s.kv_type_v, "kv_type_v");
    o.n_ctx = s.context;
    o.n_seq = s.max_sequences;
    o.max_batch_tokens = s.max_batch_tokens;
    // TANDEM_CUDA_GRAPHS=0 turns decode graphs off (for comparisons).
    const char* graphs = std::getenv("TANDEM_CUDA_GRAPHS");
    o.graphs = !(graphs && std::string(graphs) == "0");
    cpu::ShardSpec spec{s.layer_begin, s.layer_end, s.embedding, s.head};
    return std::unique_ptr<core::StageBackend>(std::make_unique<CudaStage>(std::move(file), spec, o));
  };
}

}  // namespace tandem::gpu
