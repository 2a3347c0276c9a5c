// The non-matrix parts of a Llama layer on the device (see ops.h).
//
// Every kernel computes the same function as the CPU engine (cpu_worker/ops,
// swiglu, attention, kv_cache) up to the order of float sums; where the CPU
// result is defined bit for bit (the KV row quantizers, the RoPE angles'
// f32 recurrence, the rotation's fused multiply-add) the device code spells
// out the same operations with explicitly rounded intrinsics (__fmul_rn,
// __fadd_rn), so nvcc's default multiply-add contraction cannot change a
// rounding. This file must be built without --use_fast_math: expf, sinf,
// cosf, sqrtf and the divisions rely on the accurate (IEEE) versions.
#include "gpu_worker/cuda/ops.h"

#include <cmath>
#include <initializer_list>
#include <string>

#include "core/error.h"
#include "core/plan/stage_footprint.h"
#include "core/quant_blocks.h"
#include "gpu_worker/cuda/cuda_error.h"

namespace tandem::gpu {

namespace quant = core::quant;
using quant::Type;

namespace {

constexpr int kWarp = 32;

// ---------------------------------------------------------------------------
// Launch helpers.

constexpr int kElementwiseThreads = 256;
// Grid-stride kernels never need more blocks than this to fill the device.
constexpr int64_t kMaxElementwiseBlocks = 65535LL * 8;

int elementwise_blocks(int64_t count) {
  const int64_t b = (count + kElementwiseThreads - 1) / kElementwiseThreads;
  return static_cast<int>(b < kMaxElementwiseBlocks ? b : kMaxElementwiseBlocks);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// ---------------------------------------------------------------------------
// rms_norm: one block per row. Per-thread f32 partial sums of x², warp
// shuffles, then one value per warp through shared memory. The CPU sums the
// (f32) squares in double; the difference is summation order only.

constexpr int kNormThreads = 256;

__global__ void rms_norm_kernel(const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ out,
                                int d, float eps) {
  const int64_t row = blockIdx.x;
  const float* xr = x + row * d;
  float* yr = out + row * d;
  float s = 0.0f;
  for (int c = threadIdx.x; c < d; c += blockDim.x) s += xr[c] * xr[c];
  s = warp_sum(s);
  __shared__ float partial[kNormThreads / kWarp];
  __shared__ float row_scale;
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  if (lane == 0) partial[warp] = s;
  __syncthreads();
  if (warp == 0) {
    const int n_warps = blockDim.x / kWarp;
    float t = lane < n_warps ? partial[lane] : 0.0f;
    t = warp_sum(t);
    if (lane == 0) {
      const float mean = t / static_cast<float>(d);
      row_scale = 1.0f / sqrtf(mean + eps);
    }
  }
  __syncthreads();
  const float scale = row_scale;
  // (x * scale) * w: two separately rounded products, as the CPU.
  for (int c = threadIdx.x; c < d; c += blockDim.x) yr[c] = __fmul_rn(__fmul_rn(xr[c], scale), w[c]);
}

// ---------------------------------------------------------------------------
// RoPE: one thread per rotated pair. The angle follows cpu::rope_angles step
// for step: theta_scale = powf(base, -2/rope_dims) (computed on the host with
// the CPU's very expression and passed in), theta_extrap = pos advanced by j
// f32 multiplications by theta_scale, divided by the llama3 factor, times the
// linear scale; then cosf/sinf (accurate versions) and the CPU's fused rotation.

__global__ void rope_kernel(float* __restrict__ x, const int32_t* __restrict__ pos, int64_t total_pairs, int heads,
                            int head_dim, int half, float theta_scale, float freq_scale,
                            const float* __restrict__ freq_factors, bool neox) {
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total_pairs;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int j = static_cast<int>(t % half);
    const int64_t head = t / half;  // row * heads + h
    const int64_t row = head / heads;
    float theta_extrap = static_cast<float>(pos[row]);
    for (int k = 0; k < j; ++k) theta_extrap = __fmul_rn(theta_extrap, theta_scale);
    const float ff = freq_factors ? freq_factors[j] : 1.0f;
    // freq_scale * (theta_extrap / ff), the CPU's expression.
    const float theta = __fmul_rn(freq_scale, __fdiv_rn(theta_extrap, ff));
    const float c = cosf(theta);
    const float s = sinf(theta);
    float* hp = x + head * head_dim;
    const int a = neox ? j : 2 * j;
    const int b = neox ? j + half : 2 * j + 1;
    const float x0 = hp[a], x1 = hp[b];
    hp[a] = fmaf(x0, c, -__fmul_rn(x1, s));
    hp[b] = fmaf(x0, s, __fmul_rn(x1, c));
  }
}

// ---------------------------------------------------------------------------
// Element-wise kernels.

__global__ void swiglu_kernel(float* __restrict__ gate, const float* __restrict__ up, int64_t count) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    gate[i] = __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), up[i]);
  }
}

