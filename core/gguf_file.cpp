// GGUF reader. The file is mapped read-only and parsed with a bounds-checked
// cursor: every count, length and offset read from the file is compared with
// the bytes that remain before it is used, so a corrupt or hostile file ends in
// a core::Error, never in a wild read or an allocation larger than the file
// could justify.
//
// Layout (v2/v3, little-endian):
//   magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv x { string key | u32 value_type | value }
//   n_tensors x { string name | u32 n_dims | u64 dims[n_dims] | u32 type | u64 offset }
//   padding to `alignment` | tensor data (offsets relative to here)
// A string is u64 length + bytes (no terminator); an array is u32 element type
// + u64 count + elements (an element that is itself an array carries its own
// type and count).
#include "core/gguf_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <sstream>

#include "core/error.h"

namespace tandem::core::gguf {

static_assert(std::endian::native == std::endian::little,
              "the GGUF reader maps little-endian files directly");

namespace {

constexpr uint32_t kMaxDims = 4;         // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;        // nested arrays; bounds recursion on hostile files
constexpr std::string_view kAlignmentKey = "general.alignment";

template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

bool is_known_value_type(uint32_t t) { return t <= static_cast<uint32_t>(ValueType::FLOAT64); }

bool is_integer_type(ValueType t) {
  switch (t) {
    case ValueType::UINT8: case ValueType::INT8: case ValueType::UINT16: case ValueType::INT16:
    case ValueType::UINT32: case ValueType::INT32: case ValueType::UINT64: case ValueType::INT64:
      return true;
    default:
      return false;
  }
}

bool is_float_type(ValueType t) { return t == ValueType::FLOAT32 || t == ValueType::FLOAT64; }

// Bytes a value of type `t` occupies in the file; 0 for variable-size types.
uint64_t fixed_size(ValueType t) {
  switch (t) {
    case ValueType::UINT8: case ValueType::INT8: case ValueType::BOOL: return 1;
    case ValueType::UINT16: case ValueType::INT16: return 2;
    case ValueType::UINT32: case ValueType::INT32: case ValueType::FLOAT32: return 4;
    case ValueType::UINT64: case ValueType::INT64: case ValueType::FLOAT64: return 8;
    default: return 0;
  }
}

// Fewest bytes one element of type `t` can take: used to reject counts that
// the rest of the file cannot possibly hold before anything is allocated.
uint64_t min_size(ValueType t) {
  if (t == ValueType::STRING) return 8;           // u64 length
  if (t == ValueType::ARRAY) return 4 + 8;        // u32 type + u64 count
  return fixed_size(t);
}

// A key or tensor name as it appears in messages: control bytes escaped so a
// message stays on one line, and cut short so a hostile 1 GB name does not
// make a 1 GB message.
std::string show(std::string_view s) {
  constexpr size_t kMax = 120;
  std::string out;
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c == 0x7f) {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > kMax) out += "...";
  return out;
}

// "array of string" / "uint32": how a value's type reads in error messages.
std::string describe(const Value& v) {
  if (const Array* a = v.as_array()) return cat("array of ", value_type_name(a->elem_type));
  return std::string(value_type_name(v.type));
}

}  // namespace

std::string_view value_type_name(ValueType t) {
  switch (t) {
    case ValueType::UINT8: return "uint8";
    case ValueType::INT8: return "int8";
    case ValueType::UINT16: return "uint16";
    case ValueType::INT16: return "int16";
    case ValueType::UINT32: return "uint32";
    case ValueType::INT32: return "int32";
    case ValueType::FLOAT32: return "float32";
    case ValueType::BOOL: return "bool";
    case ValueType::STRING: return "string";
    case ValueType::ARRAY: return "array";
    case ValueType::UINT64: return "uint64";
    case ValueType::INT64: return "int64";
    case ValueType::FLOAT64: return "float64";
  }
  return "unknown";
}

// ---- Value -------------------------------------------------------------------

