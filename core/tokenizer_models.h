#pragma once
// Internal to the tokenizer: the two subword models that turn a run of plain
// text (no special tokens left in it) into ids. core/tokenizer.cpp owns the
// vocabulary, special tokens and decoding; these only encode.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/pretokenizer.h"

namespace tandem::core::detail {

// Lets unordered_map<std::string, ...> be searched with a string_view
// without building a std::string per lookup.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenIndex = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

inline int32_t lookup(const TokenIndex& index, std::string_view text) {
  auto it = index.find(text);
  return it == index.end() ? -1 : it->second;
}

// GPT-2's reversible byte <-> printable code point mapping (bytes that are
// printable Latin-1 map to themselves, the rest to U+0100 upwards in order).
const std::string& gpt2_byte_to_utf8(uint8_t byte);
// Inverse on one token text; code points outside the mapping are written as
// "[UNK_BYTE_0x<hex>" + text + "]", as llama.cpp's llama_decode_text does.
std::string gpt2_decode(std::string_view token_text);

class BpeModel {
 public:
  // merges: "left right" strings, rank = position (the first of duplicates
  // wins). ignore_merges: a whole word that is a token is taken as is
  // (llama3-style vocabularies).
  BpeModel(const TokenIndex& index, const std::vector<std::string>& merges, PreTokenizer pre, bool ignore_merges);
  void encode(std::string_view text, std::vector<int32_t>& out) const;

 private:
  int rank(std::string_view left, std::string_view right, std::string& key) const;
  void encode_word(const std::string& word, std::vector<int32_t>& out) const;

  const TokenIndex& index_;
  PreTokenizer pre_;
  bool ignore_merges_;
  // Key: left + '\xff' + right. 0xFF never occurs in UTF-8, so it cannot be
  // confused with a byte of either half.
  std::unordered_map<std::string, int, StringHash, std::equal_to<>> ranks_;
};

class SpmModel {
 public:
  // scores: merge priority of each token (higher first). byte_tokens: id of
  // each byte's fallback token, -1 when the vocabulary has none.
  SpmModel(const TokenIndex& index, const std::vector<float>& scores, std::vector<int32_t> byte_tokens);
  // `text` already has spaces written as U+2581 and any prefix space added.
  void encode(std::string_view text, std::vector<int32_t>& out) const;

 private:
  const TokenIndex& index_;
  const std::vector<float>& scores_;
  std::vector<int32_t> byte_tokens_;
};

}  // namespace tandem::core::detail
