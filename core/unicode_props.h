#pragma once
// The Unicode facts the tokenizer needs, with llama.cpp's exact semantics:
// its UTF-8 decoding (invalid bytes become U+FFFD one byte at a time), its
// grouping of general categories into eight classes, and the White_Space set.
// The tables come from tools/gen_unicode_tables.py (core/unicode_tables.inc).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::core::unicode {

// One bit per class, numbered as llama.cpp numbers them, so a class test is a
// mask test and the generated table can be compared with llama.cpp's.
enum ClassBits : uint16_t {
  kUndefined = 0x0001,    // Cn, and anything past U+10FFFF
  kNumber = 0x0002,       // \p{N}
  kLetter = 0x0004,       // \p{L}
  kSeparator = 0x0008,    // \p{Z}
  kMark = 0x0010,         // \p{M}
  kPunctuation = 0x0020,  // \p{P}
  kSymbol = 0x0040,       // \p{S}
  kControl = 0x0080,      // \p{C} (Cc, Cf, Co, Cs)
  kWhitespace = 0x0100,   // \s as llama.cpp defines it (White_Space)
};

struct CptFlags {
  uint16_t bits = 0;  // 0 only for "no code point" (outside the text)

  bool is_letter() const { return bits & kLetter; }
  bool is_number() const { return bits & kNumber; }
  bool is_whitespace() const { return bits & kWhitespace; }
  bool is_punctuation() const { return bits & kPunctuation; }
  bool any() const { return bits != 0; }
  uint16_t category() const { return bits & 0x00FF; }
};

// Class and whitespace bits of one code point.
CptFlags flags(uint32_t cpt);

// Unicode version of the generated tables ("15.1.0").
const char* tables_version();

constexpr uint32_t kReplacement = 0xFFFD;

// Length of the UTF-8 sequence a byte starts, read from its top four bits
// only (continuation bytes count as 1), exactly as llama.cpp's
// unicode_len_utf8 does: both tokenizers cut their symbols with it.
inline size_t utf8_len(char lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[static_cast<uint8_t>(lead) >> 4];
}

// Decodes like llama.cpp's unicode_cpts_from_utf8: a sequence is accepted
// when its continuation bytes are 10xxxxxx (overlong forms and surrogates pass
// through); otherwise one byte is consumed and U+FFFD produced.
std::vector<uint32_t> decode_utf8(std::string_view s);

// Appends the UTF-8 form of `cpt`. Values above U+10FFFF (which the lenient
// decoder can produce from F5..F7 lead bytes) are written as U+FFFD: llama.cpp
// throws there, and a replacement character is the useful reading of it.
void append_utf8(std::string& out, uint32_t cpt);

// Number of bytes (0..3) at the end of `s` that start a well-formed UTF-8
// sequence without finishing it, i.e. that more bytes could still complete.
// The streaming decoder holds exactly these back.
size_t incomplete_utf8_tail(std::string_view s);

// Strict decoding for output: each maximal ill-formed subsequence (RFC 3629
// rules: no overlongs, no surrogates, nothing above U+10FFFF) becomes one
// U+FFFD, the same policy as Python's and WHATWG's decoders.
void append_sanitized_utf8(std::string& out, std::string_view s);

}  // namespace tandem::core::unicode
