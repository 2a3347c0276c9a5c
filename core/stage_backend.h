#pragma once
// What a worker process runs: one pipeline stage = a shard of the layer stack
// (a layer range, optionally followed by the final norm and output head) on
// some device. The CPU backend (cpu_worker/) implements it; the CUDA backend
// (gpu_worker/) will too. The worker runtime (services/worker) only sees this.
#include <cstdint>
#include <span>
#include <string>

#include "core/model_config.h"

namespace tandem::core {

struct StageRow {
  int32_t seq = 0;  // KV sequence slot
  int32_t pos = 0;  // position in that sequence
};

struct StageMemory {
  std::string device;         // "host CPU", "host (no CUDA device)", "cuda:0 NVIDIA ..."
  std::string memory;         // where weights and KV live: "ram" | "vram"
  uint64_t weight_bytes = 0;  // tensor bytes of the shard
  uint64_t kv_bytes = 0;      // KV cache bytes reserved
  uint64_t scratch_bytes = 0; // activations and workspace (device backends)
  uint64_t repacked_bytes = 0;  // weights copied into a kernel layout in RAM (CPU backends)
  uint64_t locked_bytes = 0;    // weights mlocked in RAM (CPU backends asked to lock)
  std::string residency_warning;  // why a requested lock failed ("" if none)
};

class StageBackend {
 public:
  virtual ~StageBackend() = default;
  virtual const ModelConfig& config() const = 0;
  virtual int32_t layer_begin() const = 0;
  virtual int32_t layer_end() const = 0;  // exclusive
  virtual bool has_head() const = 0;
  virtual StageMemory memory() const = 0;

  // hidden: [rows.size() × n_embd] residual rows, run through the shard's
  // layers in place; row i belongs to rows[i]. Throws core::Error on rows
  // outside the KV cache (slot or position).
  virtual void run_layers(float* hidden, std::span<const StageRow> rows) = 0;
  // logits: [n × n_vocab] from hidden rows [n × n_embd]. Only with has_head().
  virtual void head(const float* hidden, int32_t n, float* logits) = 0;
};

}  // namespace tandem::core
