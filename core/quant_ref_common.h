#pragma once
// Helpers shared by the reference code (core/quant_ref_*.cpp); internal to
// core. Including this header also turns off FMA contraction for the rest of
// the including file: the references must reproduce ggml's bits, and the
// quantizers' searches compare float errors, so one fused multiply-add the
// compiler adds can flip a choice.
#include <cstring>

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace tandem::core::quant::ref::detail {

inline constexpr float kGroupMaxEps = 1e-15f;  // ggml's GROUP_MAX_EPS

// Round to nearest, ties to even, via the float magic number (ggml's
// nearest_int); valid for |fval| <= 2^22, which the callers guarantee.
inline int nearest_int(float fval) {
  const float val = fval + 12582912.f;
  int i;
  std::memcpy(&i, &val, sizeof(int));
  return (i & 0x007fffff) - 0x00400000;
}

}  // namespace tandem::core::quant::ref::detail
