#pragma once
// Quantization type ids (identical to ggml's numbering, as stored in GGUF) and
// the per-type traits table. Block layouts live in quant_blocks.h.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace tandem::core::quant {

enum class Type : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21,
  IQ2_S = 22, IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28,
  IQ1_M = 29, BF16 = 30,
};

// Converts n values (n a multiple of block_size) from blocks to f32.
using ToFloatFn = void (*)(const void* src, float* dst, int64_t n);
// Quantizes n f32 values (n a multiple of block_size) into blocks.
using FromFloatFn = void (*)(const float* src, void* dst, int64_t n);
// Reference dot product of n weights (this type) with n activations already
// quantized to `vec_dot_type`. Returns the f32 sum.
using VecDotFn = float (*)(int64_t n, const void* w, const void* a);

struct TypeTraits {
  std::string_view name;      // "Q4_K", as ggml spells it
  int64_t block_size = 0;     // weights per block (1 for F32/F16/BF16)
  size_t type_size = 0;       // bytes per block
  bool quantized = false;
  ToFloatFn to_float = nullptr;      // nullptr: dequantization not supported
  FromFloatFn from_float = nullptr;  // nullptr: no reference quantizer
  VecDotFn vec_dot = nullptr;        // nullptr: no reference dot product
  Type vec_dot_type = Type::F32;     // activation format the dot expects
};

// nullptr when `id` is not a type we know (reader uses it to reject files).
const TypeTraits* find_traits(uint32_t id);
// Throws core::Error for an unknown type.
const TypeTraits& traits(Type t);
std::string_view type_name(Type t);
std::optional<Type> type_from_name(std::string_view name);  // "q8_0" or "Q8_0"

// Bytes of a row of n values; throws core::Error when n is not a multiple of
// the block size.
size_t row_bytes(Type t, int64_t n);

}  // namespace tandem::core::quant
