#include "core/model_config.h"

#include <algorithm>

#include "core/error.h"

namespace tandem::core {

const std::vector<std::string>& supported_architectures() {
  static const std::vector<std::string> archs = {"llama", "qwen2"};
  return archs;
}

namespace {

int32_t required_int(const gguf::File& f, const std::string& key, int64_t lo, int64_t hi) {
  auto v = f.get_int(key);
  if (!v) throw Error(f.path() + ": missing metadata key '" + key + "'");
  if (*v < lo || *v > hi)
    throw Error(f.path() + ": metadata key '" + key + "' = " + std::to_string(*v) + " is outside [" +
                std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<int32_t>(*v);
}

}  // namespace

ModelConfig config_from_gguf(const gguf::File& f) {
  ModelConfig c;
  auto arch = f.get_string("general.architecture");
  if (!arch) throw Error(f.path() + ": missing metadata key 'general.architecture'");
  const auto& archs = supported_architectures();
  if (std::find(archs.begin(), archs.end(), *arch) == archs.end()) {
    std::string list;
    for (const auto& a : archs) list += (list.empty() ? "" : ", ") + a;
    throw Error(f.path() + ": unsupported architecture '" + *arch + "' (supported: " + list + ")");
  }
  c.arch = *arch;
  c.name = f.get_string("general.name").value_or("");
  const std::string p = c.arch + ".";
  c.n_layer = required_int(f, p + "block_count", 1, 1024);
  c.n_embd = required_int(f, p + "embedding_length", 1, 1 << 17);
  c.n_ff = required_int(f, p + "feed_forward_length", 1, 1 << 20);
  c.n_head = required_int(f, p + "attention.head_count", 1, 1024);
  c.n_head_kv = f.get_int(p + "attention.head_count_kv")
                    ? required_int(f, p + "attention.head_count_kv", 1, c.n_head)
                    : c.n_head;
  if (c.n_head % c.n_head_kv != 0)
    throw Error(f.path() + ": attention.head_count (" + std::to_string(c.n_head) +
                ") is not a multiple of attention.head_count_kv (" + std::to_string(c.n_head_kv) + ")");
  c.head_dim = f.get_int(p + "attention.key_length") ? required_int(f, p + "attention.key_length", 2, 1024)
                                                      : c.n_embd / c.n_head;
  if (c.head_dim <= 0 || c.head_dim % 2 != 0)
    throw Error(f.path() + ": head dimension " + std::to_string(c.head_dim) + " must be even and positive");
  if (auto vl = f.get_int(p + "attention.value_length"); vl && *vl != c.head_dim)
    throw Error(f.path() + ": attention.value_length != attention.key_length is not supported");
  c.n_ctx_train = f.get_int(p + "context_length") ? required_int(f, p + "context_length", 1, 1 << 24) : 4096;
  c.rope_dims = f.get_int(p + "rope.dimension_count") ? required_int(f, p + "rope.dimension_count", 2, c.head_dim)
                                                     : c.head_dim;
  if (c.rope_dims % 2 != 0) throw Error(f.path() + ": rope.dimension_count must be even");
  c.rope_freq_base = static_cast<float>(f.get_float(p + "rope.freq_base").value_or(10000.0));
  if (!(c.rope_freq_base > 0)) throw Error(f.path() + ": metadata key '" + p + "rope.freq_base' must be > 0");
  if (auto st = f.get_string(p + "rope.scaling.type"); st && *st != "none") {
    if (*st != "linear")
      throw Error(f.path() + ": rope.scaling.type '" + *st + "' is not supported (supported: none, linear)");
    double factor = f.get_float(p + "rope.scaling.factor").value_or(1.0);
    if (!(factor > 0)) throw Error(f.path() + ": rope.scaling.factor must be > 0");
    c.rope_freq_scale = static_cast<float>(1.0 / factor);
  }
  c.rms_eps = static_cast<float>(f.get_float(p + "attention.layer_norm_rms_epsilon").value_or(1e-5));
  c.rope_style = c.arch == "qwen2" ? RopeStyle::Neox : RopeStyle::Normal;
  c.qkv_bias = c.arch == "qwen2";

  const auto& emb = f.tensor("token_embd.weight");
  if (emb.shape.size() != 2 || emb.shape[0] != c.n_embd)
    throw Error(f.path() + ": tensor 'token_embd.weight' has shape incompatible with embedding_length " +
                std::to_string(c.n_embd));
  c.n_vocab = static_cast<int32_t>(emb.shape[1]);
  c.tied_output = f.find_tensor("output.weight") == nullptr;
  c.has_rope_freqs = f.find_tensor("rope_freqs.weight") != nullptr;
  return c;
}

}  // namespace tandem::core
