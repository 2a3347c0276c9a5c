#pragma once
// Writes small or realistically shaped Llama GGUF files with random weights,
// for tests and benchmarks (e.g. one Llama-3-70B layer: d 8192, ffn 28672,
// 64 heads / 8 KV heads). The vocabulary is GPT-2 byte-level (256 byte
// tokens plus <|endoftext|>), so the files load and run end to end.
#include <cstdint>
#include <string>
#include <vector>

#include "core/quant_types.h"

namespace tandem::core {

struct SyntheticModelSpec {
  std::string arch = "llama";  // "llama" or "qwen2" (adds Q/K/V biases)
  int32_t n_layer = 2;
  int32_t n_embd = 256;
  int32_t n_ff = 512;
  int32_t n_head = 4;
  int32_t n_head_kv = 2;
  int32_t n_ctx_train = 2048;
  float rope_freq_base = 10000.0f;
  quant::Type weight_type = quant::Type::Q4_0;  // layer matrices
  quant::Type embd_type = quant::Type::Q8_0;    // token embedding (and tied head)
  bool tied_output = true;
  // llama3-style per-pair RoPE frequency divisors ("rope_freqs.weight",
  // head_dim/2 values); empty: no such tensor.
  std::vector<float> rope_freqs;
  uint64_t seed = 1;
};

// Throws core::Error when a dimension does not fit the chosen types' blocks
// or the file cannot be written.
void write_synthetic_model(const std::string& path, const SyntheticModelSpec& spec);

}  // namespace tandem::core
