#pragma once
// Where every byte goes before anything is loaded: which layers (and whether
// the output head) the GPU worker holds under a VRAM budget, what the CPU
// worker then needs in RAM, and how fast that split should decode.
//
// The split follows the coordinator's rule: with the head on the GPU, the
// GPU worker holds the LAST n layers (as llama.cpp's -ngl); with the head on
// the CPU, the FIRST n. The GPU source and the CPU source may be different
// quantizations of one model (--gpu-model / --cpu-model).
#include <cstdint>
#include <string>

#include "core/plan/model_shape.h"
#include "core/plan/stage_footprint.h"
#include "core/plan/tensor_inventory.h"

namespace tandem::core::plan {

enum class HeadPlace { Gpu, Cpu, Auto };  // Auto: the GPU when it fits there with zero layers

struct PlanRequest {
  ModelShape shape;
  Inventory gpu_source;  // tensors the GPU worker would load
  Inventory cpu_source;  // tensors the CPU worker (and the coordinator's embedding) would load
  RunShape run;
  HeadPlace head = HeadPlace::Auto;
  int32_t gpu_layers = -1;        // -1: as many as fit; else exactly this many
  uint64_t vram = 0;              // the card's memory (0: no GPU)
  uint64_t ram = 0;               // RAM Tandem may use (0: unlimited)
  uint64_t cuda_overhead = 512ull << 20;  // CUDA context, cuBLAS handle and workspace: outside our allocations
  uint64_t vram_reserve = 512ull << 20;   // the GPU worker's safety margin (it refuses a shard without it)
  uint64_t ram_reserve = 1ull << 30;      // processes' code, stacks, allocator slack
};

struct StageBytes {
  int32_t layer_begin = 0, layer_end = 0;  // [begin, end)
  bool head = false;
  uint64_t weights = 0;   // tensor bytes of the layers (and head)
  uint64_t kv = 0;
  uint64_t scratch = 0;
  uint64_t fixed = 0;     // GPU: CUDA overhead + reserve; CPU: embedding + rings + reserve
  uint64_t total() const { return weights + kv + scratch + fixed; }
  int32_t layers() const { return layer_end - layer_begin; }
};

struct MemoryPlan {
  int32_t n_gpu_layers = 0;
  bool head_on_gpu = false;
  StageBytes gpu, cpu;
  uint64_t embedding = 0;  // token_embd, mapped by the coordinator (part of cpu.fixed)
  uint64_t rings = 0;      // shared memory (part of cpu.fixed)
  bool fits_vram = false;  // gpu.total() <= vram (always true with no layers, no head and vram 0)
  bool fits_ram = false;
  bool fully_on_gpu() const { return head_on_gpu && n_gpu_layers > 0 && cpu.layers() == 0; }
  std::string why;         // when something does not fit: what and by how much
};

// Bytes of the GPU stage holding `n` layers (which ones depends on head).
StageBytes gpu_stage_bytes(const PlanRequest& r, int32_t n, bool head);
StageBytes cpu_stage_bytes(const PlanRequest& r, int32_t n_gpu, bool head_on_gpu);

// The most layers that fit, the head placed as asked. Throws core::Error on
// an inconsistent request (gpu_layers above n_layer, inventories missing a
// layer's tensors, a KV type that does not fit head_dim).
MemoryPlan plan_memory(const PlanRequest& r);

// ---- speed -------------------------------------------------------------------

struct SpeedInputs {
  double gpu_gbps = 1008;       // card memory bandwidth (RTX 4090 datasheet)
  double gpu_efficiency = 0.75; // of it a decode step reaches (assumed; no GPU measurement yet)
  double cpu_gbps = 0;          // read probe (tandem bench bandwidth)
  double cpu_efficiency = 0.55; // measured: decode reaches 54-58% of the probe (docs/PERFORMANCE.md)
  double gpu_tflops = 165;      // dense fp16 tensor-core rate (RTX 4090 datasheet)
  double cpu_gflops = 0;        // quantized matrix-matrix rate of the CPU worker
  double step_overhead_ms = 1.9;  // coordinator + rings per step (measured on 2 vCPU, docs/PERFORMANCE.md)
};

struct SpeedEstimate {
  double decode_tps = 0;      // first token after an empty context
  double decode_tps_full = 0; // at the last position of the context (reads the whole KV cache)
  double prefill_tps = 0;     // a batch of run.batch tokens
  double gpu_ms = 0, cpu_ms = 0;  // one decode step at an empty context, per side
};

// decode: 1 / (GPU bytes / GPU bandwidth + CPU bytes / CPU bandwidth +
// overhead), every weight read once per token plus the KV read at that
// position. prefill: each side the slower of its FLOPs and its weight bytes.
SpeedEstimate predict_speed(const PlanRequest& r, const MemoryPlan& p, const SpeedInputs& in);

// Parses "24GiB", "24 GB", "512MiB", "1.5TiB", "123456" (bytes). Throws
// core::Error naming the text.
uint64_t parse_bytes(const std::string& text);
std::string format_gib(uint64_t bytes);  // "39.60 GiB"

}  // namespace tandem::core::plan