__global__ void add_kernel(float* __restrict__ y, const float* __restrict__ x, int64_t count) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] += x[i];
}

__global__ void add_bias_kernel(float* __restrict__ y, const float* __restrict__ bias, int64_t count, int d) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] += bias[i % d];
}

// ---------------------------------------------------------------------------
// KV row formats. The per-block quantizers below are the device twins of the
// host's KV codec (cpu::kv_row_codec(t).store), written in the same
// operations and order so the bytes agree bit for bit:
//  * Q8_0: the host stores K/V rows with cpu::quantize_activations, i.e.
//    ggml's x86 quantize_row_q8_0 (core/quant_ref_legacy.cpp,
//    quantize_act_block32): d = amax / 127, id = 127 / amax, q = round to
//    nearest even (_mm256_round_ps) of x * id.
//  * Q4_0: ggml's reference quantize_row_q4_0_ref (from_float_q4_0):
//    d = max / -8 (max = the value of largest magnitude, first on ties),
//    id = 1 / d, q = min(15, (int)(x * id + 8.5f)).
//  * F16 / BF16: core::quant::fp32_to_fp16 / fp32_to_bf16 (integer code,
//    bit-exact on host and device). F32: a copy.

// C's (int)v for in-range values; out-of-range and NaN clamp (host twin:
// trunc_to_int in core/quant_ref_legacy.cpp).
__device__ __forceinline__ int trunc_to_int_dev(float v) {
  if (!(v > -1073741824.0f)) return v != v ? 0 : -1073741824;
  if (v > 1073741824.0f) return 1073741824;
  return static_cast<int>(v);
}

// _mm256_round_ps(_MM_ROUND_NEAREST) + cvtps + saturating packs (host twin:
// nearest_even_to_i8).
__device__ __forceinline__ int8_t nearest_even_to_i8_dev(float v) {
  if (v != v) return -128;
  if (v >= 127.0f) return 127;
  if (v <= -128.0f) return -128;
  return static_cast<int8_t>(__float2int_rn(v));
}

// One Q8_0 block from 32 f32 values (x86 activation quantizer).
__device__ __forceinline__ void quantize_block_q8_0(const float* __restrict__ x, quant::BlockQ8_0* __restrict__ y) {
  float amax = 0.0f;
#pragma unroll
  for (int j = 0; j < quant::QK8_0; ++j) {
    const float ax = fabsf(x[j]);
    amax = ax > amax ? ax : amax;
  }
  const float d = __fdiv_rn(amax, 127.f);
  const float id = amax != 0.0f ? __fdiv_rn(127.f, amax) : 0.0f;
  y->d = quant::fp32_to_fp16(d);
#pragma unroll
  for (int j = 0; j < quant::QK8_0; ++j) y->qs[j] = nearest_even_to_i8_dev(__fmul_rn(x[j], id));
}

