#pragma once
// The KV cache of the layers one process owns. Rows are stored in a quantized
// row format chosen per run (like llama.cpp's --cache-type-k/-v): F16, BF16,
// F32, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/model_config.h"
#include "core/quant_types.h"

namespace tandem::cpu {

struct KvCacheConfig {
  core::quant::Type k_type = core::quant::Type::F16;
  core::quant::Type v_type = core::quant::Type::F16;
  int32_t n_ctx = 4096;  // positions per sequence
  int32_t n_seq = 1;     // sequence slots
};

// Throws core::Error naming the type when it cannot hold a KV cache of this
// head size (unknown, no quantizer, or head_dim not a multiple of its block).
void check_kv_type(core::quant::Type t, int32_t head_dim, const char* which);

class KvCache {
 public:
  KvCache(const core::ModelConfig& cfg, int32_t n_layers, KvCacheConfig kv);

  const KvCacheConfig& config() const { return cfg_; }
  // Layout per cache: [n_layers][n_seq][n_ctx] rows, each row = kv_dim values
  // = n_head_kv head slices of head_dim values, in k_type / v_type blocks.
  uint8_t* k_row(int32_t layer, int32_t seq, int32_t pos) { return k_.get() + index(layer, seq, pos) * k_row_bytes_; }
  uint8_t* v_row(int32_t layer, int32_t seq, int32_t pos) { return v_.get() + index(layer, seq, pos) * v_row_bytes_; }
  size_t k_head_bytes() const { return k_head_bytes_; }  // one head's slice of a K row
  size_t v_head_bytes() const { return v_head_bytes_; }
  size_t bytes() const { return total_rows() * (k_row_bytes_ + v_row_bytes_); }

 private:
  size_t index(int32_t layer, int32_t seq, int32_t pos) const {
    return (static_cast<size_t>(layer) * cfg_.n_seq + seq) * cfg_.n_ctx + pos;
  }
  size_t total_rows() const { return static_cast<size_t>(n_layers_) * cfg_.n_seq * cfg_.n_ctx; }

  KvCacheConfig cfg_;
  int32_t n_layers_ = 0;
  size_t k_row_bytes_ = 0, v_row_bytes_ = 0, k_head_bytes_ = 0, v_head_bytes_ = 0;
  // Left uninitialized on purpose: a position is written before it is read,
  // and untouched pages of a large context cost no RAM.
  std::unique_ptr<uint8_t[]> k_, v_;
};

}  // namespace tandem::cpu
