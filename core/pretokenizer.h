#pragma once
// BPE pre-tokenization: cutting text into the words that merges then run
// inside. Each kind reproduces llama.cpp's splitter for that pre-tokenizer
// name, including where llama.cpp's hand-written scanners differ from the
// textbook regex (e.g. "\s+(?!\S)" at the end of a fragment), because token
// ids must match llama.cpp's exactly. Hand-written scanners, no std::regex:
// std::regex has no \p{..} and is slow.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::core {

enum class PreTokenizer {
  kGpt2,       // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
  kLlama3,     // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
               // ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  kQwen2,      // as kLlama3 but \p{N} one digit at a time
  kStarcoder,  // \p{N} isolated first, then the GPT-2 expression (starcoder, smollm, ...)
  kDefault,    // llama.cpp's fallback chain: [\p{P}\$\+<=>\^~\|]+, GPT-2, \p{N}+, [0-9][0-9][0-9]
};

// Splits `text` into words. Text is first decoded as llama.cpp decodes it
// (invalid bytes become U+FFFD), so the words are valid UTF-8 and their
// concatenation equals the text with those replacements.
std::vector<std::string> pretokenize(std::string_view text, PreTokenizer kind);

}  // namespace tandem::core