std::optional<int64_t> Value::as_int() const {
  if (!is_integer_type(type)) return std::nullopt;
  if (const auto* u = std::get_if<uint64_t>(&data)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(*u);
  }
  if (const auto* i = std::get_if<int64_t>(&data)) return *i;
  return std::nullopt;
}

std::optional<double> Value::as_float() const {
  if (is_float_type(type)) {
    if (const auto* d = std::get_if<double>(&data)) return *d;
    return std::nullopt;
  }
  if (!is_integer_type(type)) return std::nullopt;
  if (const auto* u = std::get_if<uint64_t>(&data)) return static_cast<double>(*u);
  if (const auto* i = std::get_if<int64_t>(&data)) return static_cast<double>(*i);
  return std::nullopt;
}

std::optional<bool> Value::as_bool() const {
  if (type != ValueType::BOOL) return std::nullopt;
  if (const auto* b = std::get_if<bool>(&data)) return *b;
  return std::nullopt;
}

const std::string* Value::as_string() const {
  return type == ValueType::STRING ? std::get_if<std::string>(&data) : nullptr;
}

const Array* Value::as_array() const {
  return type == ValueType::ARRAY ? std::get_if<Array>(&data) : nullptr;
}

// ---- TensorInfo --------------------------------------------------------------

int64_t TensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // no overflow: checked when the file was opened
  return n;
}

int64_t TensorInfo::rows() const {
  int64_t n = 1;
  for (size_t i = 1; i < shape.size(); ++i) n *= shape[i];
  return n;
}

// ---- Parser ------------------------------------------------------------------

// Bounds-checked cursor over the mapping plus the parse steps. `ctx` names
// what is being read ("metadata key #5 ('tokenizer.ggml.tokens')") so a
// truncation error says where the file ended.
struct FileParser {
  File& f;
  const uint8_t* base;  // [size] bytes: the whole file
  uint64_t size;
  uint64_t pos = 0;
  std::string ctx = "header";

  explicit FileParser(File& file) : f(file), base(file.map_), size(file.size_) {}

  [[noreturn]] void fail(const std::string& msg) const { throw Error(cat(f.path_, ": ", msg)); }

  uint64_t remaining() const { return size - pos; }

  void need(uint64_t n) const {
    if (n > remaining()) {
      fail(cat("truncated while reading ", ctx, " (need ", n, " bytes at offset ", pos,
               ", file is ", size, " bytes)"));
    }
  }

  // Whether the rest of the file can hold `count` items of at least
  // `min_bytes` each. Division, not multiplication: no overflow.
  bool fits(uint64_t count, uint64_t min_bytes) const {
    return min_bytes == 0 || count <= remaining() / min_bytes;
  }
  [[noreturn]] void fail_count(const std::string& what, uint64_t count) const {
    fail(cat(what, " ", count, " cannot fit in the remaining ", remaining(),
             " bytes (truncated or corrupt file)"));
  }

