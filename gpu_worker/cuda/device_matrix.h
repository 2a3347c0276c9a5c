#pragma once
// A weight matrix resident on the device in its GGUF block format (no
// dequantized copy): `rows` output features, each a row of `cols` inputs
// stored as quantized blocks, rows `row_bytes` apart (ggml order, as on the host).
#include <cstddef>
#include <cstdint>

#include "core/quant_types.h"

namespace tandem::gpu {

struct DeviceMatrix {
  const void* data = nullptr;  // device pointer, [rows × row_bytes]
  core::quant::Type type = core::quant::Type::F32;
  int64_t rows = 0;
  int64_t cols = 0;
  size_t row_bytes = 0;
};

// Types the CUDA matrix kernels read (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, Q2_K..Q6_K, and the i-quants IQ1_S..IQ4_XS).
bool gemv_supports(core::quant::Type t);

}  // namespace tandem::gpu
