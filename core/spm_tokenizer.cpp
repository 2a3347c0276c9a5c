// SentencePiece BPE ("llama" vocabularies): start from single UTF-8
// characters and repeatedly merge the adjacent pair whose concatenation is the
// highest-scoring vocabulary token; symbols left without a token fall back to
// their bytes' <0xXX> tokens. Same result as llama.cpp's
// llm_tokenizer_spm_session.
#include <algorithm>
#include <queue>

#include "core/tokenizer_models.h"
#include "core/unicode_props.h"

namespace tandem::core::detail {
namespace {

struct Symbol {
  uint32_t start;
  uint32_t n;  // 0 once merged into its left neighbour
  int prev, next;
};

struct Bigram {
  int left, right;
  float score;
  uint32_t size;
};

// Highest score first; among equal scores the leftmost pair.
struct LowerPriority {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

SpmModel::SpmModel(const TokenIndex& index, const std::vector<float>& scores, std::vector<int32_t> byte_tokens)
    : index_(index), scores_(scores), byte_tokens_(std::move(byte_tokens)) {}

void SpmModel::encode(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  // Characters are cut by their lead byte only, so a malformed sequence
  // still yields symbols (that end up as byte tokens).
  std::vector<Symbol> syms;
  syms.reserve(text.size());
  for (size_t off = 0; off < text.size();) {
    const size_t n = std::min(unicode::utf8_len(text[off]), text.size() - off);
    const int idx = static_cast<int>(syms.size());
    syms.push_back({uint32_t(off), uint32_t(n), idx - 1, off + n == text.size() ? -1 : idx + 1});
    off += n;
  }

  std::vector<Bigram> storage;
  storage.reserve(syms.size());
  std::priority_queue<Bigram, std::vector<Bigram>, LowerPriority> queue(LowerPriority{}, std::move(storage));
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    // Adjacent symbols are contiguous in the text.
    const uint32_t size = syms[left].n + syms[right].n;
    const int32_t id = lookup(index_, text.substr(syms[left].start, size));
    if (id < 0 || static_cast<size_t>(id) >= scores_.size()) return;
    queue.push({left, right, scores_[id], size});
  };

  for (int i = 1; i < static_cast<int>(syms.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = syms[b.left];
    Symbol& r = syms[b.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;  // stale
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  // Every merged symbol is a token (pairs are only queued when their text is
  // one), so only unmerged characters can miss: those go out byte by byte.
  // llama.cpp's "rev_merge" re-segmentation therefore never triggers and is
  // not needed here.
  for (int i = 0; i != -1; i = syms[i].next) {
    const std::string_view piece = text.substr(syms[i].start, syms[i].n);
    const int32_t id = lookup(index_, piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (unsigned char c : piece) {
      if (byte_tokens_[c] >= 0) out.push_back(byte_tokens_[c]);
    }
  }
}

}  // namespace tandem::core::detail
