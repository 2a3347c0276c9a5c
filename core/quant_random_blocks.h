#pragma once
// Rows of random but valid blocks for the formats Tandem cannot quantize to
// (the i-quants): every bit random — any pattern is a valid block — except
// the scale, set per block so the dequantized values have a chosen RMS. Used
// by synthetic models (tandem synth --type IQ2_XXS) and tests; llama.cpp runs
// such files as it runs any other.
#include <cstdint>
#include <random>

#include "core/quant_types.h"

namespace tandem::core::quant {

// True for the types random_valid_row makes: the nine i-quants.
bool random_rows_supported(Type t);

// dst: row_bytes(t, n) bytes, n a multiple of the block size. Throws
// core::Error for an unsupported type.
void random_valid_row(Type t, std::mt19937_64& rng, float rms, void* dst, int64_t n);

}  // namespace tandem::core::quant