  template <class T>
  T read() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, base + pos, sizeof(T));  // unaligned-safe
    pos += sizeof(T);
    return v;
  }

  std::string read_string() {
    const uint64_t n = read<uint64_t>();
    if (n > remaining()) {
      fail(cat("truncated while reading ", ctx, ": string length ", n, " at offset ", pos - 8,
               " exceeds the remaining ", remaining(), " bytes"));
    }
    std::string s(reinterpret_cast<const char*>(base + pos), static_cast<size_t>(n));
    pos += n;
    return s;
  }

  // `key` is only for messages. `depth` counts enclosing arrays.
  Value read_value(ValueType t, const std::string& key, int depth) {
    Value v;
    v.type = t;
    switch (t) {
      case ValueType::UINT8: v.data = uint64_t{read<uint8_t>()}; break;
      case ValueType::INT8: v.data = int64_t{read<int8_t>()}; break;
      case ValueType::UINT16: v.data = uint64_t{read<uint16_t>()}; break;
      case ValueType::INT16: v.data = int64_t{read<int16_t>()}; break;
      case ValueType::UINT32: v.data = uint64_t{read<uint32_t>()}; break;
      case ValueType::INT32: v.data = int64_t{read<int32_t>()}; break;
      case ValueType::UINT64: v.data = read<uint64_t>(); break;
      case ValueType::INT64: v.data = read<int64_t>(); break;
      case ValueType::FLOAT32: v.data = double{read<float>()}; break;
      case ValueType::FLOAT64: v.data = read<double>(); break;
      case ValueType::BOOL: v.data = read<uint8_t>() != 0; break;
      case ValueType::STRING: v.data = read_string(); break;
      case ValueType::ARRAY: v.data = read_array(key, depth + 1); break;
    }
    return v;
  }

  Array read_array(const std::string& key, int depth) {
    // Built only on failure: arrays of many small arrays are common enough.
    auto where = [&] { return cat("metadata key '", show(key), "': "); };
    if (depth > kMaxArrayDepth) fail(cat(where(), "arrays nested more than ", kMaxArrayDepth, " deep"));
    const uint32_t et = read<uint32_t>();
    if (!is_known_value_type(et)) fail(cat(where(), "unknown array element type ", et));
    const uint64_t n = read<uint64_t>();
    Array a;
    a.elem_type = static_cast<ValueType>(et);
    // Bounds memory by the file size: n elements need at least n*min_size bytes.
    if (!fits(n, min_size(a.elem_type))) fail_count(where() + "array length", n);
    a.items.reserve(static_cast<size_t>(n));
    for (uint64_t i = 0; i < n; ++i) a.items.push_back(read_value(a.elem_type, key, depth));
    return a;
  }

  void parse_header() {
    ctx = "header";
    if (size < 4) need(4);
    if (std::memcmp(base, "GGUF", 4) != 0) fail("bad magic (not a GGUF file)");
    pos = 4;
    const uint32_t version = read<uint32_t>();
    if (version != 2 && version != 3) {
      // A big-endian file shows its small version number byte-swapped.
      const bool swapped = (version & 0xFFFFu) == 0 && (version >> 24) != 0;
      fail(cat("unsupported GGUF version ", version,
               swapped ? " (big-endian files are not supported)" : ""));
    }
    f.version_ = version;
  }

  void parse_metadata(uint64_t n_kv) {
    for (uint64_t i = 0; i < n_kv; ++i) {
      ctx = cat("metadata key #", i);
      std::string key = read_string();
      ctx = cat("metadata key #", i, " ('", show(key), "')");
      const uint32_t t = read<uint32_t>();
      if (!is_known_value_type(t)) fail(cat("metadata key '", show(key), "': unknown value type ", t));
      if (f.kv_index_.count(key)) fail(cat("duplicate metadata key '", show(key), "'"));
      Value v = read_value(static_cast<ValueType>(t), key, 0);
      f.kv_index_.emplace(key, f.kv_.size());
      f.kv_.emplace_back(std::move(key), std::move(v));
    }
  }

  void apply_alignment() {
    const Value* v = f.find(kAlignmentKey);
    if (!v) return;
    const std::string where = cat("metadata key '", kAlignmentKey, "': ");
    if (v->type != ValueType::UINT32) fail(cat(where, "expected uint32, got ", describe(*v)));
    const uint64_t a = std::get<uint64_t>(v->data);
    if (a == 0 || !std::has_single_bit(a)) {
      fail(cat(where, "alignment ", a, " is not a nonzero power of two"));
    }
    f.alignment_ = a;
  }

  void parse_tensor_infos(uint64_t n_tensors) {
    f.tensors_.reserve(static_cast<size_t>(n_tensors));
    for (uint64_t i = 0; i < n_tensors; ++i) {
      ctx = cat("tensor info #", i);
      TensorInfo t;
      t.name = read_string();
      ctx = cat("tensor info #", i, " ('", show(t.name), "')");
      const std::string where = cat("tensor '", show(t.name), "': ");
      if (f.tensor_index_.count(t.name)) fail(cat("duplicate tensor name '", show(t.name), "'"));

      const uint32_t n_dims = read<uint32_t>();
      if (n_dims < 1 || n_dims > kMaxDims) {
        fail(cat(where, "n_dims ", n_dims, " is out of range (1..", kMaxDims, ")"));
      }
      int64_t n_elements = 1;
      for (uint32_t d = 0; d < n_dims; ++d) {
        const uint64_t raw = read<uint64_t>();
        if (raw == 0 || raw > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          fail(cat(where, "dimension ", d, " is ", static_cast<int64_t>(raw), " (must be positive)"));
        }
        const auto dim = static_cast<int64_t>(raw);
        if (n_elements > std::numeric_limits<int64_t>::max() / dim) {
          fail(cat(where, "dimensions overflow the element count"));
        }
        n_elements *= dim;
        t.shape.push_back(dim);
      }

      const uint32_t type_id = read<uint32_t>();
      const quant::TypeTraits* tr = quant::find_traits(type_id);
      if (!tr || tr->block_size <= 0 || tr->type_size == 0) {
        fail(cat(where, "unknown tensor type id ", type_id));
      }
      t.type = static_cast<quant::Type>(type_id);
      if (t.shape[0] % tr->block_size != 0) {
        fail(cat(where, "row length ", t.shape[0], " is not a multiple of the block size ",
                 tr->block_size, " of type ", tr->name));
      }
      // size = row_bytes * rows, checked for overflow; this is quant::row_bytes
      // computed without the risk of overflowing inside it.
      const auto blocks = static_cast<uint64_t>(t.shape[0] / tr->block_size);
      const auto rows = static_cast<uint64_t>(t.rows());
      const uint64_t type_size = tr->type_size;
      if (blocks > std::numeric_limits<uint64_t>::max() / type_size ||
          blocks * type_size > std::numeric_limits<uint64_t>::max() / rows) {
        fail(cat(where, "data size overflows"));
      }
      t.size_bytes = blocks * type_size * rows;
      t.offset = read<uint64_t>();  // relative to the data section until fixed up below
      f.tensor_index_.emplace(t.name, f.tensors_.size());
      f.tensors_.push_back(std::move(t));
    }
  }

  // Fixes tensor offsets up to file offsets and checks they lie in the file.
  void place_tensors() {
    const uint64_t a = f.alignment_;
    // pos <= size and a <= 2^31, so no overflow.
    f.data_offset_ = (pos + a - 1) & ~(a - 1);
    for (TensorInfo& t : f.tensors_) {
      const std::string where = cat("tensor '", show(t.name), "': ");
      const uint64_t rel = t.offset;
      if (rel % a != 0) fail(cat(where, "offset ", rel, " is not a multiple of the alignment ", a));
      if (f.data_offset_ > size || rel > size - f.data_offset_) {
        fail(cat(where, "data offset ", rel, " (file offset ", f.data_offset_, " + ", rel,
                 ") is past end of file (size ", size, ")"));
      }
      t.offset = f.data_offset_ + rel;
      if (t.size_bytes > size - t.offset) {
        fail(cat(where, "data [offset ", t.offset, ", ", t.size_bytes,
                 " bytes] extends past end of file (size ", size, ")"));
      }
      t.data = base + t.offset;
    }
  }

  void parse() {
    parse_header();
    ctx = "header";
    const uint64_t n_tensors = read<uint64_t>();
    const uint64_t n_kv = read<uint64_t>();
    // Each key needs >= 8 (length) + 4 (type) + 1 (smallest value) bytes; each
    // tensor info >= 8 (name length) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset).
    if (!fits(n_kv, 8 + 4 + 1)) fail_count("metadata key count", n_kv);
    if (!fits(n_tensors, 8 + 4 + 8 + 4 + 8)) fail_count("tensor count", n_tensors);
    parse_metadata(n_kv);
    apply_alignment();
    parse_tensor_infos(n_tensors);
    place_tensors();
  }
};

