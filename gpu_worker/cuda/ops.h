#pragma once
// The non-matrix parts of a Llama layer on the device. Every buffer is a
// device pointer; shapes are in the comments. Each function launches on
// `stream` and throws core::Error on a launch failure.
#include <cuda_runtime.h>

#include <cstdint>

#include "core/quant_types.h"

namespace tandem::gpu {

// out[i] = x[i] / sqrt(mean(x[i]^2) + eps) * w for each of n rows of d values.
// x, out: [n × d]; w: [d].
void rms_norm(const float* x, const float* w, float* out, int n, int d, float eps, cudaStream_t stream);

// In place RoPE on n rows of `heads` heads of head_dim values each
// (x: [n × heads × head_dim]); row i rotates by position pos[i] (device int32
// [n]). neox = false: pairs (2j, 2j+1) (llama); true: pairs (j, j + dims/2)
// (qwen2). Only the first rope_dims values of a head rotate. freq_factors:
// device [rope_dims / 2] or null (llama3 rope_freqs divide the frequencies).
// theta_j = freq_scale * (pos * base^(-2j / rope_dims) / factor_j), computed
// in f32 exactly as the CPU's rope_angles (repeated multiplication, as ggml).
void rope(float* x, const int32_t* pos, int n, int heads, int head_dim, int rope_dims, float base, float freq_scale,
          const float* freq_factors, bool neox, cudaStream_t stream);

// gate[i] = silu(gate[i]) * up[i], i < count.
void swiglu(float* gate, const float* up, int64_t count, cudaStream_t stream);

// y[i] += x[i], i < count.
void add_inplace(float* y, const float* x, int64_t count, cudaStream_t stream);

// y[r][c] += bias[c] for n rows of d (qwen2 q/k/v biases).
void add_bias(float* y, const float* bias, int n, int d, cudaStream_t stream);

// KV cache rows on the device: the cache of one layer is
// [n_seq × n_ctx × kv_dim] values in `type` (F16, Q8_0 or Q4_0 blocks of 32
// along kv_dim), row (seq, pos) at ((seq * n_ctx) + pos) * row_bytes.
struct DeviceKv {
  void* k = nullptr;
  void* v = nullptr;
  core::quant::Type k_type = core::quant::Type::F16;
  core::quant::Type v_type = core::quant::Type::F16;
  size_t k_row_bytes = 0, v_row_bytes = 0;
  int32_t n_ctx = 0;
  int32_t kv_dim = 0;
};

// Stores n rows of K and V (k, v: [n × kv_dim] f32) at (seq[i], pos[i]),
// bytes identical to what the CPU's KV codec stores (F16: fp32_to_fp16;
// Q8_0: the x86 activation quantizer, id = 127/amax, round half to even;
// Q4_0: ggml's reference quantizer).
void kv_store(const DeviceKv& kv, const float* k, const float* v, const int32_t* seq, const int32_t* pos, int n,
              cudaStream_t stream);

// Causal attention for n query rows: row i of sequence seq[i] at position
// pos[i] attends to positions 0..pos[i] of that sequence. q: [n × n_head ×
// head_dim]; out: [n × n_head × head_dim]. GQA: query head h reads KV head
// h / (n_head / n_head_kv). scale = 1/sqrt(head_dim). scratch: device floats,
// at least attention_scratch_floats(n, n_head, n_ctx).
void attention(const DeviceKv& kv, const float* q, const int32_t* seq, const int32_t* pos, int n, int n_head,
               int n_head_kv, int head_dim, float scale, float* scratch, float* out, cudaStream_t stream);
size_t attention_scratch_floats(int n, int n_head, int n_ctx);

}  // namespace tandem::gpu
