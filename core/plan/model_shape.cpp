#include "core/plan/model_shape.h"

namespace tandem::core::plan {

int64_t ModelShape::layer_params() const {
  const int64_t d = n_embd;
  return d * q_dim() + 2 * d * kv_dim() + static_cast<int64_t>(q_dim()) * d + 3 * d * n_ff;
}

int64_t ModelShape::params() const {
  const int64_t embd = static_cast<int64_t>(n_embd) * n_vocab;
  return embd * (tied_output ? 1 : 2) + layer_params() * n_layer;
}

const std::vector<ModelShape>& presets() {
  // Values from each model's published config.json (hidden_size,
  // intermediate_size, num_attention_heads, num_key_value_heads,
  // num_hidden_layers, vocab_size, rope_theta, max_position_embeddings).
  static const std::vector<ModelShape> p = {
      {"llama-3-70b", "llama", 80, 8192, 28672, 64, 8, 128, 128256, 8192, 500000.0f, false, false, false, "llama-3-8b"},
      {"llama-2-70b", "llama", 80, 8192, 28672, 64, 8, 128, 32000, 4096, 10000.0f, false, false, false, "llama-2-13b"},
      {"llama-2-13b", "llama", 40, 5120, 13824, 40, 40, 128, 32000, 4096, 10000.0f, false, false, false, ""},
      {"llama-3-8b", "llama", 32, 4096, 14336, 32, 8, 128, 128256, 8192, 500000.0f, false, false, false, ""},
      {"qwen2.5-72b", "qwen2", 80, 8192, 29568, 64, 8, 128, 152064, 32768, 1000000.0f, false, true, false, "qwen2.5-32b"},
      {"qwen2.5-32b", "qwen2", 64, 5120, 27648, 40, 8, 128, 152064, 32768, 1000000.0f, false, true, false, ""},
  };
  return p;
}

const ModelShape* find_preset(std::string_view name) {
  for (const ModelShape& s : presets())
    if (s.name == name) return &s;
  return nullptr;
}

std::string preset_names() {
  std::string out;
  for (const ModelShape& s : presets()) out += (out.empty() ? "" : ", ") + s.name;
  return out;
}

ModelShape shape_from_config(const ModelConfig& c) {
  ModelShape s;
  s.name = c.name;
  s.arch = c.arch;
  s.n_layer = c.n_layer;
  s.n_embd = c.n_embd;
  s.n_ff = c.n_ff;
  s.n_head = c.n_head;
  s.n_head_kv = c.n_head_kv;
  s.head_dim = c.head_dim;
  s.n_vocab = c.n_vocab;
  s.n_ctx_train = c.n_ctx_train;
  s.rope_freq_base = c.rope_freq_base;
  s.tied_output = c.tied_output;
  s.qkv_bias = c.qkv_bias;
  s.rope_freqs = c.has_rope_freqs;
  return s;
}

}  // namespace tandem::core::plan
