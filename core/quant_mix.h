#pragma once
// Quantization mixes: which type each tensor gets in a "Q4_K_M"-style file.
//
// A GGUF file type such as Q4_K_M is not one quantization type but a recipe:
// most weights get a base type (Q4_K) and some sensitive tensors get more
// bits (attn_v and ffn_down in some layers, the output projection). The recipe
// is whatever llama.cpp's `llama-quantize` does, since that tool makes nearly
// every file users download. We reproduce its rules here so that our synthetic
// test files look like real ones and the memory planner predicts the bytes of
// a real file from its hyperparameters alone.
//
// Source of the rules (facts read, code not copied): llama.cpp,
// src/llama-quant.cpp at ggml-org/llama.cpp commit
// 007dbbf3fd17eefe9b47fee45f48f7ba5e62b714 -- llama_tensor_get_type_impl (the
// per-category rules and its use_more_bits helper), tensor_type_fallback (rows
// that do not divide into the chosen type's blocks) and
// llama_ftype_get_default_type (the base type of each file type). Older
// llama.cpp (e.g. the copy at commit 5a44f27e2018e3563edffd182b54a5afd5378990)
// sent Q2_K and Q3_K rows of an awkward length to IQ4_NL instead of today's
// Q4_0; both are 18 bytes per 32 values, so sizes do not depend on which
// version made a file. The other rules read the same in both.
//
// Scope and assumptions:
//  * Dense llama-architecture models (Llama 2/3, and Qwen2, which llama.cpp
//    treats the same here). The Falcon, MoE (n_expert) and fused-QKV branches
//    are deliberately left out.
//  * No importance matrix, no --pure, no per-tensor overrides. With an imatrix
//    llama.cpp changes a few choices (IQ3_XXS attn_v and ffn_down, the first
//    eighth of ffn_down for IQ4_NL/IQ4_XS and Q4_0/Q5_0); files published
//    with one differ in exactly those tensors. The IQ1/IQ2 mixes require an
//    imatrix in llama.cpp but their rules do not depend on it.
//  * llama.cpp walks tensors in layer order and counts attn_v and ffn_down
//    tensors; for a dense model those counters are the layer index, and the
//    number of attn_v tensors is n_layer, so we use the layer directly.
//  * llama.cpp calls a llama model "70B" when it has 80 layers; that size
//    class bumps attn_v (8 query heads share it, so it is cheap) to Q5_K.
//  * 1-D tensors (norms, biases) stay F32 and never reach tensor_type; 2-D
//    tensors llama.cpp never quantizes (none in these architectures) are not
//    modelled.
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "core/quant_types.h"

namespace tandem::core {

// What a weight is for; the rules are keyed on this, not on the full name.
enum class TensorRole { TokenEmbd, Output, AttnQ, AttnK, AttnV, AttnOutput, FfnGate, FfnUp, FfnDown, Other };

// llama-quantize file types (LLAMA_FTYPE_MOSTLY_*), by their usual names.
enum class QuantMix {
  F16,
  BF16,
  Q8_0,
  Q4_0,
  Q4_1,
  Q5_0,
  Q5_1,
  Q6_K,
  Q2_K,
  Q2_K_S,
  Q3_K_S,
  Q3_K_M,
  Q3_K_L,
  Q4_K_S,
  Q4_K_M,
  Q5_K_S,
  Q5_K_M,
  IQ2_XXS,
  IQ2_XS,
  IQ2_S,
  IQ2_M,
  IQ3_XXS,
  IQ3_XS,
  IQ3_S,
  IQ3_M,
  IQ1_S,
  IQ1_M,
  IQ4_NL,
  IQ4_XS
};

std::string_view mix_name(QuantMix m);                      // "Q4_K_M"
std::optional<QuantMix> mix_from_name(std::string_view s);  // case-insensitive: "q4_k_m" works
std::vector<QuantMix> all_mixes();                          // in enum order
// The file type's base type, which every tensor without a special rule gets
// (Q4_K for Q4_K_M, IQ2_XS for IQ2_S, IQ3_S for IQ3_M, ...).
quant::Type mix_default_type(QuantMix m);
// llama.cpp's llama_ftype number for the mix (GGUF general.file_type): 15 for Q4_K_M.
uint32_t mix_file_type(QuantMix m);

// The hyperparameters the rules read.
struct MixModel {
  int32_t n_layer = 0;
  int32_t n_head = 0;
  int32_t n_head_kv = 0;     // GQA ratio n_head / n_head_kv decides attn_v upgrades
  bool tied_output = false;  // no output.weight: token_embd doubles as output and gets its type
};

// Role of a GGUF tensor name: "blk.3.attn_v.weight" -> AttnV with *layer = 3;
// "token_embd.weight", "output.weight" -> *layer = -1. Any other name
// ("blk.3.attn_norm.weight", "output_norm.weight", "blk.3.attn_q.bias") is
// Other, with the block index when it has one. `layer` may be null.
TensorRole role_of(std::string_view tensor_name, int32_t* layer);

// The type llama-quantize gives a 2-D weight of `role` in layer `i_layer`
// (-1, or anything, for token_embd/output/Other) whose rows hold `row_len`
// values (ne[0]). Includes the fallback for rows that do not divide into the
// chosen type's blocks. Throws core::Error for a layer outside [0, n_layer),
// a non-positive row length or model size, and for the row lengths
// llama-quantize itself refuses (e.g. Q8_0 or Q4_0 with a row not a multiple
// of 32).
quant::Type tensor_type(QuantMix m, TensorRole role, int32_t i_layer, const MixModel& model, int64_t row_len);

}  // namespace tandem::core
