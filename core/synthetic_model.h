#pragma once
// Writes small or realistically shaped Llama GGUF files with random weights,
// for tests and benchmarks (e.g. one Llama-3-70B layer: d 8192, ffn 28672,
// 64 heads / 8 KV heads). The vocabulary is GPT-2 byte-level (256 byte
// tokens plus <|endoftext|>, optionally padded with control tokens to a
// realistic size), so the files load and run end to end, in llama.cpp too.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/quant_mix.h"
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
  // When set, every matrix gets the type llama-quantize gives it in this mix
  // (weight_type and embd_type are then unused) and the output is untied.
  std::optional<QuantMix> mix;
  // Vocabulary size; 0 = the 257 byte-level tokens. More pads the vocabulary
  // with control tokens "<|pad_N|>" (never produced from text), so the
  // embedding and output head have realistic sizes.
  int32_t n_vocab = 0;
  int threads = 0;  // generation threads; 0 = all cores
  // llama3-style per-pair RoPE frequency divisors ("rope_freqs.weight",
  // head_dim/2 values); empty: no such tensor.
  std::vector<float> rope_freqs;
  uint64_t seed = 1;
};

// Throws core::Error when a dimension does not fit the chosen types' blocks
// or the file cannot be written. The weights depend only on the spec (seed
// included), not on the thread count.
void write_synthetic_model(const std::string& path, const SyntheticModelSpec& spec);

}  // namespace tandem::core
