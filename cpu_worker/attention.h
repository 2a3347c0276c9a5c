#pragma once
// Attention of one query row over the cached K/V of its KV head, computed
// the way llama.cpp's CPU flash-attention kernel does: the query converted to
// the K cache's dot format, one pass over the positions with an online
// softmax (running max M and sum S), V rows accumulated with fused
// multiply-adds (in f16 when the V cache is f16). Following the same
// arithmetic step for step makes our logits equal llama.cpp's bit for bit
// when the weights' products match, which is what greedy-token equality over
// long generations needs (one flipped activation rounding changes the text).
#include <cstdint>
#include <vector>

#include "core/quant_types.h"

namespace tandem::cpu {

// How rows are written to and read from a KV cache of one type.
struct KvRowCodec {
  core::quant::Type type = core::quant::Type::F16;
  // f32 → cache row (the CPU quantizer llama.cpp's cache copy uses).
  void (*store)(const float* src, void* dst, int64_t n) = nullptr;
  // Query → the form the K dot product reads (bytes of row_bytes(q_type, n)).
  core::quant::Type q_type = core::quant::Type::F16;
  void (*convert_q)(const float* src, void* dst, int64_t n) = nullptr;
  // dot(cache row, converted query)
  float (*dot)(int64_t n, const void* k_row, const void* q) = nullptr;
  // cache row → f32 (V rows)
  void (*load)(const void* src, float* dst, int64_t n) = nullptr;
};

// Throws core::Error for a type that cannot hold a KV cache.
KvRowCodec kv_row_codec(core::quant::Type t);

// Per-thread buffers, sized on first use (no allocation afterwards).
struct AttentionScratch {
  std::vector<uint8_t> q_conv;   // [row_bytes(q_type, head_dim)] converted query
  std::vector<float> acc32;      // [head_dim] f32 accumulator of weighted V rows
  std::vector<uint16_t> acc16;   // [head_dim] f16 accumulator (f16 V cache)
  std::vector<float> v_row;      // [head_dim] one V row as f32
};

// out[head_dim] = softmax(q·K_j * scale over j < n_pos) · V.
// k_rows / v_rows: position j's head slice is at base + j * stride bytes.
void attend_one(const float* q, int32_t head_dim, int32_t n_pos, float scale, const KvRowCodec& kc,
                const uint8_t* k_base, size_t k_stride, const KvRowCodec& vc, const uint8_t* v_base,
                size_t v_stride, AttentionScratch& s, float* out);

}  // namespace tandem::cpu