// One Q4_0 block from 32 f32 values (ggml's reference quantizer).
__device__ __forceinline__ void quantize_block_q4_0(const float* __restrict__ x, quant::BlockQ4_0* __restrict__ y) {
  float amax = 0.0f;
  float max = 0.0f;
#pragma unroll
  for (int j = 0; j < quant::QK4_0; ++j) {
    if (amax < fabsf(x[j])) {
      amax = fabsf(x[j]);
      max = x[j];
    }
  }
  const float d = __fdiv_rn(max, -8.0f);
  const float id = d != 0.0f ? __fdiv_rn(1.0f, d) : 0.0f;
  y->d = quant::fp32_to_fp16(d);
#pragma unroll
  for (int j = 0; j < quant::QK4_0 / 2; ++j) {
    const float x0 = __fmul_rn(x[j], id);
    const float x1 = __fmul_rn(x[j + quant::QK4_0 / 2], id);
    int xi0 = trunc_to_int_dev(__fadd_rn(x0, 8.5f));
    int xi1 = trunc_to_int_dev(__fadd_rn(x1, 8.5f));
    xi0 = xi0 < 15 ? xi0 : 15;
    xi1 = xi1 < 15 ? xi1 : 15;
    y->qs[j] = static_cast<uint8_t>((xi0 & 0xFF) | (xi1 << 4));
  }
}

// The KV formats this file handles, as a small code the kernels switch on.
enum class KvFmt : int { F32 = 0, F16 = 1, BF16 = 2, Q8_0 = 3, Q4_0 = 4 };

struct KvFmtInfo {
  KvFmt fmt;
  int block;         // values per block (1 for the float formats)
  int block_bytes;   // bytes per block
};

KvFmtInfo kv_fmt_info(Type t, const char* which) {
  switch (t) {
    case Type::F32: return {KvFmt::F32, 1, 4};
    case Type::F16: return {KvFmt::F16, 1, 2};
    case Type::BF16: return {KvFmt::BF16, 1, 2};
    case Type::Q8_0: return {KvFmt::Q8_0, quant::QK8_0, static_cast<int>(sizeof(quant::BlockQ8_0))};
    case Type::Q4_0: return {KvFmt::Q4_0, quant::QK4_0, static_cast<int>(sizeof(quant::BlockQ4_0))};
    default:
      throw core::Error(std::string("CUDA KV cache: ") + which + " cache type " + std::to_string(static_cast<unsigned>(t)) +
                        " is not supported on the GPU (use f32, f16, bf16, q8_0 or q4_0)");
  }
}

// Checks the cache descriptor and returns the formats of K and V.
void check_kv(const DeviceKv& kv, KvFmtInfo& kf, KvFmtInfo& vf) {
  kf = kv_fmt_info(kv.k_type, "K");
  vf = kv_fmt_info(kv.v_type, "V");
  if (kv.kv_dim <= 0 || kv.n_ctx <= 0) throw core::Error("CUDA KV cache: kv_dim and n_ctx must be positive");
  if (!kv.k || !kv.v) throw core::Error("CUDA KV cache: K or V buffer is null");
  for (const KvFmtInfo* f : {&kf, &vf}) {
    if (kv.kv_dim % f->block != 0)
      throw core::Error("CUDA KV cache: kv_dim " + std::to_string(kv.kv_dim) + " is not a multiple of the block size " +
                        std::to_string(f->block));
  }
  const size_t k_bytes = static_cast<size_t>(kv.kv_dim / kf.block) * kf.block_bytes;
  const size_t v_bytes = static_cast<size_t>(kv.kv_dim / vf.block) * vf.block_bytes;
  if (kv.k_row_bytes != k_bytes || kv.v_row_bytes != v_bytes)
    throw core::Error("CUDA KV cache: row sizes " + std::to_string(kv.k_row_bytes) + "/" + std::to_string(kv.v_row_bytes) +
                      " do not match kv_dim " + std::to_string(kv.kv_dim) + " in the cache types (" +
                      std::to_string(k_bytes) + "/" + std::to_string(v_bytes) + ")");
}

