#include "core/plan/stage_footprint.h"

#include <algorithm>

#include "core/error.h"

namespace tandem::core::plan {

uint64_t kv_bytes_per_token(const ModelShape& s, quant::Type k, quant::Type v) {
  // One row per KV head, as the caches lay them out.
  return (quant::row_bytes(k, s.head_dim) + quant::row_bytes(v, s.head_dim)) * static_cast<uint64_t>(s.n_head_kv);
}

uint64_t kv_bytes_per_layer(const ModelShape& s, const RunShape& r) {
  if (r.ctx < 1 || r.sequences < 1) throw Error("context and sequences must be at least 1");
  return kv_bytes_per_token(s, r.kv_k, r.kv_v) * static_cast<uint64_t>(r.ctx) * static_cast<uint64_t>(r.sequences);
}

size_t gpu_attention_scratch_floats(int n, int n_head, int n_ctx) {
  if (n <= 0 || n_head <= 0 || n_ctx <= 0) return 0;
  const int64_t by_ctx = (static_cast<int64_t>(n_ctx) + kGpuAttnMinSplitLen - 1) / kGpuAttnMinSplitLen;
  if (by_ctx <= 1) return 0;  // never more than one split
  const int64_t slots = std::min<int64_t>(static_cast<int64_t>(n) * by_ctx, kGpuAttnMaxSlots);
  return static_cast<size_t>(n_head) * static_cast<size_t>(slots) * (kGpuAttnMaxHeadDim + 2);
}

GpuScratch gpu_stage_scratch(const ModelShape& s, int64_t B, int32_t ctx, bool head, int64_t max_cols, int64_t max_rows) {
  GpuScratch g;
  const int64_t d = s.n_embd, kvd = s.kv_dim();
  const uint64_t per_row = gpu_attention_scratch_floats(1, s.n_head, ctx) * 4;
  g.attn_rows = static_cast<int>(std::clamp<uint64_t>(kGpuAttnScratchBudget / std::max<uint64_t>(per_row, 1), 1,
                                                      static_cast<uint64_t>(std::max<int64_t>(B, 1))));
  g.bytes = 4ull * B * (3 * d + 2 * s.q_dim() + 2 * kvd + 2 * s.n_ff + (head ? s.n_vocab : 0)) + 8ull * B +
            gpu_attention_scratch_floats(g.attn_rows, s.n_head, ctx) * 4;
  if (B > kGpuGemvMaxTokens && max_cols > 0) {
    g.tile_rows = std::clamp<int64_t>(static_cast<int64_t>(kGpuWeightTileBudget / (2 * max_cols)), 1, max_rows);
    g.bytes += 2ull * B * max_cols + 2ull * g.tile_rows * max_cols;
  }
  return g;
}

uint64_t cpu_stage_scratch(const ModelShape& s, int64_t B, bool head) {
  const int64_t d = s.n_embd;
  const int64_t max_cols = std::max<int64_t>({d, s.q_dim(), s.n_ff});
  const uint64_t f32 = 4ull * B * (2 * d + 2 * s.q_dim() + 2 * s.kv_dim() + 2 * s.n_ff + s.head_dim + (head ? s.n_vocab : 0));
  const uint64_t acts = 2ull * B * max_cols * 34 / 32;
  return f32 + acts;
}

uint64_t ring_bytes(const ModelShape& s, const RunShape& r) {
  const uint64_t hidden = 2ull * 2 * r.batch * s.n_embd * 4;            // rings 0 and 1, two slots each
  const uint64_t logits = 2ull * r.sequences * static_cast<uint64_t>(s.n_vocab) * 4;  // ring 2
  return hidden + logits;
}

}  // namespace tandem::core::plan
