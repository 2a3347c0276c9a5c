// GGUF writer. Produces the layout gguf_file.cpp reads: header, metadata,
// tensor infos, zero padding to the alignment, then each tensor's data at an
// aligned offset, each padded to the alignment (as ggml writes it, so readers
// that load the whole padded data section also accept our files).
#include "core/gguf_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <sstream>

#include "core/error.h"

namespace tandem::core::gguf {

static_assert(std::endian::native == std::endian::little,
              "the GGUF writer stores host-order values as little-endian");

namespace {

constexpr int kMaxArrayDepth = 8;  // the reader's nesting limit
constexpr uint32_t kMaxDims = 4;   // GGML_MAX_DIMS
constexpr const char* kAlignmentKey = "general.alignment";

template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) & ~(a - 1); }

// Throws naming `key` when the payload of `v` does not match its type.
void check_value(const std::string& key, const Value& v, int depth) {
  auto bad = [&](const std::string& why) {
    throw Error(cat("gguf writer: metadata key '", key, "': ", why));
  };
  auto want_uint = [&](uint64_t max) {
    const auto* u = std::get_if<uint64_t>(&v.data);
    if (!u) bad(cat(value_type_name(v.type), " value must be stored as uint64_t"));
    if (*u > max) bad(cat("value ", *u, " out of range for ", value_type_name(v.type)));
  };
  auto want_int = [&](int64_t min, int64_t max) {
    const auto* i = std::get_if<int64_t>(&v.data);
    if (!i) bad(cat(value_type_name(v.type), " value must be stored as int64_t"));
    if (*i < min || *i > max) bad(cat("value ", *i, " out of range for ", value_type_name(v.type)));
  };
  switch (v.type) {
    case ValueType::UINT8: return want_uint(std::numeric_limits<uint8_t>::max());
    case ValueType::UINT16: return want_uint(std::numeric_limits<uint16_t>::max());
    case ValueType::UINT32: return want_uint(std::numeric_limits<uint32_t>::max());
    case ValueType::UINT64: return want_uint(std::numeric_limits<uint64_t>::max());
    case ValueType::INT8: return want_int(INT8_MIN, INT8_MAX);
    case ValueType::INT16: return want_int(INT16_MIN, INT16_MAX);
    case ValueType::INT32: return want_int(INT32_MIN, INT32_MAX);
    case ValueType::INT64:
      return want_int(std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max());
    case ValueType::FLOAT32:
    case ValueType::FLOAT64:
      if (!std::holds_alternative<double>(v.data)) bad("float value must be stored as double");
      return;
    case ValueType::BOOL:
      if (!std::holds_alternative<bool>(v.data)) bad("bool value must be stored as bool");
      return;
    case ValueType::STRING:
      if (!std::holds_alternative<std::string>(v.data)) bad("string value must be stored as std::string");
      return;
    case ValueType::ARRAY: {
      const auto* a = std::get_if<Array>(&v.data);
      if (!a) bad("array value must be stored as Array");
      if (depth + 1 > kMaxArrayDepth) bad(cat("arrays nested more than ", kMaxArrayDepth, " deep"));
      if (static_cast<uint32_t>(a->elem_type) > static_cast<uint32_t>(ValueType::FLOAT64)) {
        bad(cat("unknown array element type ", static_cast<uint32_t>(a->elem_type)));
      }
      for (size_t i = 0; i < a->items.size(); ++i) {
        if (a->items[i].type != a->elem_type) {
          bad(cat("array item ", i, " is ", value_type_name(a->items[i].type), ", array holds ",
                  value_type_name(a->elem_type)));
        }
        check_value(key, a->items[i], depth + 1);
      }
      return;
    }
  }
  bad(cat("unknown value type ", static_cast<uint32_t>(v.type)));
}

// Appends to a byte vector (serialize()).
struct VecSink {
  std::vector<uint8_t>& out;
  void put(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  }
};

// Buffered writes to a file descriptor (write()); throws on I/O error.
struct FdSink {
  int fd;
  const std::string& path;  // for messages
  std::vector<uint8_t> buf;  // [<= kCap] pending bytes
  static constexpr size_t kCap = 1 << 20;