// ---- File --------------------------------------------------------------------

std::unique_ptr<File> File::open(const std::string& path) {
  std::unique_ptr<File> f(new File());
  f->path_ = path;

  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(cat(path, ": cannot open: ", std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    throw Error(cat(path, ": cannot stat: ", std::strerror(e)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(cat(path, ": not a regular file"));
  }
  f->size_ = static_cast<uint64_t>(st.st_size);
  if (f->size_ > 0) {  // mmap rejects length 0; an empty file fails in the parser
    void* m = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      throw Error(cat(path, ": cannot mmap: ", std::strerror(e)));
    }
    f->map_ = static_cast<const uint8_t*>(m);
  }
  ::close(fd);  // the mapping keeps the file alive

  static const uint8_t kEmpty = 0;
  FileParser p(*f);
  if (!p.base) p.base = &kEmpty;  // size 0: every read fails the bounds check
  p.parse();  // throws; ~File unmaps
  return f;
}

File::~File() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), size_);
}

const Value* File::find(std::string_view key) const {
  auto it = kv_index_.find(std::string(key));
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

namespace {
[[noreturn]] void type_error(const std::string& path, std::string_view key, std::string_view want,
                             const Value& got) {
  throw Error(cat(path, ": metadata key '", show(key), "': expected ", want, ", got ", describe(got)));
}
}  // namespace

std::optional<int64_t> File::get_int(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (!is_integer_type(v->type)) type_error(path_, key, "integer", *v);
  auto i = v->as_int();
  if (!i) throw Error(cat(path_, ": metadata key '", show(key), "': value does not fit in int64"));
  return i;
}

std::optional<double> File::get_float(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  auto d = v->as_float();
  if (!d) type_error(path_, key, "number", *v);
  return d;
}

std::optional<bool> File::get_bool(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  auto b = v->as_bool();
  if (!b) type_error(path_, key, "bool", *v);
  return b;
}

std::optional<std::string> File::get_string(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  const std::string* s = v->as_string();
  if (!s) type_error(path_, key, "string", *v);
  return *s;
}

std::vector<std::string> File::get_string_array(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return {};
  const Array* a = v->as_array();
  if (!a || a->elem_type != ValueType::STRING) type_error(path_, key, "array of string", *v);
  std::vector<std::string> out;  // [n]
  out.reserve(a->items.size());
  for (const Value& it : a->items) out.push_back(*it.as_string());
  return out;
}

std::vector<float> File::get_float_array(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return {};
  const Array* a = v->as_array();
  if (!a || !(is_float_type(a->elem_type) || is_integer_type(a->elem_type))) {
    type_error(path_, key, "array of float32", *v);
  }
  std::vector<float> out;  // [n]
  out.reserve(a->items.size());
  for (const Value& it : a->items) out.push_back(static_cast<float>(*it.as_float()));
  return out;
}

std::vector<int32_t> File::get_int_array(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return {};
  const Array* a = v->as_array();
  if (!a || !is_integer_type(a->elem_type)) type_error(path_, key, "array of int32", *v);
  std::vector<int32_t> out;  // [n]
  out.reserve(a->items.size());
  for (size_t i = 0; i < a->items.size(); ++i) {
    const auto x = a->items[i].as_int();
    if (!x || *x < std::numeric_limits<int32_t>::min() || *x > std::numeric_limits<int32_t>::max()) {
      throw Error(cat(path_, ": metadata key '", show(key), "': element ", i, " does not fit in int32"));
    }
    out.push_back(static_cast<int32_t>(*x));
  }
  return out;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& File::tensor(std::string_view name) const {
  const TensorInfo* t = find_tensor(name);
  if (!t) throw Error(cat("missing tensor ", show(name), " in ", path_));
  return *t;
}

}  // namespace tandem::core::gguf
