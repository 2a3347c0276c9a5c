// Reading a tokenizer vocabulary from GGUF metadata (the tokenizer.ggml.*
// keys written by llama.cpp's converters).
#include <cstdint>

#include "core/error.h"
#include "core/gguf_file.h"
#include "core/tokenizer.h"

namespace tandem::core {
namespace {

int32_t get_id(const gguf::File& f, std::string_view key) {
  const std::optional<int64_t> v = f.get_int(key);  // throws naming the key if not an integer
  // A value that is no token id (some converters write -1 for "none") counts
  // as absent; ids past the vocabulary are left for the Tokenizer, which
  // falls back to the model's default for both, as llama.cpp does.
  if (!v || *v < 0 || *v > INT32_MAX) return -1;
  return static_cast<int32_t>(*v);
}

}  // namespace

VocabData vocab_from_gguf(const gguf::File& f) {
  VocabData v;
  const std::optional<std::string> model = f.get_string("tokenizer.ggml.model");
  if (!model) throw Error("gguf: missing tokenizer.ggml.model in " + f.path());
  v.model = *model;
  v.pre = f.get_string("tokenizer.ggml.pre").value_or("");
  if (!f.find("tokenizer.ggml.tokens")) throw Error("gguf: missing tokenizer.ggml.tokens in " + f.path());
  v.tokens = f.get_string_array("tokenizer.ggml.tokens");

  // Scores may be stored as f32 or as integers; llama.cpp accepts both.
  v.scores = f.get_float_array("tokenizer.ggml.scores");
  v.token_types = f.get_int_array("tokenizer.ggml.token_type");
  if (v.model == "gpt2" && !f.find("tokenizer.ggml.merges"))
    throw Error("gguf: missing tokenizer.ggml.merges in " + f.path() + " (needed by the gpt2 tokenizer)");
  v.merges = f.get_string_array("tokenizer.ggml.merges");

  v.bos = get_id(f, "tokenizer.ggml.bos_token_id");
  v.eos = get_id(f, "tokenizer.ggml.eos_token_id");
  v.eot = get_id(f, "tokenizer.ggml.eot_token_id");
  v.eom = get_id(f, "tokenizer.ggml.eom_token_id");
  v.unk = get_id(f, "tokenizer.ggml.unknown_token_id");
  v.pad = get_id(f, "tokenizer.ggml.padding_token_id");
  v.fim_pad = get_id(f, "tokenizer.ggml.fim_pad_token_id");
  v.fim_rep = get_id(f, "tokenizer.ggml.fim_rep_token_id");
  v.fim_sep = get_id(f, "tokenizer.ggml.fim_sep_token_id");
  v.add_bos = f.get_bool("tokenizer.ggml.add_bos_token");
  v.add_eos = f.get_bool("tokenizer.ggml.add_eos_token");
  v.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix");
  return v;
}

}  // namespace tandem::core
