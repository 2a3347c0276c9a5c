#pragma once
// Element-wise and per-row operations of the Llama block, in f32. The float
// arithmetic follows ggml's CPU order where it matters for identical argmax
// (sums of squares and softmax sums in double).
#include <cstdint>

#include "core/model_config.h"

namespace tandem::cpu {

// y[i] = x[i] / sqrt(mean(x²) + eps) * w[i], for one row of n.
void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps);

// Precomputed rotation angles for one position (cos/sin per rotated pair).
// rope_freqs: llama3 per-pair frequency divisors, or null.
void rope_angles(int32_t pos, const core::ModelConfig& c, const float* rope_freqs, float* cos_out, float* sin_out);

// Rotates one head vector (head_dim values) in place by precomputed angles
// (rope_dims/2 pairs).
void rope_apply(float* head, const float* cos_v, const float* sin_v, int32_t rope_dims, core::RopeStyle style);

// In-place numerically stable softmax over n values; returns nothing.
void softmax(float* x, int64_t n);

}  // namespace tandem::cpu