// Writes unit u (one value for float formats, one 32-value block for the
// quants) of a row: src points at the row's f32 values, dst at its bytes.
__device__ __forceinline__ void store_unit(KvFmt fmt, const float* __restrict__ src, uint8_t* __restrict__ dst,
                                           int u) {
  switch (fmt) {
    case KvFmt::F32: reinterpret_cast<float*>(dst)[u] = src[u]; break;
    case KvFmt::F16: reinterpret_cast<uint16_t*>(dst)[u] = quant::fp32_to_fp16(src[u]); break;
    case KvFmt::BF16: reinterpret_cast<uint16_t*>(dst)[u] = quant::fp32_to_bf16(src[u]); break;
    case KvFmt::Q8_0:
      quantize_block_q8_0(src + static_cast<int64_t>(u) * quant::QK8_0, reinterpret_cast<quant::BlockQ8_0*>(dst) + u);
      break;
    case KvFmt::Q4_0:
      quantize_block_q4_0(src + static_cast<int64_t>(u) * quant::QK4_0, reinterpret_cast<quant::BlockQ4_0*>(dst) + u);
      break;
  }
}

// blockIdx.y = 0: K, 1: V. One thread per unit of one row.
__global__ void kv_store_kernel(uint8_t* __restrict__ k_cache, uint8_t* __restrict__ v_cache, KvFmt k_fmt,
                                KvFmt v_fmt, int k_units, int v_units, size_t k_row_bytes, size_t v_row_bytes,
                                const float* __restrict__ k, const float* __restrict__ v,
                                const int32_t* __restrict__ seq, const int32_t* __restrict__ pos, int n, int kv_dim,
                                int n_ctx) {
  const bool is_v = blockIdx.y == 1;
  const int units = is_v ? v_units : k_units;
  const int64_t total = static_cast<int64_t>(n) * units;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = t / units;
    const int u = static_cast<int>(t % units);
    const size_t cache_row = static_cast<size_t>(seq[row]) * n_ctx + pos[row];
    const float* src = (is_v ? v : k) + row * kv_dim;
    uint8_t* dst = (is_v ? v_cache : k_cache) + cache_row * (is_v ? v_row_bytes : k_row_bytes);
    store_unit(is_v ? v_fmt : k_fmt, src, dst, u);
  }
}

// ---------------------------------------------------------------------------
// Attention (flash-decoding style; see the design note at attention()).

// Value e (0..31) of the 32-value group `g` of a head slice, as f32. Float
// formats: element 32 g + e. Quants: element e of block g, dequantized as
// ggml's dequantize_row_* (core/quant_dequant.h: q * d, q in int).
__device__ __forceinline__ float load_kv_value(KvFmt fmt, const uint8_t* __restrict__ head, int g, int e) {
  switch (fmt) {
    case KvFmt::F32: return reinterpret_cast<const float*>(head)[32 * g + e];
    case KvFmt::F16: return quant::fp16_to_fp32(reinterpret_cast<const uint16_t*>(head)[32 * g + e]);
    case KvFmt::BF16: return quant::bf16_to_fp32(reinterpret_cast<const uint16_t*>(head)[32 * g + e]);
    case KvFmt::Q8_0: {
      const quant::BlockQ8_0* b = reinterpret_cast<const quant::BlockQ8_0*>(head) + g;
      return b->qs[e] * quant::fp16_to_fp32(b->d);
    }
    case KvFmt::Q4_0: {
      const quant::BlockQ4_0* b = reinterpret_cast<const quant::BlockQ4_0*>(head) + g;
      const int q = e < 16 ? (b->qs[e] & 0x0F) - 8 : (b->qs[e - 16] >> 4) - 8;
      return q * quant::fp16_to_fp32(b->d);
    }
  }
  return 0.0f;
}

constexpr int kAttnWarps = 4;           // warps per block, each a strided share of the positions
constexpr int kAttnMaxHeadDim = 256;    // head_dim: a multiple of 32, at most this
constexpr int kAttnMaxSlots = 64;       // rows × splits per query head that use the scratch
constexpr int kAttnMinSplitLen = 256;   // positions per split at least (of n_ctx)