  void raw_write(const uint8_t* p, size_t n) {
    while (n > 0) {
      const ssize_t w = ::write(fd, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        throw Error(cat(path, ": cannot write: ", std::strerror(errno)));
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
  }
  void put(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    if (buf.size() + n > kCap) {
      flush();
      if (n >= kCap) return raw_write(b, n);  // large tensor: skip the copy
    }
    buf.insert(buf.end(), b, b + n);
  }
  void flush() {
    raw_write(buf.data(), buf.size());
    buf.clear();
  }
};

// Tracks the position so padding can be computed.
template <class Sink>
struct Out {
  Sink& sink;
  uint64_t pos = 0;
  void bytes(const void* p, size_t n) {
    sink.put(p, n);
    pos += n;
  }
  template <class T>
  void pod(T v) { bytes(&v, sizeof v); }
  void str(const std::string& s) {
    pod<uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void pad_to(uint64_t a) {
    static const uint8_t zeros[64] = {};
    uint64_t n = align_up(pos, a) - pos;
    while (n > 0) {
      const size_t k = n < sizeof zeros ? static_cast<size_t>(n) : sizeof zeros;
      bytes(zeros, k);
      n -= k;
    }
  }
  void value(const Value& v) {
    switch (v.type) {
      case ValueType::UINT8: return pod(static_cast<uint8_t>(std::get<uint64_t>(v.data)));
      case ValueType::UINT16: return pod(static_cast<uint16_t>(std::get<uint64_t>(v.data)));
      case ValueType::UINT32: return pod(static_cast<uint32_t>(std::get<uint64_t>(v.data)));
      case ValueType::UINT64: return pod(std::get<uint64_t>(v.data));
      case ValueType::INT8: return pod(static_cast<int8_t>(std::get<int64_t>(v.data)));
      case ValueType::INT16: return pod(static_cast<int16_t>(std::get<int64_t>(v.data)));
      case ValueType::INT32: return pod(static_cast<int32_t>(std::get<int64_t>(v.data)));
      case ValueType::INT64: return pod(std::get<int64_t>(v.data));
      case ValueType::FLOAT32: return pod(static_cast<float>(std::get<double>(v.data)));
      case ValueType::FLOAT64: return pod(std::get<double>(v.data));
      case ValueType::BOOL: return pod(static_cast<uint8_t>(std::get<bool>(v.data) ? 1 : 0));
      case ValueType::STRING: return str(std::get<std::string>(v.data));
      case ValueType::ARRAY: {
        const Array& a = std::get<Array>(v.data);
        pod(static_cast<uint32_t>(a.elem_type));
        pod<uint64_t>(a.items.size());
        for (const Value& it : a.items) value(it);
        return;
      }
    }
  }
};

}  // namespace

void Writer::set(const std::string& key, Value v) {
  check_value(key, v, 0);
  if (key == kAlignmentKey) {
    if (v.type != ValueType::UINT32) {
      throw Error(cat("gguf writer: metadata key '", key, "': expected uint32, got ",
                      value_type_name(v.type)));
    }
    const uint64_t a = std::get<uint64_t>(v.data);
    if (a == 0 || !std::has_single_bit(a)) {
      throw Error(cat("gguf writer: alignment ", a, " is not a nonzero power of two"));
    }
    alignment_ = a;
  }
  auto it = kv_index_.find(key);
  if (it != kv_index_.end()) {
    kv_[it->second].second = std::move(v);
    return;
  }
  kv_index_.emplace(key, kv_.size());
  kv_.emplace_back(key, std::move(v));
}

void Writer::set_u32(const std::string& key, uint32_t v) { set(key, Value{ValueType::UINT32, uint64_t{v}}); }
void Writer::set_i32(const std::string& key, int32_t v) { set(key, Value{ValueType::INT32, int64_t{v}}); }
void Writer::set_u64(const std::string& key, uint64_t v) { set(key, Value{ValueType::UINT64, v}); }
void Writer::set_f32(const std::string& key, float v) { set(key, Value{ValueType::FLOAT32, double{v}}); }
void Writer::set_bool(const std::string& key, bool v) { set(key, Value{ValueType::BOOL, v}); }
void Writer::set_string(const std::string& key, std::string v) {
  set(key, Value{ValueType::STRING, std::move(v)});
}

void Writer::set_string_array(const std::string& key, const std::vector<std::string>& v) {
  Array a;
  a.elem_type = ValueType::STRING;
  a.items.reserve(v.size());
  for (const std::string& s : v) a.items.push_back(Value{ValueType::STRING, s});
  set_array(key, std::move(a));
}

void Writer::set_f32_array(const std::string& key, const std::vector<float>& v) {
  Array a;
  a.elem_type = ValueType::FLOAT32;
  a.items.reserve(v.size());
  for (float x : v) a.items.push_back(Value{ValueType::FLOAT32, double{x}});
  set_array(key, std::move(a));
}

void Writer::set_i32_array(const std::string& key, const std::vector<int32_t>& v) {
  Array a;
  a.elem_type = ValueType::INT32;
  a.items.reserve(v.size());
  for (int32_t x : v) a.items.push_back(Value{ValueType::INT32, int64_t{x}});
  set_array(key, std::move(a));
}

void Writer::set_array(const std::string& key, Array a) {
  set(key, Value{ValueType::ARRAY, std::move(a)});
}

void Writer::set_alignment(uint64_t alignment) {
  if (alignment == 0 || !std::has_single_bit(alignment) ||
      alignment > std::numeric_limits<uint32_t>::max()) {
    throw Error(cat("gguf writer: alignment ", alignment,
                    " is not a nonzero power of two that fits in uint32"));
  }
  set_u32(kAlignmentKey, static_cast<uint32_t>(alignment));
}

void Writer::add_tensor(const std::string& name, const std::vector<int64_t>& shape,
                        quant::Type type, const void* data, size_t bytes) {
  const std::string where = cat("gguf writer: tensor '", name, "': ");
  if (tensor_index_.count(name)) throw Error(cat("gguf writer: duplicate tensor name '", name, "'"));
  if (shape.empty() || shape.size() > kMaxDims) {
    throw Error(cat(where, shape.size(), " dimensions (must be 1..", kMaxDims, ")"));
  }
  int64_t rows = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] <= 0) throw Error(cat(where, "dimension ", i, " is ", shape[i], " (must be positive)"));
    if (i > 0) {
      if (rows > std::numeric_limits<int64_t>::max() / shape[i]) throw Error(cat(where, "shape overflows"));
      rows *= shape[i];
    }
  }
  const quant::TypeTraits* tr = quant::find_traits(static_cast<uint32_t>(type));
  if (!tr) throw Error(cat(where, "unknown tensor type id ", static_cast<uint32_t>(type)));
  if (shape[0] % tr->block_size != 0) {
    throw Error(cat(where, "row length ", shape[0], " is not a multiple of the block size ",
                    tr->block_size, " of type ", tr->name));
  }
  const size_t row = quant::row_bytes(type, shape[0]);
  if (rows != 0 && row > std::numeric_limits<size_t>::max() / static_cast<size_t>(rows)) {
    throw Error(cat(where, "data size overflows"));
  }
  const size_t want = row * static_cast<size_t>(rows);
  if (bytes != want) {
    throw Error(cat(where, "got ", bytes, " bytes of data, shape and type need ", want));
  }
  Tensor t{name, shape, type, {}};
  const auto* b = static_cast<const uint8_t*>(data);
  t.data.assign(b, b + bytes);
  tensor_index_.emplace(name, tensors_.size());
  tensors_.push_back(std::move(t));
}

