// The i-quant instances of the GEMV and f16 row-dequantization kernels (see
// gemv_iquants.h, kernels in gemv_kernels.cuh). The block decoders are
// core/quant_dequant_iquants.h, which the host tests check bit for bit
// against the reference to_float; their table lookups read the __device__
// copies of core/quant_iq_tables.inc (core/quant_iq_tables.h).
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "core/quant_blocks.h"
#include "core/quant_dequant_iquants.h"
#include "core/quant_types.h"
#include "gpu_worker/cuda/gemv_iquants.h"
#include "gpu_worker/cuda/gemv_kernels.cuh"

namespace tandem::gpu {
namespace {

namespace q = core::quant;
using detail::QuantFormat;
using q::Type;

// 256-value super-blocks (16 chunks: two blocks per 32-chunk tile) and IQ4_NL's
// 32-value blocks (2 chunks); 2-byte aligned where a block holds fp16 or
// uint16 fields, which check_matrix enforces on the data and row stride.
static_assert(detail::Geometry<QuantFormat<q::BlockIQ2_XXS>>::kTileBlocks == 2);
static_assert(detail::Geometry<QuantFormat<q::BlockIQ4_NL>>::kTileBlocks == 16);
static_assert(alignof(q::BlockIQ2_XXS) == 2 && alignof(q::BlockIQ1_S) == 2 && alignof(q::BlockIQ4_XS) == 2);
static_assert(alignof(q::BlockIQ1_M) == 1, "IQ1_M keeps its fp16 scale in byte-addressed nibbles");

// Calls f(Format{}) for an i-quant type; false for the others.
template <class Fn>
bool with_iquant_format(Type t, Fn&& f) {
  switch (t) {
    case Type::IQ2_XXS:
      f(QuantFormat<q::BlockIQ2_XXS>{});
      return true;
    case Type::IQ2_XS:
      f(QuantFormat<q::BlockIQ2_XS>{});
      return true;
    case Type::IQ2_S:
      f(QuantFormat<q::BlockIQ2_S>{});
      return true;
    case Type::IQ3_XXS:
      f(QuantFormat<q::BlockIQ3_XXS>{});
      return true;
    case Type::IQ3_S:
      f(QuantFormat<q::BlockIQ3_S>{});
      return true;
    case Type::IQ1_S:
      f(QuantFormat<q::BlockIQ1_S>{});
      return true;
    case Type::IQ1_M:
      f(QuantFormat<q::BlockIQ1_M>{});
      return true;
    case Type::IQ4_NL:
      f(QuantFormat<q::BlockIQ4_NL>{});
      return true;
    case Type::IQ4_XS:
      f(QuantFormat<q::BlockIQ4_XS>{});
      return true;
    default:
      return false;
  }
}

}  // namespace

bool gemv_iquants_support(Type t) {
  return with_iquant_format(t, [](auto) {});
}

bool gemv_iquants(const DeviceMatrix& w, const float* x, float* y, int n_tokens, cudaStream_t stream) {
  return with_iquant_format(w.type, [&](auto fmt) { detail::gemv_as<decltype(fmt)>(w, x, y, n_tokens, stream); });
}

bool dequant_rows_f16_iquants(const DeviceMatrix& w, int64_t row0, int64_t n_rows, __half* out, cudaStream_t stream) {
  return with_iquant_format(
      w.type, [&](auto fmt) { detail::dequant_rows_f16_as<decltype(fmt)>(w, row0, n_rows, out, stream); });
}

}  // namespace tandem::gpu
