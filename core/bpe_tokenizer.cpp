// Byte-level BPE ("gpt2" vocabularies): pre-tokenize, map each byte to its
// GPT-2 code point, then apply merges by rank inside each word. Same result
// as llama.cpp's llm_tokenizer_bpe_session, including its fallback of
// looking up single bytes of an unmergeable symbol.
#include <algorithm>
#include <array>
#include <cstdio>
#include <queue>

#include "core/tokenizer_models.h"
#include "core/unicode_props.h"

namespace tandem::core::detail {
namespace {

// Bytes that are printable and not space keep their own code point; the
// others (control, space, DEL, NBSP, soft hyphen, ...) are numbered from
// U+0100 in byte order. GPT-2's bytes_to_unicode().
std::array<uint32_t, 256> make_byte_to_cpt() {
  std::array<uint32_t, 256> map{};
  std::array<bool, 256> direct{};
  for (int b = 0x21; b <= 0x7E; ++b) direct[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) map[b] = direct[b] ? uint32_t(b) : next++;
  return map;
}

const std::array<std::string, 256>& byte_to_utf8_table() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    const auto cpts = make_byte_to_cpt();
    for (int b = 0; b < 256; ++b) unicode::append_utf8(t[b], cpts[b]);
    return t;
  }();
  return table;
}

// Code point -> byte for the inverse; -1 where no byte maps there.
int cpt_to_byte(uint32_t cpt) {
  static const std::array<int16_t, 324> inverse = [] {
    std::array<int16_t, 324> inv;
    inv.fill(-1);
    const auto cpts = make_byte_to_cpt();
    for (int b = 0; b < 256; ++b) inv[cpts[b]] = static_cast<int16_t>(b);
    return inv;
  }();
  return cpt < inverse.size() ? inverse[cpt] : -1;
}

struct Symbol {
  uint32_t start;  // byte offset in the word
  uint32_t n;      // byte length; 0 once merged into its left neighbour
  int prev, next;
};

struct Bigram {
  int left, right;
  int rank;
  uint32_t size;  // byte length of the merged text when queued
};

// Lowest rank first; among equal ranks the leftmost pair.
struct LowerPriority {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

}  // namespace

const std::string& gpt2_byte_to_utf8(uint8_t byte) { return byte_to_utf8_table()[byte]; }

std::string gpt2_decode(std::string_view token_text) {
  std::string out;
  for (uint32_t cpt : unicode::decode_utf8(token_text)) {
    const int b = cpt_to_byte(cpt);
    if (b >= 0) {
      out.push_back(static_cast<char>(b));
      continue;
    }
    // Not produced by the byte mapping: llama.cpp writes a marker with the
    // code point's UTF-8 in hex followed by the whole token text.
    std::string utf8;
    unicode::append_utf8(utf8, cpt);
    out += "[UNK_BYTE_0x";
    for (unsigned char c : utf8) {
      char hex[3];
      std::snprintf(hex, sizeof(hex), "%02x", c);
      out += hex;
    }
    out.append(token_text);
    out += "]";
  }
  return out;
}

BpeModel::BpeModel(const TokenIndex& index, const std::vector<std::string>& merges, PreTokenizer pre,
                   bool ignore_merges)
    : index_(index), pre_(pre), ignore_merges_(ignore_merges) {
  ranks_.reserve(merges.size());
  std::string key;
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string& m = merges[i];
    // Split at the first space after the first byte (a merge's left part may
    // itself be a space in vocabularies that are not byte-encoded). A line
    // without one yields an empty pair, as in llama.cpp.
    const size_t sp = m.find(' ', 1);
    key.clear();
    if (sp != std::string::npos) {
      key.append(m, 0, sp);
      key.push_back('\xff');
      key.append(m, sp + 1, std::string::npos);
    } else {
      key.push_back('\xff');
    }
    ranks_.try_emplace(key, static_cast<int>(i));  // first occurrence keeps its rank
  }
}

int BpeModel::rank(std::string_view left, std::string_view right, std::string& key) const {
  key.assign(left);
  key.push_back('\xff');
  key.append(right);
  auto it = ranks_.find(std::string_view(key));
  return it == ranks_.end() ? -1 : it->second;
}

void BpeModel::encode(std::string_view text, std::vector<int32_t>& out) const {
  const auto& bytes = byte_to_utf8_table();
  std::string encoded;
  for (const std::string& word : pretokenize(text, pre_)) {
    encoded.clear();
    for (unsigned char c : word) encoded += bytes[c];
    encode_word(encoded, out);
  }
}

void BpeModel::encode_word(const std::string& word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    const int32_t id = lookup(index_, word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }

  std::vector<Symbol> syms;
  syms.reserve(word.size());
  for (size_t off = 0; off < word.size();) {
    const size_t n = std::min(unicode::utf8_len(word[off]), word.size() - off);
    const int idx = static_cast<int>(syms.size());
    syms.push_back({uint32_t(off), uint32_t(n), idx - 1, off + n == word.size() ? -1 : idx + 1});
    off += n;
  }

  auto text_of = [&](int i) { return std::string_view(word).substr(syms[i].start, syms[i].n); };
  std::string key;
  std::vector<Bigram> storage;
  storage.reserve(syms.size());
  std::priority_queue<Bigram, std::vector<Bigram>, LowerPriority> queue(LowerPriority{}, std::move(storage));
  auto add_bigram = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const int r = rank(text_of(left), text_of(right), key);
    if (r < 0) return;
    queue.push({left, right, r, syms[left].n + syms[right].n});
  };

  for (int i = 1; i < static_cast<int>(syms.size()); ++i) add_bigram(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = syms[b.left];
    Symbol& r = syms[b.right];
    // Stale entry: one side was merged since it was queued. While both are
    // alive the left one cannot have grown, so a length check is enough.
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = b.left;
    add_bigram(l.prev, b.left);
    add_bigram(b.left, l.next);
  }

  for (int i = 0; i != -1; i = syms[i].next) {
    const std::string_view piece = text_of(i);
    const int32_t id = lookup(index_, piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    // No token for the symbol: llama.cpp tries each byte of it as a one-byte
    // token text and drops bytes that are not one.
    for (char c : piece) {
      const int32_t bid = lookup(index_, std::string_view(&c, 1));
      if (bid >= 0) out.push_back(bid);
    }
  }
}

}  // namespace tandem::core::detail