template <class Sink>
void Writer::emit(Sink& sink, uint32_t version) const {
  Out<Sink> out{sink};
  out.bytes("GGUF", 4);
  out.pod(uint32_t{version});
  out.pod(static_cast<uint64_t>(tensors_.size()));
  out.pod(static_cast<uint64_t>(kv_.size()));
  for (const auto& [key, v] : kv_) {
    out.str(key);
    out.pod(static_cast<uint32_t>(v.type));
    out.value(v);
  }
  uint64_t off = 0;  // relative to the data section
  for (const Tensor& t : tensors_) {
    out.str(t.name);
    out.pod(static_cast<uint32_t>(t.shape.size()));
    for (int64_t d : t.shape) out.pod(static_cast<uint64_t>(d));
    out.pod(static_cast<uint32_t>(t.type));
    out.pod(off);
    off = align_up(off + t.data.size(), alignment_);
  }
  out.pad_to(alignment_);
  for (const Tensor& t : tensors_) {
    out.bytes(t.data.data(), t.data.size());
    out.pad_to(alignment_);  // data section starts aligned, so this aligns the next offset
  }
}

std::vector<uint8_t> Writer::serialize(uint32_t version) const {
  if (version != 2 && version != 3) throw Error(cat("gguf writer: unsupported GGUF version ", version));
  std::vector<uint8_t> bytes;
  VecSink sink{bytes};
  emit(sink, version);
  return bytes;
}

void Writer::write(const std::string& path, uint32_t version) const {
  if (version != 2 && version != 3) throw Error(cat("gguf writer: unsupported GGUF version ", version));
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(cat(tmp, ": cannot create: ", std::strerror(errno)));
  try {
    FdSink sink{fd, tmp, {}};
    sink.buf.reserve(FdSink::kCap);
    emit(sink, version);
    sink.flush();
    // Data must be on disk before the rename makes it visible under `path`.
    if (::fsync(fd) != 0) throw Error(cat(tmp, ": cannot sync: ", std::strerror(errno)));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw Error(cat(tmp, ": cannot close: ", std::strerror(e)));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw Error(cat(path, ": cannot rename ", tmp, " to it: ", std::strerror(e)));
  }
}

}  // namespace tandem::core::gguf
