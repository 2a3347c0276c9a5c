#include "core/pretokenizer.h"

#include "core/unicode_props.h"

namespace tandem::core {
namespace {

using unicode::CptFlags;

// The text as code points plus their flags, and the current cut into
// fragments (lengths in code points). Every stage re-cuts each fragment on its
// own: like llama.cpp, no match ever spans two fragments of an earlier stage.
struct Text {
  std::vector<uint32_t> cpts;
  std::vector<uint16_t> bits;
};

using Lengths = std::vector<size_t>;

constexpr uint32_t kOutside = 0xFFFFFFFF;

// View of one fragment [ini, end): code points and flags read as "nothing"
// outside it, which is what makes look-aheads stop at fragment borders.
struct Fragment {
  const Text& t;
  size_t ini, end;
  uint32_t cpt(size_t pos) const { return pos >= ini && pos < end ? t.cpts[pos] : kOutside; }
  CptFlags flags(size_t pos) const { return CptFlags{pos >= ini && pos < end ? t.bits[pos] : uint16_t(0)}; }
};

// Collects word lengths while a scanner walks one fragment.
struct Emitter {
  Lengths& out;
  size_t prev_end;
  size_t cut(size_t end) {
    const size_t len = end - prev_end;
    if (len > 0) out.push_back(len);
    prev_end = end;
    return len;
  }
};

template <class Scanner>
Lengths split_each(const Text& t, const Lengths& in, Scanner scan) {
  Lengths out;
  out.reserve(in.size());
  size_t start = 0;
  for (size_t len : in) {
    Fragment f{t, start, start + len};
    Emitter e{out, start};
    scan(f, e);
    start += len;
  }
  return out;
}

bool no_letter_number_space(CptFlags f) { return !(f.is_whitespace() || f.is_letter() || f.is_number()); }

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
// Note that "\s+(?!\S)" backs off one code point only when the whitespace run
// is not at the end of the fragment, and a lone whitespace code point is
// taken as is: llama.cpp's scanner, not a regex engine, defines the ids.
void scan_gpt2(const Fragment& f, Emitter& e) {
  size_t pos = f.ini;
  while (pos < f.end) {
    const uint32_t c = f.cpt(pos);
    if (c == '\'' && pos + 1 < f.end) {
      const uint32_t n1 = f.cpt(pos + 1);
      if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
        pos += e.cut(pos + 2);
        continue;
      }
      if (pos + 2 < f.end) {
        const uint32_t n2 = f.cpt(pos + 2);
        if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) {
          pos += e.cut(pos + 3);
          continue;
        }
      }
    }
    const bool space = c == ' ';
    const CptFlags f2 = space ? f.flags(pos + 1) : f.flags(pos);
    if (f2.is_letter()) {
      pos += space;
      while (f.flags(pos).is_letter()) ++pos;
      e.cut(pos);
      continue;
    }
    if (f2.is_number()) {
      pos += space;
      while (f.flags(pos).is_number()) ++pos;
      e.cut(pos);
      continue;
    }
    if (no_letter_number_space(f2) && f2.any()) {
      pos += space;
      for (CptFlags g = f.flags(pos); no_letter_number_space(g) && g.any(); g = f.flags(++pos)) {
      }
      e.cut(pos);
      continue;
    }
    size_t n_ws = 0;
    while (f.flags(pos + n_ws).is_whitespace()) ++n_ws;
    if (n_ws > 1 && f.cpt(pos + n_ws) != kOutside) {  // \s+(?!\S)
      pos += n_ws - 1;
      e.cut(pos);
      continue;
    }
    if (n_ws > 0) {  // \s+
      pos += n_ws;
      e.cut(pos);
      continue;
    }
    e.cut(++pos);  // nothing matched: one code point on its own
  }
}

