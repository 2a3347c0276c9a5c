#include "cpu_worker/kv_cache.h"

#include <string>

#include "core/error.h"
#include "cpu_worker/attention.h"

namespace tandem::cpu {

namespace quant = core::quant;

void check_kv_type(quant::Type t, int32_t head_dim, const char* which) {
  try {
    kv_row_codec(t);  // the types a cache row can be stored in
  } catch (const core::Error&) {
    throw core::Error(std::string("cache type ") + which + " = " + std::string(quant::type_name(t)) +
                      " is not supported (use f32, f16, bf16, q8_0, q4_0, q4_1, q5_0 or q5_1)");
  }
  const auto& tr = quant::traits(t);
  if (head_dim % tr.block_size != 0)
    throw core::Error(std::string("cache type ") + which + " = " + std::string(tr.name) + " needs a head size that is a multiple of " +
                      std::to_string(tr.block_size) + " (model has " + std::to_string(head_dim) + ")");
}

KvCache::KvCache(const core::ModelConfig& c, int32_t n_layers, KvCacheConfig kv) : cfg_(kv), n_layers_(n_layers) {
  check_kv_type(kv.k_type, c.head_dim, "K");
  check_kv_type(kv.v_type, c.head_dim, "V");
  if (kv.n_ctx <= 0 || kv.n_seq <= 0) throw core::Error("KV cache needs a positive context size and sequence count");
  k_head_bytes_ = quant::row_bytes(kv.k_type, c.head_dim);
  v_head_bytes_ = quant::row_bytes(kv.v_type, c.head_dim);
  k_row_bytes_ = k_head_bytes_ * c.n_head_kv;
  v_row_bytes_ = v_head_bytes_ * c.n_head_kv;
  const size_t rows = total_rows();
  if (rows > 0) {
    k_.reset(new uint8_t[rows * k_row_bytes_]);
    v_.reset(new uint8_t[rows * v_row_bytes_]);
  }
}

}  // namespace tandem::cpu