struct AttnParams {
  const uint8_t* k_cache;
  const uint8_t* v_cache;
  KvFmt k_fmt, v_fmt;
  size_t k_row_bytes, v_row_bytes;
  size_t k_head_bytes, v_head_bytes;  // one head's slice of a row
  int n_ctx;
  const float* q;
  const int32_t* seq;
  const int32_t* pos;
  int n, n_head, group, head_dim;
  float scale;
  int n_split, split_len;
  float* partial;  // [n][n_head][n_split] × (head_dim + 2): acc, then m, l
  float* out;
};

// grid: (n_head, n, n_split), block: kAttnWarps warps. Lane l of a warp owns
// head dims l + 32 k (k < G = head_dim / 32), so each k is one 32-value block
// of a quantized row. Each warp runs an online softmax over its positions
// (running max m, sum l, accumulator acc); the warps are then merged in
// shared memory. With one split the block writes the normalized output,
// otherwise its unnormalized (acc, m, l) for attn_combine_kernel.
template <int G>
__global__ void __launch_bounds__(kAttnWarps * kWarp) attn_partial_kernel(AttnParams p) {
  const int h = blockIdx.x;
  const int i = blockIdx.y;
  const int split = blockIdx.z;
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int kvh = h / p.group;
  const int n_pos = min(p.pos[i] + 1, p.n_ctx);
  const int begin = split * p.split_len;
  const int end = min(begin + p.split_len, n_pos);

  const float* qh = p.q + (static_cast<int64_t>(i) * p.n_head + h) * p.head_dim;
  float q[G], acc[G];
#pragma unroll
  for (int k = 0; k < G; ++k) {
    q[k] = qh[lane + 32 * k];
    acc[k] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;

  const size_t seq_row0 = static_cast<size_t>(p.seq[i]) * p.n_ctx;
  const uint8_t* k_base = p.k_cache + kvh * p.k_head_bytes;
  const uint8_t* v_base = p.v_cache + kvh * p.v_head_bytes;
  for (int t = begin + warp; t < end; t += kAttnWarps) {
    const uint8_t* kr = k_base + (seq_row0 + t) * p.k_row_bytes;
    float dot = 0.0f;
#pragma unroll
    for (int k = 0; k < G; ++k) dot = fmaf(q[k], load_kv_value(p.k_fmt, kr, k, lane), dot);
    const float s = warp_sum(dot) * p.scale;
    const uint8_t* vr = v_base + (seq_row0 + t) * p.v_row_bytes;
    float vv[G];
#pragma unroll
    for (int k = 0; k < G; ++k) vv[k] = load_kv_value(p.v_fmt, vr, k, lane);
    if (s > m) {  // the maximum grows: rescale what was accumulated (exp(-inf) = 0 at the start)
      const float ms = expf(m - s);
      m = s;
      l = fmaf(l, ms, 1.0f);
#pragma unroll
      for (int k = 0; k < G; ++k) acc[k] = fmaf(acc[k], ms, vv[k]);
    } else {
      const float ps = expf(s - m);
      l += ps;
#pragma unroll
      for (int k = 0; k < G; ++k) acc[k] = fmaf(vv[k], ps, acc[k]);
    }
  }

  // Merge the warps: M = max m_w, L = sum l_w e^(m_w - M), acc likewise.
  __shared__ float s_acc[kAttnWarps][G * 32];
  __shared__ float s_m[kAttnWarps], s_l[kAttnWarps];
#pragma unroll
  for (int k = 0; k < G; ++k) s_acc[warp][lane + 32 * k] = acc[k];
  if (lane == 0) {
    s_m[warp] = m;
    s_l[warp] = l;
  }
  __syncthreads();
  float M = -INFINITY;
#pragma unroll
  for (int w = 0; w < kAttnWarps; ++w) M = fmaxf(M, s_m[w]);
  float wgt[kAttnWarps];
  float L = 0.0f;
#pragma unroll
  for (int w = 0; w < kAttnWarps; ++w) {
    wgt[w] = s_l[w] > 0.0f ? expf(s_m[w] - M) : 0.0f;
    L = fmaf(s_l[w], wgt[w], L);
  }
  const int64_t slot = (static_cast<int64_t>(i) * p.n_head + h) * p.n_split + split;
  if (p.n_split == 1) {
    const float inv = L > 0.0f ? 1.0f / L : 0.0f;  // no position: zeros, as the CPU
    float* o = p.out + (static_cast<int64_t>(i) * p.n_head + h) * p.head_dim;
    for (int d = threadIdx.x; d < G * 32; d += blockDim.x) {
      float a = 0.0f;
#pragma unroll
      for (int w = 0; w < kAttnWarps; ++w) a = fmaf(s_acc[w][d], wgt[w], a);
      o[d] = a * inv;
    }
  } else {
    float* part = p.partial + slot * (p.head_dim + 2);
    for (int d = threadIdx.x; d < G * 32; d += blockDim.x) {
      float a = 0.0f;
#pragma unroll
      for (int w = 0; w < kAttnWarps; ++w) a = fmaf(s_acc[w][d], wgt[w], a);
      part[d] = a;
    }
    if (threadIdx.x == 0) {
      part[p.head_dim] = M;
      part[p.head_dim + 1] = L;
    }
  }
}

// grid: n × n_head blocks; merges the n_split partials of one (row, head).
__global__ void attn_combine_kernel(const float* __restrict__ partial, float* __restrict__ out, int n_split,
                                    int head_dim) {
  const int64_t rh = blockIdx.x;  // row * n_head + h
  const float* part = partial + rh * n_split * (head_dim + 2);
  const int stride = head_dim + 2;
  __shared__ float wgt[kAttnMaxSlots];
  __shared__ float inv_l;
  float M = -INFINITY;
  for (int s = 0; s < n_split; ++s) M = fmaxf(M, part[s * stride + head_dim]);
  for (int s = threadIdx.x; s < n_split; s += blockDim.x) {
    const float ls = part[s * stride + head_dim + 1];
    wgt[s] = ls > 0.0f ? expf(part[s * stride + head_dim] - M) : 0.0f;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float L = 0.0f;
    for (int s = 0; s < n_split; ++s) L = fmaf(part[s * stride + head_dim + 1], wgt[s], L);
    inv_l = L > 0.0f ? 1.0f / L : 0.0f;
  }
  __syncthreads();
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float a = 0.0f;
    for (int s = 0; s < n_split; ++s)
      if (wgt[s] != 0.0f) a = fmaf(part[s * stride + d], wgt[s], a);
    out[rh * head_dim + d] = a * inv_l;
  }
}