uint32_t ascii_lower(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
//  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// Llama-3 uses max_digits 3, Qwen2 1. Case folding is ASCII only: the table
// generator checks that no other code point lower-cases to these letters.
template <size_t kMaxDigits>
void scan_llama3(const Fragment& f, Emitter& e) {
  size_t pos = f.ini;
  while (pos < f.end) {
    const uint32_t c = f.cpt(pos);
    const CptFlags fl = f.flags(pos);
    if (c == '\'' && pos + 1 < f.end) {
      const uint32_t n1 = ascii_lower(f.cpt(pos + 1));
      if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
        pos += e.cut(pos + 2);
        continue;
      }
      if (pos + 2 < f.end) {
        const uint32_t n2 = ascii_lower(f.cpt(pos + 2));
        if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) {
          pos += e.cut(pos + 3);
          continue;
        }
      }
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (!(c == '\r' || c == '\n' || fl.is_number())) {
      if (fl.is_letter() || f.flags(pos + 1).is_letter()) {
        ++pos;
        while (f.flags(pos).is_letter()) ++pos;
        e.cut(pos);
        continue;
      }
    }
    // \p{N}{1,max}: a long digit run becomes groups of max from the left.
    if (fl.is_number()) {
      size_t ini = pos;
      while (f.flags(pos).is_number()) {
        if (++pos - ini >= kMaxDigits) {
          e.cut(pos);
          ini = pos;
        }
      }
      e.cut(pos);
      continue;
    }
    // " ?[^\s\p{L}\p{N}]+[\r\n]*". The class is tested on the code point after
    // the optional space, "is it a code point at all" on the one before: so a
    // lone space ending the fragment is a word by itself, as in llama.cpp.
    const bool space = c == ' ';
    const CptFlags f2 = space ? f.flags(pos + 1) : fl;
    if (no_letter_number_space(f2) && fl.any()) {
      pos += space;
      for (CptFlags g = f.flags(pos); no_letter_number_space(g) && g.any(); g = f.flags(++pos)) {
      }
      for (uint32_t c2 = f.cpt(pos); c2 == '\r' || c2 == '\n'; c2 = f.cpt(++pos)) {
      }
      e.cut(pos);
      continue;
    }
    size_t n_ws = 0, last_newline_end = 0;
    while (f.flags(pos + n_ws).is_whitespace()) {
      const uint32_t c2 = f.cpt(pos + n_ws);
      if (c2 == '\r' || c2 == '\n') last_newline_end = pos + n_ws + 1;
      ++n_ws;
    }
    if (last_newline_end > 0) {  // \s*[\r\n]+
      pos = last_newline_end;
      e.cut(pos);
      continue;
    }
    if (n_ws > 1 && f.cpt(pos + n_ws) != kOutside) {  // \s+(?!\S)
      pos += n_ws - 1;
      e.cut(pos);
      continue;
    }
    if (n_ws > 0) {  // \s+
      pos += n_ws;
      e.cut(pos);
      continue;
    }
    e.cut(++pos);
  }
}

// Splitter for expressions of the form "X" or "X+" (one character class):
// every leftmost match becomes a word of its own, the text between matches
// too. This is what llama.cpp's std::regex fallback does with such patterns.
template <class Pred>
auto isolate(Pred pred, bool runs) {
  return [pred, runs](const Fragment& f, Emitter& e) {
    size_t pos = f.ini;
    while (pos < f.end) {
      if (!pred(f.cpt(pos), f.flags(pos))) {
        ++pos;
        continue;
      }
      e.cut(pos);  // the gap before the match
      ++pos;
      if (runs)
        while (pos < f.end && pred(f.cpt(pos), f.flags(pos))) ++pos;
      e.cut(pos);
    }
    e.cut(f.end);
  };
}

// \p{N} as llama.cpp's regex fallback sees it: ASCII digits, or a non-ASCII
// code point of class N (whitespace is folded away first, but no N is \s).
bool is_number(uint32_t, CptFlags fl) { return fl.is_number(); }

// [\p{P}\$\+<=>\^~\|]: in llama.cpp's "collapsed" regex, \p{P} covers
// non-ASCII punctuation plus an ASCII list that, together with the explicit
// characters, is every ASCII punctuation or symbol except the backtick.
bool is_default_punct(uint32_t c, CptFlags fl) {
  if (c < 128) {
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x5F) || (c >= 0x7B && c <= 0x7E);
  }
  return !fl.is_whitespace() && fl.category() == unicode::kPunctuation;
}

// [0-9][0-9][0-9]: leftmost triples of ASCII digits.
void scan_digit_triples(const Fragment& f, Emitter& e) {
  auto digit = [&](size_t p) {
    uint32_t c = f.cpt(p);
    return c >= '0' && c <= '9';
  };
  size_t pos = f.ini;
  while (pos < f.end) {
    if (digit(pos) && digit(pos + 1) && digit(pos + 2)) {
      e.cut(pos);
      pos += 3;
      e.cut(pos);
    } else {
      ++pos;
    }
  }
  e.cut(f.end);
}

}  // namespace

std::vector<std::string> pretokenize(std::string_view text, PreTokenizer kind) {
  Text t;
  t.cpts = unicode::decode_utf8(text);
  if (t.cpts.empty()) return {};
  t.bits.resize(t.cpts.size());
  for (size_t i = 0; i < t.cpts.size(); ++i) t.bits[i] = unicode::flags(t.cpts[i]).bits;

  Lengths cut{t.cpts.size()};
  switch (kind) {
    case PreTokenizer::kGpt2:
      cut = split_each(t, cut, scan_gpt2);
      break;
    case PreTokenizer::kLlama3:
      cut = split_each(t, cut, scan_llama3<3>);
      break;
    case PreTokenizer::kQwen2:
      cut = split_each(t, cut, scan_llama3<1>);
      break;
    case PreTokenizer::kStarcoder:
      cut = split_each(t, cut, isolate(is_number, /*runs=*/false));
      cut = split_each(t, cut, scan_gpt2);
      break;
    case PreTokenizer::kDefault:
      cut = split_each(t, cut, isolate(is_default_punct, /*runs=*/true));
      cut = split_each(t, cut, scan_gpt2);
      cut = split_each(t, cut, isolate(is_number, /*runs=*/true));
      cut = split_each(t, cut, scan_digit_triples);
      break;
  }

  std::vector<std::string> words;
  words.reserve(cut.size());
  size_t start = 0;
  for (size_t len : cut) {
    std::string w;
    for (size_t i = start; i < start + len; ++i) unicode::append_utf8(w, t.cpts[i]);
    words.push_back(std::move(w));
    start += len;
  }
  return words;
}

}  // namespace tandem::core
