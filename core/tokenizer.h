#pragma once
// Text <-> token ids, matching llama.cpp's tokenizer id for id. Two models:
// "gpt2" (byte-level BPE with a pre-tokenizer chosen by tokenizer.ggml.pre)
// and "llama" (SentencePiece BPE by score with <0xXX> byte fallback).
// Behaviour follows llama.cpp's llama-vocab.cpp (as vendored by
// llama-cpp-python 0.3.36), including its quirks, because prompts must
// tokenize exactly as the models' reference runtime tokenizes them.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::core {

namespace gguf {
class File;
}

// What GGUF metadata holds, so tests can build one without a file.
// Ids of -1 and unset optionals mean "not in the file": the model's defaults
// apply, as in llama.cpp (llama: bos 1, eos 2, unk 0; gpt2: bos = eos = 11).
struct VocabData {
  std::string model;  // tokenizer.ggml.model: "gpt2" | "llama"
  std::string pre;  // tokenizer.ggml.pre: "llama3"/"llama-bpe", "smollm", "qwen2", "starcoder", "gpt-2", "default", ...
  std::vector<std::string> tokens;
  std::vector<float> scores;         // empty: all 0
  std::vector<int32_t> token_types;  // empty: all NORMAL (GGUF numbering: 1 normal, 2 unknown, 3 control, 4 user
                                     // defined, 5 unused, 6 byte)
  std::vector<std::string> merges;   // "left right", rank = position
  int32_t bos = -1, eos = -1, eot = -1, unk = -1, pad = -1;
  int32_t eom = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;  // only used to decide end of generation
  std::optional<bool> add_bos, add_eos, add_space_prefix;
};

// Reads the tokenizer.ggml.* keys. Throws core::Error naming the key that is
// missing or has the wrong type.
VocabData vocab_from_gguf(const gguf::File& f);

class Tokenizer {
 public:
  // Throws core::Error for an unknown model or pre-tokenizer (the message
  // names the value and lists the supported ones), or an unusable vocabulary.
  explicit Tokenizer(VocabData v);
  ~Tokenizer();
  Tokenizer(const Tokenizer&);
  Tokenizer& operator=(const Tokenizer&);
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // add_bos: put the BOS id first (throws core::Error if the vocabulary has
  // none). parse_special: control tokens written in the text (e.g.
  // "<|im_start|>") become their ids; user-defined tokens are always matched,
  // as in llama.cpp. EOS is never appended.
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;

  // Bytes of one token: byte-level decoded for gpt2, "▁" as space and <0xXX>
  // as that byte for llama. Control and unknown tokens give "" unless
  // render_special. Invalid ids give "".
  std::string token_piece(int32_t id, bool render_special) const;

  // llama.cpp's llama_detokenize(remove_special=false): pieces concatenated,
  // one leading space dropped when the vocabulary adds a space prefix, and
  // for pre-tokenizers that ask for it (gpt-2, starcoder, llama3, default)
  // its clean-up of " ," " ." " 's" and the like.
  std::string decode(const std::vector<int32_t>& ids, bool render_special) const;

  int32_t n_vocab() const;
  int32_t bos() const;            // -1 when none
  int32_t eos() const;            // -1 when none
  bool add_bos_default() const;   // whether prompts of this model start with BOS
  bool add_space_prefix() const;  // SentencePiece-style prefix space (dropped again on decode)
  // llama.cpp's end-of-generation set: eos, eot, eom, FIM pad/repo/file-sep
  // tokens, and every token spelled like <|im_end|>, <|eot_id|>,
  // <|endoftext|>, <|end_of_text|>, </s>, <end_of_turn>, ... (found by text).
  bool is_end_of_generation(int32_t id) const;
  std::optional<int32_t> find(std::string_view token_text) const;
  bool valid(int32_t id) const;

 private:
  friend class StreamDecoder;
  struct Impl;
  std::shared_ptr<const Impl> impl_;  // immutable after construction: copies share it
};

// Streaming detokenization: push ids, get text that never ends in half a
// UTF-8 character (incomplete bytes are held back until the next push).
// Output is always valid UTF-8: ill-formed bytes come out as U+FFFD, and
// flush() returns what is held back the same way. The concatenated output
// equals decode() except for decode()'s space clean-up (llama.cpp's own
// streaming uses plain pieces as well).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool render_special = false);
  std::string push(int32_t id);
  std::string flush();

 private:
  Tokenizer tok_;  // a copy shares the immutable tables and outlives the caller's
  bool render_special_;
  bool first_ = true;
  std::string pending_;
};

}  // namespace tandem::core