template <int G>
void launch_attn_partial(const AttnParams& p, cudaStream_t stream) {
  const dim3 grid(p.n_head, p.n, p.n_split);
  attn_partial_kernel<G><<<grid, kAttnWarps * kWarp, 0, stream>>>(p);
  TANDEM_CUDA_LAUNCH_CHECK();
}

// Splits of the context per (row, head) for n rows: enough blocks to fill
// the device on a decode step, never more than kAttnMaxSlots / n (so the
// partials fit the scratch) nor splits shorter than kAttnMinSplitLen.
int attention_splits(int n, int n_ctx) {
  const int by_ctx = (n_ctx + kAttnMinSplitLen - 1) / kAttnMinSplitLen;
  const int by_slots = n > 0 ? kAttnMaxSlots / n : 1;
  int s = by_ctx < by_slots ? by_ctx : by_slots;
  return s < 1 ? 1 : s;
}

}  // namespace

// RoPE with a linear position scale (ModelConfig::rope_freq_scale), as
// cpu::rope_angles.
void rope(float* x, const int32_t* pos, int n, int heads, int head_dim, int rope_dims, float base,
          float freq_scale, const float* freq_factors, bool neox, cudaStream_t stream) {
  if (rope_dims < 0 || rope_dims % 2 != 0 || rope_dims > head_dim)
    throw core::Error("CUDA rope: rope_dims " + std::to_string(rope_dims) + " must be even and at most head_dim " +
                      std::to_string(head_dim));
  const int half = rope_dims / 2;
  const int64_t total = static_cast<int64_t>(n) * heads * half;
  if (n <= 0 || heads <= 0 || total <= 0) return;
  // The CPU's expression (cpu::rope_angles), evaluated by the same host libm.
  const float theta_scale = std::pow(base, -2.0f / static_cast<float>(rope_dims));
  rope_kernel<<<elementwise_blocks(total), kElementwiseThreads, 0, stream>>>(
      x, pos, total, heads, head_dim, half, theta_scale, freq_scale, freq_factors, neox);
  TANDEM_CUDA_LAUNCH_CHECK();
}

