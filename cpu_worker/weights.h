#pragma once
// Views of a model's tensors inside the mmapped GGUF. Nothing is copied: the
// pages of a tensor are faulted in the first time a kernel reads them, so a
// shard that holds layers 10..19 never touches the RAM of layers 0..9.
#include <cstdint>
#include <vector>

#include "core/gguf_file.h"
#include "core/model_config.h"
#include "core/quant_types.h"

namespace tandem::cpu {

namespace quant = core::quant;

// A 2-D weight: `rows` output features, each a row of `cols` input features
// stored as quantized blocks (ggml order: shape = {cols, rows}).
struct Matrix {
  const uint8_t* data = nullptr;
  quant::Type type = quant::Type::F32;
  int64_t cols = 0;
  int64_t rows = 0;
  size_t row_bytes = 0;
  // The same weights repacked for the eight-row kernels (BlockQ4Kx8 or
  // BlockQ6Kx8 groups, see repack_x8.h), owned by the engine; null when not.
  const uint8_t* x8 = nullptr;
  // Q4_0/Q4_1/Q8_0 repacked into four-row groups (repack_x4.h); null when not.
  const uint8_t* x4 = nullptr;
  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes; }
};

struct LayerWeights {
  const float* attn_norm = nullptr;  // [n_embd]
  Matrix wq, wk, wv, wo;             // wq: [q_dim × n_embd], wk/wv: [kv_dim × n_embd], wo: [n_embd × q_dim]
  const float* bq = nullptr;         // [q_dim]  (qwen2 only)
  const float* bk = nullptr;         // [kv_dim] (qwen2 only)
  const float* bv = nullptr;         // [kv_dim] (qwen2 only)
  const float* ffn_norm = nullptr;   // [n_embd]
  Matrix w_gate, w_up;               // [n_ff × n_embd]
  Matrix w_down;                     // [n_embd × n_ff]
};

// Which part of the layer stack a process holds.
struct ShardSpec {
  int32_t layer_begin = 0;
  int32_t layer_end = -1;    // exclusive; -1 = n_layer
  bool embedding = true;     // owns token_embd lookup (input side)
  bool head = true;          // owns output_norm + output head (logits side)
};

struct ModelWeights {
  Matrix tok_embd;                   // [n_vocab × n_embd]
  const float* output_norm = nullptr;  // [n_embd]
  Matrix output;                     // [n_vocab × n_embd]; tok_embd when tied
  const float* rope_freqs = nullptr;   // [rope_dims / 2] llama3 frequency factors, or null
  std::vector<LayerWeights> layers;  // layers[i] is layer spec.layer_begin + i
};

// Binds every tensor the shard needs, checking names, shapes and types;
// throws core::Error naming the tensor at fault.
ModelWeights bind_weights(const core::gguf::File& file, const core::ModelConfig& cfg, ShardSpec& spec);

}  // namespace tandem::cpu
