#pragma once
// The hyperparameters that decide a model's memory: from a GGUF file's
// metadata or, for planning before anything is downloaded, from a preset of a
// published model (its config.json as converted by llama.cpp).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/model_config.h"

namespace tandem::core::plan {

struct ModelShape {
  std::string name;            // "llama-3-70b", or the file's general.name
  std::string arch = "llama";  // "llama" | "qwen2" (Q/K/V biases)
  int32_t n_layer = 0;
  int32_t n_embd = 0;
  int32_t n_ff = 0;
  int32_t n_head = 0;
  int32_t n_head_kv = 0;
  int32_t head_dim = 0;
  int32_t n_vocab = 0;
  int32_t n_ctx_train = 0;
  float rope_freq_base = 10000.0f;
  bool tied_output = false;  // no output.weight: the head reads token_embd
  bool qkv_bias = false;
  bool rope_freqs = false;   // llama-3.1 style rope_freqs.weight (head_dim/2 f32)
  std::string smaller;       // preset of the same family at a smaller size ("" if none)

  int32_t q_dim() const { return n_head * head_dim; }
  int32_t kv_dim() const { return n_head_kv * head_dim; }
  // Weights of one layer's seven matrices, and of the whole model (embedding
  // and head included), as counts of values: what "70B" means.
  int64_t layer_params() const;
  int64_t params() const;
};

const std::vector<ModelShape>& presets();
// nullptr when unknown; names are matched exactly ("llama-3-70b").
const ModelShape* find_preset(std::string_view name);
std::string preset_names();  // "llama-3-70b, llama-2-70b, ..." for error messages

ModelShape shape_from_config(const ModelConfig& c);

}  // namespace tandem::core::plan