void rms_norm(const float* x, const float* w, float* out, int n, int d, float eps, cudaStream_t stream) {
  if (n <= 0 || d <= 0) return;
  rms_norm_kernel<<<n, kNormThreads, 0, stream>>>(x, w, out, d, eps);
  TANDEM_CUDA_LAUNCH_CHECK();
}

void swiglu(float* gate, const float* up, int64_t count, cudaStream_t stream) {
  if (count <= 0) return;
  swiglu_kernel<<<elementwise_blocks(count), kElementwiseThreads, 0, stream>>>(gate, up, count);
  TANDEM_CUDA_LAUNCH_CHECK();
}

void add_inplace(float* y, const float* x, int64_t count, cudaStream_t stream) {
  if (count <= 0) return;
  add_kernel<<<elementwise_blocks(count), kElementwiseThreads, 0, stream>>>(y, x, count);
  TANDEM_CUDA_LAUNCH_CHECK();
}

void add_bias(float* y, const float* bias, int n, int d, cudaStream_t stream) {
  const int64_t count = static_cast<int64_t>(n) * d;
  if (n <= 0 || d <= 0) return;
  add_bias_kernel<<<elementwise_blocks(count), kElementwiseThreads, 0, stream>>>(y, bias, count, d);
  TANDEM_CUDA_LAUNCH_CHECK();
}

void kv_store(const DeviceKv& kv, const float* k, const float* v, const int32_t* seq, const int32_t* pos, int n,
              cudaStream_t stream) {
  if (n <= 0) return;
  KvFmtInfo kf, vf;
  check_kv(kv, kf, vf);
  const int k_units = kv.kv_dim / kf.block, v_units = kv.kv_dim / vf.block;
  const int max_units = k_units > v_units ? k_units : v_units;
  const dim3 grid(elementwise_blocks(static_cast<int64_t>(n) * max_units), 2);
  kv_store_kernel<<<grid, kElementwiseThreads, 0, stream>>>(
      static_cast<uint8_t*>(kv.k), static_cast<uint8_t*>(kv.v), kf.fmt, vf.fmt, k_units, v_units, kv.k_row_bytes,
      kv.v_row_bytes, k, v, seq, pos, n, kv.kv_dim, kv.n_ctx);
  TANDEM_CUDA_LAUNCH_CHECK();
}

// Attention design: flash-decoding. One block of kAttnWarps warps per
// (query head, row, split of the context); each warp takes every
// kAttnWarps-th position of its split and keeps an online softmax in f32
// (scores = scale * q·K[t] with K dequantized on the fly, one warp-shuffle
// reduction per position, V accumulated with the running-max rescaling), the
// warps merge in shared memory. No score matrix is materialized, so any
// n_ctx works with O(1) memory per block.
//
// Splitting the context only matters when n × n_head blocks cannot fill the
// device (decode): n_split = clamp(min(ceil(n_ctx / 256), 64 / n), 1). With
// n_split > 1 each block writes its unnormalized (acc[head_dim], m, l) to the
// scratch and attn_combine_kernel merges them; with n_split = 1 (n > 32, or
// short contexts) the partial kernel writes `out` directly and the scratch
// is not touched. Scratch formula (floats; head_dim at most 256):
//   attention_scratch_floats(n, n_head, n_ctx)
//     = n_head × min(n × ceil(n_ctx / 256), 64) × (256 + 2)
// (0 when that leaves a single split), which is non-decreasing in n and at
// most n_head × 64 × 258 floats (2 MiB for 32 heads) whatever n is; a null
// scratch forces n_split = 1.
size_t attention_scratch_floats(int n, int n_head, int n_ctx) {
  static_assert(kAttnMaxHeadDim == core::plan::kGpuAttnMaxHeadDim && kAttnMaxSlots == core::plan::kGpuAttnMaxSlots &&
                    kAttnMinSplitLen == core::plan::kGpuAttnMinSplitLen,
                "the planner sizes the attention scratch with these limits");
  return core::plan::gpu_attention_scratch_floats(n, n_head, n_ctx);
}

