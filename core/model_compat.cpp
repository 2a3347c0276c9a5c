#include "core/model_compat.h"

#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/model_config.h"

namespace tandem::core {

namespace {

template <class T>
void same(const gguf::File& a, const gguf::File& b, const char* what, const T& x, const T& y) {
  if (x == y) return;
  std::ostringstream os;
  os << a.path() << " and " << b.path() << " are not the same model: " << what << " " << x << " vs " << y;
  throw Error(os.str());
}

template <class T>
void same_array(const gguf::File& a, const gguf::File& b, const char* key, const std::vector<T>& x,
                const std::vector<T>& y) {
  if (x.size() != y.size()) {
    same(a, b, (std::string(key) + " length").c_str(), x.size(), y.size());
  }
  for (size_t i = 0; i < x.size(); ++i)
    if (!(x[i] == y[i])) {
      std::ostringstream os;
      os << a.path() << " and " << b.path() << " are not the same model: " << key << " differ at index " << i;
      if constexpr (std::is_same_v<T, std::string>) os << ": '" << x[i] << "' vs '" << y[i] << "'";
      throw Error(os.str());
    }
}

}  // namespace

void check_same_model(const gguf::File& a, const gguf::File& b) {
  const ModelConfig x = config_from_gguf(a), y = config_from_gguf(b);
  same(a, b, "architecture", x.arch, y.arch);
  same(a, b, "n_layer", x.n_layer, y.n_layer);
  same(a, b, "n_embd", x.n_embd, y.n_embd);
  same(a, b, "n_ff", x.n_ff, y.n_ff);
  same(a, b, "n_head", x.n_head, y.n_head);
  same(a, b, "n_head_kv", x.n_head_kv, y.n_head_kv);
  same(a, b, "head_dim", x.head_dim, y.head_dim);
  same(a, b, "n_vocab", x.n_vocab, y.n_vocab);
  same(a, b, "rope_dims", x.rope_dims, y.rope_dims);
  same(a, b, "rope_freq_base", x.rope_freq_base, y.rope_freq_base);
  same(a, b, "rope_freq_scale", x.rope_freq_scale, y.rope_freq_scale);
  same(a, b, "rms_eps", x.rms_eps, y.rms_eps);
  same(a, b, "tied_output", x.tied_output, y.tied_output);
  same(a, b, "rope_freqs tensor", x.has_rope_freqs, y.has_rope_freqs);
  for (const char* key : {"tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.chat_template"})
    same(a, b, key, a.get_string(key).value_or(""), b.get_string(key).value_or(""));
  for (const char* key : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id",
                          "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"})
    same(a, b, key, a.get_int(key).value_or(-1), b.get_int(key).value_or(-1));
  same_array(a, b, "tokenizer.ggml.tokens", a.get_string_array("tokenizer.ggml.tokens"),
             b.get_string_array("tokenizer.ggml.tokens"));
  same_array(a, b, "tokenizer.ggml.merges", a.get_string_array("tokenizer.ggml.merges"),
             b.get_string_array("tokenizer.ggml.merges"));
  same_array(a, b, "tokenizer.ggml.token_type", a.get_int_array("tokenizer.ggml.token_type"),
             b.get_int_array("tokenizer.ggml.token_type"));
}

}  // namespace tandem::core
