#pragma once
// Two GGUF files can serve one model split across workers (--gpu-model /
// --cpu-model) only when they are the same network at different
// quantizations: same architecture and dimensions, same positional encoding,
// same vocabulary and tokenizer. Everything else (tensor types, file type,
// quantization version) may differ.
#include "core/gguf_file.h"

namespace tandem::core {

// Throws core::Error naming both files and the first difference found
// ("n_ff 1536 vs 2048", "tokenizer.ggml.tokens differ at id 17: 'a' vs 'b'").
void check_same_model(const gguf::File& a, const gguf::File& b);

}  // namespace tandem::core
