#pragma once
// Builds a GGUF file (v2 or v3) in memory and writes it atomically. Keys and
// tensors keep the order they were first added in; setting an existing key
// replaces its value in place. Everything is validated when added, so write()
// only fails on I/O.
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/gguf_file.h"
#include "core/quant_types.h"

namespace tandem::core::gguf {

class Writer {
 public:
  // Throws core::Error when `v` is inconsistent (payload not matching `type`,
  // an integer out of range for its type, array items not of `elem_type`).
  // "general.alignment" must be a uint32 power of two and also sets the
  // alignment used for layout.
  void set(const std::string& key, Value v);

  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_u64(const std::string& key, uint64_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, std::string v);
  void set_string_array(const std::string& key, const std::vector<std::string>& v);
  void set_f32_array(const std::string& key, const std::vector<float>& v);
  void set_i32_array(const std::string& key, const std::vector<int32_t>& v);
  void set_array(const std::string& key, Array a);

  // Nonzero power of two fitting in uint32; stored as "general.alignment".
  // Without a call the GGUF default, 32, is used and no key is written.
  void set_alignment(uint64_t alignment);
  uint64_t alignment() const { return alignment_; }

  // `shape` in ggml order (shape[0] is the row length), 1..4 positive dims.
  // Copies `bytes` bytes from `data`; throws core::Error unless
  // bytes == quant::row_bytes(type, shape[0]) * rows, or when the name is taken.
  void add_tensor(const std::string& name, const std::vector<int64_t>& shape, quant::Type type,
                  const void* data, size_t bytes);

  // The whole file. version must be 2 or 3.
  std::vector<uint8_t> serialize(uint32_t version = 3) const;
  // Writes to path + ".tmp", then renames over `path`, so a failure never
  // leaves a partial file at `path`. Throws core::Error on I/O failure.
  void write(const std::string& path, uint32_t version = 3) const;

  const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
  size_t tensor_count() const { return tensors_.size(); }

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> shape;  // ggml order, 1..4 dims
    quant::Type type;
    std::vector<uint8_t> data;   // [row_bytes * rows]
  };
  template <class Sink>
  void emit(Sink& out, uint32_t version) const;

  uint64_t alignment_ = 32;
  std::vector<std::pair<std::string, Value>> kv_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::vector<Tensor> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace tandem::core::gguf
