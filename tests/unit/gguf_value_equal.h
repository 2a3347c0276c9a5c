#pragma once
// Deep equality of two GGUF metadata values for the tests: same type, same
// payload; floats compared bit for bit (a copy must not change them).
#include <cstring>
#include <string>
#include <variant>

#include "core/gguf_file.h"

namespace tandem::test {

inline bool same_gguf_value(const core::gguf::Value& a, const core::gguf::Value& b) {
  if (a.type != b.type || a.data.index() != b.data.index()) return false;
  if (const core::gguf::Array* x = a.as_array()) {
    const core::gguf::Array* y = b.as_array();
    if (x->elem_type != y->elem_type || x->items.size() != y->items.size()) return false;
    for (size_t i = 0; i < x->items.size(); ++i) {
      if (!same_gguf_value(x->items[i], y->items[i])) return false;
    }
    return true;
  }
  if (const auto* d = std::get_if<double>(&a.data)) {
    const double e = std::get<double>(b.data);
    return std::memcmp(d, &e, sizeof e) == 0;
  }
  if (const auto* u = std::get_if<uint64_t>(&a.data)) return *u == std::get<uint64_t>(b.data);
  if (const auto* i = std::get_if<int64_t>(&a.data)) return *i == std::get<int64_t>(b.data);
  if (const auto* x = std::get_if<bool>(&a.data)) return *x == std::get<bool>(b.data);
  return std::get<std::string>(a.data) == std::get<std::string>(b.data);
}

}  // namespace tandem::test
