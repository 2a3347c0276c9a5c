#pragma once
// SwiGLU with the same single-precision exp approximation llama.cpp's CPU
// backend uses on x86 (a range-reduced degree-5 polynomial, the algorithm of
// Arm's optimized-routines expf, ≤ 1.5 ulp). libm's expf differs from it in
// the last bit for about a quarter of inputs; after the Q8 quantization of
// the FFN activations such differences occasionally flip a rounding, which
// is enough to change a greedy token many steps later. Matching it keeps our
// logits bit-identical to llama.cpp's.
#include <cstdint>

namespace tandem::cpu {

// gate[i] = silu(gate[i]) * up[i] over n values.
void swiglu(float* gate, const float* up, int64_t n);

// The exp approximation itself (scalar form, same bits as the vector form).
float approx_expf(float x);

}  // namespace tandem::cpu
