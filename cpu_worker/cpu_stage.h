#pragma once
// The CPU implementation of a pipeline stage: a LlamaEngine over the shard.
#include <memory>
#include <string>

#include "core/stage_backend.h"
#include "cpu_worker/llama_engine.h"

namespace tandem::cpu {

class CpuStage final : public core::StageBackend {
 public:
  // device_name: what memory() reports (the GPU worker's host fallback says so).
  CpuStage(std::shared_ptr<const core::gguf::File> file, ShardSpec spec, EngineOptions opt, std::string device_name);

  const core::ModelConfig& config() const override { return engine_.config(); }
  int32_t layer_begin() const override { return engine_.shard().layer_begin; }
  int32_t layer_end() const override { return engine_.shard().layer_end; }
  bool has_head() const override { return engine_.shard().head; }
  core::StageMemory memory() const override;
  void run_layers(float* hidden, std::span<const core::StageRow> rows) override;
  void head(const float* hidden, int32_t n, float* logits) override;

 private:
  std::shared_ptr<const core::gguf::File> file_;
  LlamaEngine engine_;
  std::string device_;
  uint64_t weight_bytes_ = 0;
  std::vector<RowPos> rows_;  // [n] the batch's rows in the engine's terms
  std::vector<int32_t> head_runs_;  // [n] all 1: one logits row per sequence
};

// Bytes of the tensors a shard binds: its layers' "blk.N.*", plus
// token_embd / output_norm / output when it owns the embedding / head.
uint64_t shard_weight_bytes(const core::gguf::File& file, const ShardSpec& spec);

}  // namespace tandem::cpu
