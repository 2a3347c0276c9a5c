#pragma once
// Read-only, memory-mapped GGUF (v2 and v3). Every count, offset and size is
// checked when the file is opened; a bad file throws core::Error whose message
// names the key or tensor at fault. Tensor data are views into the mapping:
// nothing is copied, and pages of tensors nobody reads are never faulted in.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "core/quant_types.h"

namespace tandem::core::gguf {

enum class ValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5,
  FLOAT32 = 6, BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
std::string_view value_type_name(ValueType t);

struct Value;
struct Array {
  ValueType elem_type = ValueType::UINT8;
  std::vector<Value> items;  // nested arrays allowed
};

// One metadata value. Scalars are widened for storage; `type` keeps the type
// as written in the file.
struct Value {
  ValueType type = ValueType::UINT8;
  std::variant<uint64_t, int64_t, double, bool, std::string, Array> data;

  std::optional<int64_t> as_int() const;     // any integer type (u64 > INT64_MAX → nullopt)
  std::optional<double> as_float() const;    // float or integer types
  std::optional<bool> as_bool() const;
  const std::string* as_string() const;
  const Array* as_array() const;
};

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;  // ggml order: shape[0] is the contiguous (row) dimension
  quant::Type type = quant::Type::F32;
  uint64_t offset = 0;         // from the start of the file
  uint64_t size_bytes = 0;
  const uint8_t* data = nullptr;  // into the mapping, size_bytes long

  int64_t n_elements() const;
  int64_t rows() const;  // product of shape[1..]
};

class File {
 public:
  // Throws core::Error (message names the file and the problem).
  static std::unique_ptr<File> open(const std::string& path);
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t file_size() const { return size_; }
  uint64_t data_offset() const { return data_offset_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
  const Value* find(std::string_view key) const;
  // Typed getters: nullopt when absent; throw core::Error naming the key when
  // present with the wrong type.
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::string> get_string(std::string_view key) const;
  // Arrays (throw naming the key on element type mismatch; empty when absent).
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<float> get_float_array(std::string_view key) const;
  std::vector<int32_t> get_int_array(std::string_view key) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;
  // Throws core::Error "missing tensor NAME in FILE".
  const TensorInfo& tensor(std::string_view name) const;

 private:
  File() = default;
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t size_ = 0;
  uint64_t data_offset_ = 0;
  const uint8_t* map_ = nullptr;
  std::vector<std::pair<std::string, Value>> kv_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
  friend struct FileParser;
};

}  // namespace tandem::core::gguf
