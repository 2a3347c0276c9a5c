#pragma once
// Hyperparameters of a Llama-family model, read from GGUF metadata.
#include <cstdint>
#include <string>
#include <vector>

#include "core/gguf_file.h"

namespace tandem::core {

enum class RopeStyle {
  Normal,  // rotate adjacent pairs (x[2i], x[2i+1]): llama (GGUF converter permutes Q/K)
  Neox,    // rotate halves (x[i], x[i + n/2]): qwen2
};

struct ModelConfig {
  std::string arch;  // "llama" | "qwen2"
  std::string name;
  int32_t n_layer = 0;
  int32_t n_embd = 0;     // d_model
  int32_t n_ff = 0;       // SwiGLU hidden width
  int32_t n_head = 0;
  int32_t n_head_kv = 0;  // GQA: n_head / n_head_kv query heads share one KV head
  int32_t head_dim = 0;   // n_embd / n_head unless attention.key_length says otherwise
  int32_t n_vocab = 0;
  int32_t n_ctx_train = 0;
  int32_t rope_dims = 0;  // dimensions rotated per head (usually head_dim)
  float rope_freq_base = 10000.0f;
  float rope_freq_scale = 1.0f;  // linear scaling: positions are multiplied by this
  float rms_eps = 1e-5f;
  RopeStyle rope_style = RopeStyle::Normal;
  bool qkv_bias = false;          // qwen2
  bool tied_output = false;       // output head reuses token_embd.weight
  bool has_rope_freqs = false;    // llama3 per-dimension frequency factors (rope_freqs.weight)

  int32_t kv_dim() const { return n_head_kv * head_dim; }
  int32_t q_dim() const { return n_head * head_dim; }
};

// Reads and checks every hyperparameter; throws core::Error naming the key or
// the unsupported architecture.
ModelConfig config_from_gguf(const gguf::File& file);

const std::vector<std::string>& supported_architectures();

}  // namespace tandem::core
