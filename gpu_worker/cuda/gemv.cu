// Quantized GEMV and f16 row dequantization on the device (see gemv.h): the
// entry points, and the instances for the dense, legacy and K-quant formats.
// The kernels are templates in gemv_kernels.cuh (layout and rounding notes
// there); the i-quant instances live in gemv_iquants.cu, a separate
// translation unit so the two compile in parallel.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <string>

#include "core/error.h"
#include "core/quant_blocks.h"
#include "core/quant_dequant.h"
#include "core/quant_types.h"
#include "gpu_worker/cuda/gemv.h"
#include "gpu_worker/cuda/gemv_iquants.h"
#include "gpu_worker/cuda/gemv_kernels.cuh"

namespace tandem::gpu {
namespace {

namespace q = core::quant;
using detail::BF16Format;
using detail::F16Format;
using detail::F32Format;
using detail::QuantFormat;
using q::Type;

// Calls f(Format{}) for a supported type; false for the others.
template <class Fn>
bool with_format(Type t, Fn&& f) {
  switch (t) {
    case Type::F32:
      f(F32Format{});
      return true;
    case Type::F16:
      f(F16Format{});
      return true;
    case Type::BF16:
      f(BF16Format{});
      return true;
    case Type::Q4_0:
      f(QuantFormat<q::BlockQ4_0>{});
      return true;
    case Type::Q4_1:
      f(QuantFormat<q::BlockQ4_1>{});
      return true;
    case Type::Q5_0:
      f(QuantFormat<q::BlockQ5_0>{});
      return true;
    case Type::Q5_1:
      f(QuantFormat<q::BlockQ5_1>{});
      return true;
    case Type::Q8_0:
      f(QuantFormat<q::BlockQ8_0>{});
      return true;
    case Type::Q2_K:
      f(QuantFormat<q::BlockQ2_K>{});
      return true;
    case Type::Q3_K:
      f(QuantFormat<q::BlockQ3_K>{});
      return true;
    case Type::Q4_K:
      f(QuantFormat<q::BlockQ4_K>{});
      return true;
    case Type::Q5_K:
      f(QuantFormat<q::BlockQ5_K>{});
      return true;
    case Type::Q6_K:
      f(QuantFormat<q::BlockQ6_K>{});
      return true;
    default:
      return false;
  }
}

[[noreturn]] void throw_unsupported(Type t, const char* fn) {
  throw core::Error(std::string(fn) + ": unsupported weight type " + detail::type_label(t) +
                    " (the CUDA kernels read F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, "
                    "Q5_K, Q6_K, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M, IQ4_NL and IQ4_XS)");
}

}  // namespace

bool gemv_supports(Type t) {
  return with_format(t, [](auto) {}) || gemv_iquants_support(t);
}

void gemv(const DeviceMatrix& w, const float* x, float* y, int n_tokens, cudaStream_t stream) {
  if (n_tokens < 1 || n_tokens > kGemvMaxTokens)
    throw core::Error("gemv: n_tokens " + std::to_string(n_tokens) + " outside 1.." + std::to_string(kGemvMaxTokens));
  const bool ok = with_format(w.type, [&](auto fmt) { detail::gemv_as<decltype(fmt)>(w, x, y, n_tokens, stream); });
  if (!ok && !gemv_iquants(w, x, y, n_tokens, stream)) throw_unsupported(w.type, "gemv");
}

void dequant_rows_f16(const DeviceMatrix& w, int64_t row0, int64_t n_rows, __half* out, cudaStream_t stream) {
  const bool ok =
      with_format(w.type, [&](auto fmt) { detail::dequant_rows_f16_as<decltype(fmt)>(w, row0, n_rows, out, stream); });
  if (!ok && !dequant_rows_f16_iquants(w, row0, n_rows, out, stream)) throw_unsupported(w.type, "dequant_rows_f16");
}

}  // namespace tandem::gpu
