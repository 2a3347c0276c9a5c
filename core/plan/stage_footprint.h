#pragma once
// Bytes a pipeline stage allocates besides its weights: the KV cache of its
// layers and its activation scratch. The CUDA stage sizes its device buffers
// with these very functions, so the plan and the GPU worker's allocations
// cannot drift apart; the CPU figures are an upper estimate of the engine's
// growable buffers.
#include <cstddef>
#include <cstdint>

#include "core/plan/model_shape.h"
#include "core/quant_types.h"

namespace tandem::core::plan {

// What the service is asked to hold at once.
struct RunShape {
  int32_t ctx = 4096;       // positions per sequence (--ctx)
  int32_t sequences = 1;    // KV slots (--max-sequences)
  int32_t batch = 512;      // rows per pipeline step (--max-batch-tokens)
  quant::Type kv_k = quant::Type::F16, kv_v = quant::Type::F16;
};

// K and V of one position in one layer: each is n_head_kv heads of head_dim
// values in the cache's type (GQA: only the KV heads are stored). Throws
// core::Error when head_dim is not a multiple of the type's block.
uint64_t kv_bytes_per_token(const ModelShape& s, quant::Type k, quant::Type v);
// The whole cache of one layer: ctx × sequences positions.
uint64_t kv_bytes_per_layer(const ModelShape& s, const RunShape& r);

// Constants the CUDA kernels are built around (gpu_worker/cuda static_asserts
// its own against these).
inline constexpr int kGpuAttnMaxHeadDim = 256;     // head_dim: a multiple of 32, at most this
inline constexpr int kGpuAttnMaxSlots = 64;        // rows × splits per query head using the scratch
inline constexpr int kGpuAttnMinSplitLen = 256;    // positions per split at least
inline constexpr int kGpuGemvMaxTokens = 8;        // more rows per step go through cuBLAS on fp16 tiles
inline constexpr uint64_t kGpuAttnScratchBudget = 256ull << 20;  // bytes of attention partials per launch
inline constexpr uint64_t kGpuWeightTileBudget = 128ull << 20;   // bytes of one fp16 weight tile

// Floats of split-softmax partials for n query rows:
//   n_head × min(n × ceil(n_ctx / 256), 64) × (256 + 2), 0 when one split covers n_ctx.
size_t gpu_attention_scratch_floats(int n, int n_head, int n_ctx);

struct GpuScratch {
  uint64_t bytes = 0;
  int attn_rows = 1;      // query rows per attention launch
  int64_t tile_rows = 0;  // rows of a dequantized fp16 weight tile (0: no tiles, batch ≤ 8)
};
// The CUDA stage's scratch for `batch` rows: f32 activations [batch × (3d +
// 2 q_dim + 2 kv_dim + 2 n_ff (+ n_vocab with the head))], row metadata, the
// attention partials, and for batches over 8 rows fp16 copies of the
// activations [batch × max_cols] and one weight tile [tile_rows × max_cols].
// max_cols / max_rows: the widest row and tallest matrix the stage holds.
GpuScratch gpu_stage_scratch(const ModelShape& s, int64_t batch, int32_t ctx, bool head, int64_t max_cols,
                             int64_t max_rows);

// The CPU engine's buffers for `batch` rows: f32 activations [batch × (2d +
// 2 q_dim + 2 kv_dim + 2 n_ff + rope_dims (+ n_vocab))] and the quantized
// activations with their four-row interleaved copy [2 × batch × max_cols ×
// 34/32 bytes].
uint64_t cpu_stage_scratch(const ModelShape& s, int64_t batch, bool head);

// The three shared-memory rings of one pipeline incarnation (two slots each):
// two carry [batch × n_embd] f32 rows, the last [sequences × n_vocab] logits.
uint64_t ring_bytes(const ModelShape& s, const RunShape& r);

}  // namespace tandem::core::plan
