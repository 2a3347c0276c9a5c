#include "services/worker/cpu_stage_factory.h"

#include "core/error.h"
#include "core/quant_types.h"
#include "cpu_worker/cpu_stage.h"

namespace tandem::services {

core::quant::Type parse_kv_type(const std::string& s, const char* which) {
  auto t = core::quant::type_from_name(s);
  if (!t) throw core::Error(std::string("unknown KV cache type for ") + which + ": '" + s + "'");
  return *t;
}

StageFactory cpu_stage_factory(std::string device_name) {
  return [device_name](std::shared_ptr<const core::gguf::File> file, const ShardRequest& s) {
    cpu::EngineOptions eo;
    eo.threads = s.threads;
    eo.kv.n_ctx = s.context;
    eo.kv.n_seq = s.max_sequences;
    eo.kv.k_type = parse_kv_type(s.kv_type_k, "kv_type_k");
    eo.kv.v_type = parse_kv_type(s.kv_type_v, "kv_type_v");
    eo.residency.huge_pages = s.huge_pages;
    eo.residency.mlock = s.mlock;
    eo.pin_threads = s.pin_threads;
    cpu::ShardSpec spec{s.layer_begin, s.layer_end, s.embedding, s.head};
    return std::unique_ptr<core::StageBackend>(
        std::make_unique<cpu::CpuStage>(std::move(file), spec, eo, device_name));
  };
}

}  // namespace tandem::services
