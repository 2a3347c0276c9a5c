#include "cpu_worker/ops.h"

#include <cmath>

namespace tandem::cpu {

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] * scale) * w[i];
}

void rope_angles(int32_t pos, const core::ModelConfig& c, const float* rope_freqs, float* cos_out, float* sin_out) {
  // theta_i = pos * scale * base^(-2i/d), advanced by repeated multiplication
  // in f32 as ggml does, so angles match to the last bit.
  const float theta_scale = std::pow(c.rope_freq_base, -2.0f / static_cast<float>(c.rope_dims));
  float theta_extrap = static_cast<float>(pos);
  for (int32_t i = 0; i < c.rope_dims / 2; ++i) {
    const float ff = rope_freqs ? rope_freqs[i] : 1.0f;
    const float theta = c.rope_freq_scale * (theta_extrap / ff);
    cos_out[i] = std::cos(theta);
    sin_out[i] = std::sin(theta);
    theta_extrap *= theta_scale;
  }
}

void rope_apply(float* head, const float* cos_v, const float* sin_v, int32_t rope_dims, core::RopeStyle style) {
  const int32_t half = rope_dims / 2;
  for (int32_t i = 0; i < half; ++i) {
    const int32_t a = style == core::RopeStyle::Normal ? 2 * i : i;
    const int32_t b = style == core::RopeStyle::Normal ? 2 * i + 1 : i + half;
    const float x0 = head[a], x1 = head[b];
    // Fused as GCC fuses ggml's rotation (built with -march=native and
    // contraction on): one rounding fewer than the plain expression, and
    // bit-identical rotated Q/K.
    head[a] = std::fma(x0, cos_v[i], -(x1 * sin_v[i]));
    head[b] = std::fma(x0, sin_v[i], x1 * cos_v[i]);
  }
}

void softmax(float* x, int64_t n) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const float e = std::exp(x[i] - mx);
    x[i] = e;
    sum += e;
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace tandem::cpu
