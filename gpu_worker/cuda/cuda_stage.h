#pragma once
// A pipeline stage on a CUDA device: the shard's weights uploaded in their
// GGUF block formats (no dequantized copy), the KV cache of its layers on the
// device (F16, Q8_0 or Q4_0), one stream, and cuBLAS for batched prefill.
//
// Matrix products: batches of up to kGemvMaxTokens rows (decode) use the
// quantized GEMV kernels, which read each weight once and dequantize on the
// fly; larger batches (prefill) dequantize weight row tiles to fp16 and call
// cublasGemmEx with f32 accumulation.
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <array>
#include <memory>
#include <vector>

#include "core/gguf_file.h"
#include "core/stage_backend.h"
#include "cpu_worker/weights.h"
#include "gpu_worker/cuda/device_matrix.h"
#include "gpu_worker/cuda/device_memory.h"
#include "gpu_worker/cuda/gemv.h"
#include "gpu_worker/cuda/ops.h"

namespace tandem::gpu {

struct CudaStageOptions {
  int device = 0;
  core::quant::Type k_type = core::quant::Type::F16;
  core::quant::Type v_type = core::quant::Type::F16;
  int32_t n_ctx = 4096;
  int32_t n_seq = 1;
  int32_t max_batch_tokens = 512;
  // Replay decode-sized batches (<= kGemvMaxTokens rows) as CUDA graphs: one
  // launch instead of ~15 per layer. Every kernel's launch shape depends only
  // on the row count (positions are read from device memory), so one graph
  // per row count serves every step.
  bool graphs = true;
};

class CudaStage final : public core::StageBackend {
 public:
  // Throws core::Error: unsupported tensor or KV type, a shard that does not
  // fit (naming the shortfall), or a CUDA failure.
  CudaStage(std::shared_ptr<const core::gguf::File> file, cpu::ShardSpec spec, CudaStageOptions opt);
  ~CudaStage() override;

  const core::ModelConfig& config() const override { return cfg_; }
  int32_t layer_begin() const override { return spec_.layer_begin; }
  int32_t layer_end() const override { return spec_.layer_end; }
  bool has_head() const override { return spec_.head; }
  core::StageMemory memory() const override;
  void run_layers(float* hidden, std::span<const core::StageRow> rows) override;
  void head(const float* hidden, int32_t n, float* logits) override;

 private:
  struct Layer {
    const float* attn_norm = nullptr;  // [n_embd]
    DeviceMatrix wq, wk, wv, wo;
    const float *bq = nullptr, *bk = nullptr, *bv = nullptr;  // qwen2 biases
    const float* ffn_norm = nullptr;
    DeviceMatrix w_gate, w_up, w_down;
    DeviceKv kv;
  };

  // Sizes everything (and the tiling members) before any allocation.
  MemoryPlan plan(const cpu::ModelWeights& w);
  DeviceMatrix upload(const cpu::Matrix& m);
  const float* upload_floats(const float* host, size_t n);
  void matmul(const DeviceMatrix& w, const float* x, float* y, int n);
  void upload_rows(std::span<const core::StageRow> rows);
  // Enqueues every layer for n rows already in x_, seq_ and pos_.
  void enqueue_layers(int n);
  // Runs enqueue_layers(n) through the graph cached for n, capturing it on
  // first use; false (graphs then off for this stage) if capture fails.
  bool launch_graph(int n);

  std::shared_ptr<const core::gguf::File> file_;
  core::ModelConfig cfg_;
  cpu::ShardSpec spec_;
  CudaStageOptions opt_;
  DeviceMemory mem_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;

  std::vector<Layer> layers_;
  const float* output_norm_ = nullptr;  // [n_embd]
  DeviceMatrix output_;                 // [n_vocab × n_embd]
  const float* rope_freqs_ = nullptr;   // [rope_dims / 2] or null

  // Scratch, sized for max_batch_tokens rows (B):
  float* x_ = nullptr;      // [B × n_embd] residual stream
  float* xn_ = nullptr;     // [B × n_embd] normed
  float* q_ = nullptr;      // [B × q_dim]
  float* k_ = nullptr;      // [B × kv_dim]
  float* v_ = nullptr;      // [B × kv_dim]
  float* attn_ = nullptr;   // [B × q_dim]
  float* proj_ = nullptr;   // [B × n_embd]
  float* gate_ = nullptr;   // [B × n_ff]
  float* up_ = nullptr;     // [B × n_ff]
  float* logits_ = nullptr; // [B × n_vocab] (head stages)
  int32_t* seq_ = nullptr;  // [B]
  int32_t* pos_ = nullptr;  // [B]
  float* attn_scratch_ = nullptr;  // attention_scratch_floats(attn_rows_, n_head, n_ctx)
  int attn_rows_ = 1;              // query rows per attention launch
  __half* x16_ = nullptr;          // [B × max_cols] activations for cuBLAS
  __half* w16_ = nullptr;          // [tile_rows_ × max_cols] dequantized weight tile
  int64_t tile_rows_ = 0;
  int64_t max_cols_ = 0;
  std::vector<int32_t> host_seq_, host_pos_;  // [B] staging
  bool graphs_ = false;
  std::array<cudaGraphExec_t, kGemvMaxTokens + 1> graph_{};  // [row count] -> instantiated decode graph
};

}  // namespace tandem::gpu
