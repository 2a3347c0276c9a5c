#include "core/quant_random_blocks.h"

#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/quant_blocks.h"

namespace tandem::core::quant {

namespace {

// Writes the block's fp16 super-block scale. IQ1_M spreads it over the top
// nibbles of its four scale words; every other i-quant starts with it.
void set_scale(Type t, uint8_t* block, uint16_t h) {
  if (t == Type::IQ1_M) {
    auto* b = reinterpret_cast<BlockIQ1_M*>(block);
    for (int k = 0; k < 4; ++k) {
      const uint16_t w = static_cast<uint16_t>((le_u16(b->scales + 2 * k) & 0x0FFF) | (((h >> (4 * k)) & 0xF) << 12));
      b->scales[2 * k] = static_cast<uint8_t>(w);
      b->scales[2 * k + 1] = static_cast<uint8_t>(w >> 8);
    }
    return;
  }
  block[0] = static_cast<uint8_t>(h);
  block[1] = static_cast<uint8_t>(h >> 8);
}

}  // namespace

bool random_rows_supported(Type t) {
  switch (t) {
    case Type::IQ2_XXS:
    case Type::IQ2_XS:
    case Type::IQ2_S:
    case Type::IQ3_XXS:
    case Type::IQ3_S:
    case Type::IQ1_S:
    case Type::IQ1_M:
    case Type::IQ4_NL:
    case Type::IQ4_XS:
      return true;
    default:
      return false;
  }
}

void random_valid_row(Type t, std::mt19937_64& rng, float rms, void* dst, int64_t n) {
  if (!random_rows_supported(t))
    throw Error("random_valid_row: " + std::string(type_name(t)) + " is not a format made from random blocks");
  const TypeTraits& tr = traits(t);
  auto* out = static_cast<uint8_t*>(dst);
  std::vector<float> vals(static_cast<size_t>(tr.block_size));  // one block dequantized
  for (int64_t b = 0; b < n / tr.block_size; ++b) {
    uint8_t* block = out + b * tr.type_size;
    for (size_t i = 0; i < tr.type_size; ++i) block[i] = static_cast<uint8_t>(rng());
    // Dequantize at scale 1, then scale so the block's RMS is `rms`.
    set_scale(t, block, fp32_to_fp16(1.0f));
    tr.to_float(block, vals.data(), tr.block_size);
    double ss = 0;
    for (float v : vals) ss += static_cast<double>(v) * v;
    const double block_rms = std::sqrt(ss / static_cast<double>(vals.size()));
    set_scale(t, block, fp32_to_fp16(block_rms > 0 ? static_cast<float>(rms / block_rms) : rms));
  }
}

}  // namespace tandem::core::quant
