#include "cpu_worker/cpu_stage.h"

#include <charconv>
#include <string_view>

namespace tandem::cpu {

uint64_t shard_weight_bytes(const core::gguf::File& file, const ShardSpec& spec) {
  uint64_t total = 0;
  for (const auto& t : file.tensors()) {
    std::string_view n = t.name;
    if (n.starts_with("blk.")) {
      int layer = -1;
      std::from_chars(n.data() + 4, n.data() + n.size(), layer);  // leaves -1 on a malformed name
      if (layer >= spec.layer_begin && layer < spec.layer_end) total += t.size_bytes;
    } else if (n.starts_with("token_embd")) {
      // A tied head reads token_embd too.
      if (spec.embedding || (spec.head && !file.find_tensor("output.weight"))) total += t.size_bytes;
    } else if (n.starts_with("output") || n.starts_with("rope_freqs")) {
      if (spec.head || n.starts_with("rope_freqs")) total += t.size_bytes;
    }
  }
  return total;
}

CpuStage::CpuStage(std::shared_ptr<const core::gguf::File> file, ShardSpec spec, EngineOptions opt, std::string device_name)
    : file_(file), engine_(std::move(file), spec, opt), device_(std::move(device_name)) {
  weight_bytes_ = shard_weight_bytes(*file_, engine_.shard());
}

core::StageMemory CpuStage::memory() const {
  core::StageMemory m;
  m.device = device_;
  m.memory = "ram";
  m.weight_bytes = weight_bytes_;
  m.kv_bytes = engine_.kv().bytes();
  m.repacked_bytes = engine_.repacked_bytes();
  m.locked_bytes = engine_.locked_bytes();
  m.residency_warning = engine_.lock_error();
  return m;
}

void CpuStage::run_layers(float* hidden, std::span<const core::StageRow> rows) {
  rows_.resize(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) rows_[i] = {rows[i].seq, rows[i].pos};
  engine_.run_layers(hidden, rows_);
}

// The pipeline asks for one logits row per sequence: each row is a run.
void CpuStage::head(const float* hidden, int32_t n, float* logits) {
  head_runs_.assign(static_cast<size_t>(n), 1);
  engine_.head(hidden, n, logits, head_runs_);
}

}  // namespace tandem::cpu