void attention(const DeviceKv& kv, const float* q, const int32_t* seq, const int32_t* pos, int n, int n_head,
               int n_head_kv, int head_dim, float scale, float* scratch, float* out, cudaStream_t stream) {
  if (n <= 0) return;
  KvFmtInfo kf, vf;
  check_kv(kv, kf, vf);
  if (n_head <= 0 || n_head_kv <= 0 || n_head % n_head_kv != 0)
    throw core::Error("CUDA attention: n_head " + std::to_string(n_head) + " is not a multiple of n_head_kv " +
                      std::to_string(n_head_kv));
  if (head_dim <= 0 || head_dim % 32 != 0 || head_dim > kAttnMaxHeadDim)
    throw core::Error("CUDA attention: head_dim " + std::to_string(head_dim) +
                      " must be a positive multiple of 32, at most " + std::to_string(kAttnMaxHeadDim));
  if (static_cast<int64_t>(n_head_kv) * head_dim != kv.kv_dim)
    throw core::Error("CUDA attention: n_head_kv × head_dim = " + std::to_string(n_head_kv * head_dim) +
                      " but the cache rows hold " + std::to_string(kv.kv_dim) + " values");
  if (n > 65535) throw core::Error("CUDA attention: at most 65535 rows per call");

  AttnParams p{};
  p.k_cache = static_cast<const uint8_t*>(kv.k);
  p.v_cache = static_cast<const uint8_t*>(kv.v);
  p.k_fmt = kf.fmt;
  p.v_fmt = vf.fmt;
  p.k_row_bytes = kv.k_row_bytes;
  p.v_row_bytes = kv.v_row_bytes;
  p.k_head_bytes = static_cast<size_t>(head_dim / kf.block) * kf.block_bytes;
  p.v_head_bytes = static_cast<size_t>(head_dim / vf.block) * vf.block_bytes;
  p.n_ctx = kv.n_ctx;
  p.q = q;
  p.seq = seq;
  p.pos = pos;
  p.n = n;
  p.n_head = n_head;
  p.group = n_head / n_head_kv;
  p.head_dim = head_dim;
  p.scale = scale;
  p.n_split = scratch ? attention_splits(n, kv.n_ctx) : 1;
  p.split_len = (kv.n_ctx + p.n_split - 1) / p.n_split;
  p.partial = scratch;
  p.out = out;

  switch (head_dim / 32) {
    case 1: launch_attn_partial<1>(p, stream); break;
    case 2: launch_attn_partial<2>(p, stream); break;
    case 3: launch_attn_partial<3>(p, stream); break;
    case 4: launch_attn_partial<4>(p, stream); break;
    case 5: launch_attn_partial<5>(p, stream); break;
    case 6: launch_attn_partial<6>(p, stream); break;
    case 7: launch_attn_partial<7>(p, stream); break;
    case 8: launch_attn_partial<8>(p, stream); break;
    default: break;  // excluded above
  }
  if (p.n_split > 1) {
    attn_combine_kernel<<<n * n_head, 128, 0, stream>>>(scratch, out, p.n_split, head_dim);
    TANDEM_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace tandem::gpu
