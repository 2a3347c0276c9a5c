#pragma once
// Re-quantizes a GGUF model into another type or llama-quantize mix, using
// our reference kernels: every matrix is dequantized to f32 row by row and
// quantized again. Going through f32 compounds the rounding of the source
// type, so a Q4_0 file made into Q8_0 is no better than the Q4_0 it came
// from; the point is to get the layouts (tests, benchmarks, disk size), not
// to recover precision that is already gone.
#include <cstdint>
#include <optional>
#include <string>

#include "core/gguf_file.h"
#include "core/quant_mix.h"
#include "core/quant_types.h"

namespace tandem::core {

struct RequantizeOptions {
  // Exactly one of these: one type for every matrix, or a mix whose rules
  // pick each matrix's type (core/quant_mix.h).
  std::optional<quant::Type> type;
  std::optional<QuantMix> mix;
  int threads = 0;  // row workers per tensor; <= 0: all cores
};

struct RequantizeReport {
  int converted = 0;       // tensors whose type changed
  int kept = 0;            // tensors copied byte for byte (1-D, or already the target type)
  uint64_t bytes_in = 0;   // size of the input file
  uint64_t bytes_out = 0;  // size of the written output file
};

// Writes `out_path` (atomically: a failure leaves no file there) with the
// metadata of `in_path` in order, general.file_type set to the llama.cpp
// file type of the target (left out when the target type has none), and
// the tensors in file order: 1-D tensors (norms, biases) unchanged, every
// other tensor in the target type.
//
// Throws core::Error when both or neither of type/mix are set, in and out
// are the same file, the input cannot be opened, a mix is asked for and the
// hyperparameters it needs are missing, or a tensor cannot be converted
// (no dequantizer for its type, no quantizer for the target, a row that
// does not divide into the target's blocks); the message names the tensor.
//
// The whole output is built in memory before it is written (gguf::Writer
// holds every tensor), so this needs about the output's size in RAM.
// The hyperparameters llama-quantize's mix rules read, from a file's
// metadata (block count, heads, KV heads; a missing output.weight means tied
// embeddings). core::Error naming the missing key.
MixModel mix_model_of(const gguf::File& f);

RequantizeReport requantize_gguf(const std::string& in_path, const std::string& out_path,
                                 const RequantizeOptions& options);

}  // namespace tandem::core
