#include "core/unicode_props.h"

#include <algorithm>
#include <array>

namespace tandem::core::unicode {
namespace {

#include "core/unicode_tables.inc"

constexpr size_t kRuns = sizeof(kCategoryRuns) / sizeof(kCategoryRuns[0]);

bool is_white_space(uint32_t cpt) { return std::binary_search(std::begin(kWhiteSpace), std::end(kWhiteSpace), cpt); }

uint16_t lookup(uint32_t cpt) {
  if (cpt >= 0x110000) return kUndefined;
  // Last run whose start is <= cpt: entries are sorted by start (high bits).
  const uint32_t key = (cpt << 8) | 0xFF;
  const uint32_t* it = std::upper_bound(kCategoryRuns, kCategoryRuns + kRuns, key);
  uint16_t bits = static_cast<uint16_t>(*(it - 1) & 0xFF);
  if (is_white_space(cpt)) bits |= kWhitespace;
  return bits;
}

// ASCII dominates real text; a direct table spares the binary search there.
const std::array<uint16_t, 128>& ascii_table() {
  static const std::array<uint16_t, 128> table = [] {
    std::array<uint16_t, 128> t{};
    for (uint32_t c = 0; c < 128; ++c) t[c] = lookup(c);
    return t;
  }();
  return table;
}

enum class Scan { kOk, kBad, kTruncated };

// Strict (RFC 3629) look at the sequence starting at s[i]. kOk: *len is its
// length. kBad: *len is the maximal ill-formed subpart to replace. kTruncated:
// the input ends inside a sequence that was well-formed so far (*len bytes).
Scan scan_strict(std::string_view s, size_t i, size_t* len) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) {
    *len = 1;
    return Scan::kOk;
  }
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    if (b0 == 0xE0) lo = 0xA0;  // no overlongs
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    if (b0 == 0xF0) lo = 0x90;  // no overlongs
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    *len = 1;
    return Scan::kBad;
  }
  for (size_t k = 1; k <= need; ++k) {
    if (i + k >= s.size()) {
      *len = k;
      return Scan::kTruncated;
    }
    const auto b = static_cast<uint8_t>(s[i + k]);
    const uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) {
      *len = k;
      return Scan::kBad;
    }
  }
  *len = need + 1;
  return Scan::kOk;
}

}  // namespace

CptFlags flags(uint32_t cpt) {
  if (cpt < 128) return CptFlags{ascii_table()[cpt]};
  return CptFlags{lookup(cpt)};
}

const char* tables_version() { return kUnicodeVersion; }

std::vector<uint32_t> decode_utf8(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  const size_t n = s.size();
  auto cont = [&](size_t k) { return k < n && (static_cast<uint8_t>(s[k]) & 0xC0) == 0x80; };
  size_t i = 0;
  while (i < n) {
    const auto b0 = static_cast<uint8_t>(s[i]);
    // The lead byte's pattern alone picks the length; only the continuation
    // bytes' top bits are checked (llama.cpp's unicode_cpt_from_utf8).
    if (b0 < 0x80) {
      out.push_back(b0);
      i += 1;
    } else if ((b0 & 0xE0) == 0xC0 && cont(i + 1)) {
      out.push_back((uint32_t(b0 & 0x1F) << 6) | (uint8_t(s[i + 1]) & 0x3F));
      i += 2;
    } else if ((b0 & 0xF0) == 0xE0 && cont(i + 1) && cont(i + 2)) {
      out.push_back((uint32_t(b0 & 0x0F) << 12) | (uint32_t(uint8_t(s[i + 1]) & 0x3F) << 6) |
                    (uint8_t(s[i + 2]) & 0x3F));
      i += 3;
    } else if ((b0 & 0xF8) == 0xF0 && cont(i + 1) && cont(i + 2) && cont(i + 3)) {
      out.push_back((uint32_t(b0 & 0x07) << 18) | (uint32_t(uint8_t(s[i + 1]) & 0x3F) << 12) |
                    (uint32_t(uint8_t(s[i + 2]) & 0x3F) << 6) | (uint8_t(s[i + 3]) & 0x3F));
      i += 4;
    } else {
      out.push_back(kReplacement);
      i += 1;
    }
  }
  return out;
}

void append_utf8(std::string& out, uint32_t cpt) {
  if (cpt <= 0x7F) {
    out.push_back(static_cast<char>(cpt));
  } else if (cpt <= 0x7FF) {
    out.push_back(static_cast<char>(0xC0 | (cpt >> 6)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else if (cpt <= 0xFFFF) {
    out.push_back(static_cast<char>(0xE0 | (cpt >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else if (cpt <= 0x10FFFF) {
    out.push_back(static_cast<char>(0xF0 | (cpt >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else {
    append_utf8(out, kReplacement);
  }
}

size_t incomplete_utf8_tail(std::string_view s) {
  // A sequence is at most 4 bytes, so an unfinished one starts within the
  // last 3 bytes; find its lead byte and check what follows it.
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const size_t i = n - back;
    const auto b = static_cast<uint8_t>(s[i]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: keep looking
    size_t len = 0;
    return scan_strict(s, i, &len) == Scan::kTruncated ? back : 0;
  }
  return 0;
}

void append_sanitized_utf8(std::string& out, std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t len = 0;
    if (scan_strict(s, i, &len) == Scan::kOk) {
      out.append(s.substr(i, len));
    } else {
      append_utf8(out, kReplacement);
    }
    i += len;
  }
}

}  // namespace tandem::core::unicode
