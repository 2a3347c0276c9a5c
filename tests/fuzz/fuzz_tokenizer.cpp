// libFuzzer target for the tokenizers: arbitrary bytes in, ids out and back.
//
// Input: byte 0 picks the vocabulary (TANDEM_FUZZ_VOCABS: SentencePiece,
// GPT-2 and starcoder BPE from the tokenizer test vectors, and SmolLM2's
// "smollm" BPE), byte 1 the flags, the rest is the text. For every input:
//   - encode never fails on text and returns only ids inside the vocabulary,
//     BOS first exactly when asked;
//   - valid UTF-8 without special-token parsing decodes back to the same
//     bytes, for the vocabularies whose decoder is lossless (byte-level BPE
//     without llama.cpp's " ," clean-up, and SentencePiece with byte fallback)
//     — less the bytes the vocabulary has no token for, which llama.cpp
//     drops too (SmolLM2 has none for most ASCII control bytes);
//   - the same bytes read as ids (in and out of range) decode without harm.
#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/tokenizer.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using tandem::core::Tokenizer;

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);
    for (size_t k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 2) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n;
  }
  return true;
}

const std::vector<tandem::fuzz::LoadedVocab>& vocabs() {
  static const auto v = tandem::fuzz::load_vocabs();
  return v;
}

// Decoders that give back exactly the bytes they were given.
bool lossless(const tandem::fuzz::LoadedVocab& v) { return v.pre.empty() || v.pre == "smollm"; }

// GPT-2's byte-level alphabet: printable Latin-1 bytes stand for
// themselves, the other 68 for the code points from 256 on, in byte order.
uint32_t byte_level_char(unsigned b) {
  if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) return b;
  uint32_t n = 0;
  for (unsigned c = 0; c < b; ++c)
    if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174)) ++n;
  return 256 + n;
}

std::string utf8(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
  return out;
}

// Per vocabulary, the bytes it has a token for: its byte-level character
// (BPE) or its <0xXX> byte-fallback token (SentencePiece). A byte without
// one is dropped on encoding, by llama.cpp as by us (SmolLM2 lacks most
// ASCII control bytes and a few others).
std::vector<std::array<bool, 256>> byte_tokens() {
  std::vector<std::array<bool, 256>> out;
  for (const auto& v : vocabs()) {
    std::array<bool, 256> ok{};
    for (unsigned b = 0; b < 256; ++b) {
      char spm[8];
      std::snprintf(spm, sizeof spm, "<0x%02X>", b);
      ok[b] = v.tok->find(v.pre.empty() ? std::string(spm) : utf8(byte_level_char(b))).has_value();
    }
    out.push_back(ok);
  }
  return out;
}

const std::array<bool, 256>& byte_ok(size_t vocab) {
  static const auto all = byte_tokens();
  return all[vocab];
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  for (size_t i = 0; i < vocabs().size(); ++i) (void)byte_ok(i);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t which = data[0] % vocabs().size();
  const auto& v = vocabs()[which];
  const Tokenizer& tok = *v.tok;
  const bool add_bos = (data[1] & 1) && tok.bos() >= 0;
  const bool parse_special = data[1] & 2;
  const bool render_special = data[1] & 4;
  const std::string_view text(reinterpret_cast<const char*>(data + 2), size - 2);

  const std::vector<int32_t> ids = tok.encode(text, add_bos, parse_special);
  for (int32_t id : ids) FUZZ_CHECK(tok.valid(id));
  if (add_bos) FUZZ_CHECK(!ids.empty() && ids[0] == tok.bos());

  if (!parse_special && lossless(v) && valid_utf8(text)) {
    const std::string back = tok.decode(ids, false);
    std::string want;
    for (char c : text)
      if (byte_ok(which)[static_cast<unsigned char>(c)]) want += c;
    if (back != want) {
      std::fprintf(stderr, "round trip differs on %s: %zu bytes in, %zu out\n", v.path.c_str(), text.size(),
                   back.size());
      for (const std::string_view s : {std::string_view(want), std::string_view(back)}) {
        for (unsigned char c : s) std::fprintf(stderr, "%02x ", c);
        std::fprintf(stderr, "\n");
      }
      FUZZ_CHECK(back == want);
    }
  }

  // The same bytes as token ids, some outside the vocabulary.
  std::vector<int32_t> raw((size - 2) / 4);
  if (!raw.empty()) std::memcpy(raw.data(), data + 2, raw.size() * 4);
  for (int32_t& id : raw)
    if (id < 0 || id >= tok.n_vocab() + 8) id = static_cast<int32_t>(static_cast<uint32_t>(id) % (tok.n_vocab() + 8));
  size_t piece_bytes = 0;
  for (int32_t id : raw) piece_bytes += tok.token_piece(id, render_special).size();
  const std::string joined = tok.decode(raw, render_special);
  FUZZ_CHECK(joined.size() <= piece_bytes);  // decode only ever drops (a prefix space, clean-up)
  return 0;
}
