#pragma once
// Every tensor of a model with the bytes it occupies: read from a GGUF file
// (exact: the file's own tensor sizes), or derived from a shape and a
// llama-quantize mix (the per-tensor rules of core/quant_mix), or from a
// uniform bits-per-weight budget in the EXL2 manner.
#include <cstdint>
#include <string>
#include <vector>

#include "core/gguf_file.h"
#include "core/plan/model_shape.h"
#include "core/quant_mix.h"

namespace tandem::core::plan {

struct PlannedTensor {
  std::string name;    // GGUF tensor name ("blk.3.attn_v.weight")
  int32_t layer = -1;  // block index; -1 for token_embd, output, output_norm, rope_freqs
  int64_t ne0 = 0;     // row length (values)
  int64_t rows = 0;    // product of the other dimensions
  std::string type;    // "Q4_K", "F32", or "2.40bpw"
  uint64_t bytes = 0;
};

struct Inventory {
  std::vector<PlannedTensor> tensors;
  uint64_t total_bytes() const;
  uint64_t layer_bytes(int32_t layer) const;        // tensors of block `layer`
  uint64_t named_bytes(const std::string& name) const;  // 0 when absent
  // The head a stage owning the output needs: output_norm plus output.weight,
  // or token_embd when the output is tied.
  uint64_t head_bytes() const;
  uint64_t embedding_bytes() const { return named_bytes("token_embd.weight"); }
  uint64_t global_bytes() const;  // rope_freqs and anything else outside a block but not embd/head
};

Inventory inventory_from_gguf(const gguf::File& file);

// Tensor names and shapes as llama.cpp's converter writes them for `shape`,
// types as llama-quantize gives them in `mix`. Throws core::Error when a row
// length cannot be quantized (as tensor_type does).
Inventory inventory_from_mix(const ModelShape& shape, QuantMix mix);

// EXL2-style: every layer matrix at `bpw` bits per weight, the output head at
// `head_bpw` (ExLlamaV2's default is 6), the token embedding F16.
Inventory inventory_from_bpw(const ModelShape& shape, double bpw, double head_bpw = 6.0);

// Values per bytes × 8 over the seven layer matrices, embedding and head
// (norms and biases excluded): what "Q4_K_M ≈ 4.8 bpw" means.
double bits_per_weight(const Inventory& inv, const ModelShape& shape);

}  // namespace tandem::core::plan
