#include "cpu_worker/attention.h"

#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/quant_blocks.h"
#include "core/quant_reference.h"
#include "cpu_worker/simd_dot.h"

namespace tandem::cpu {

namespace quant = core::quant;
using quant::Type;

namespace {

// ---- f16 dot product with ggml's AVX2 summation order -------------------
// Four accumulators of 8 lanes take 32 elements per step (fused multiply-add
// in f32); then acc0+acc2, acc1+acc3, acc0+acc1, low half + high half, two
// horizontal adds; a tail (n % 32) is added one product at a time in double.

__attribute__((target("avx2,fma,f16c"))) float dot_f16_avx2(int64_t n, const void* xv, const void* yv) {
  const auto* x = static_cast<const uint16_t*>(xv);
  const auto* y = static_cast<const uint16_t*>(yv);
  const int64_t np = n & ~int64_t{31};
  __m256 sum[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int64_t i = 0; i < np; i += 32) {
    for (int j = 0; j < 4; ++j) {
      const __m256 ax = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i + 8 * j)));
      const __m256 ay = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y + i + 8 * j)));
      sum[j] = _mm256_fmadd_ps(ax, ay, sum[j]);
    }
  }
  sum[0] = _mm256_add_ps(sum[0], sum[2]);
  sum[1] = _mm256_add_ps(sum[1], sum[3]);
  sum[0] = _mm256_add_ps(sum[0], sum[1]);
  const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(sum[0]), _mm256_extractf128_ps(sum[0], 1));
  const __m128 t1 = _mm_hadd_ps(t0, t0);
  double sumf = _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
  for (int64_t i = np; i < n; ++i)
    sumf += static_cast<double>(quant::fp16_to_fp32(x[i]) * quant::fp16_to_fp32(y[i]));
  return static_cast<float>(sumf);
}

float dot_f16_scalar(int64_t n, const void* xv, const void* yv) {
  const auto* x = static_cast<const uint16_t*>(xv);
  const auto* y = static_cast<const uint16_t*>(yv);
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(quant::fp16_to_fp32(x[i]) * quant::fp16_to_fp32(y[i]));
  return static_cast<float>(s);
}

// y = fma(x, v, y), element-wise (ggml_vec_mad_f32 with FMA).
__attribute__((target("avx2,fma"))) void mad_f32_avx2(int64_t n, float* y, const float* x, float v) {
  const __m256 vv = _mm256_set1_ps(v);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(_mm256_loadu_ps(x + i), vv, _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] = std::fma(x[i], v, y[i]);
}

// y = f16(fma(f32(x), v, f32(y))), element-wise (ggml_vec_mad_f16).
__attribute__((target("avx2,fma,f16c"))) void mad_f16_avx2(int64_t n, uint16_t* y, const uint16_t* x, float v) {
  const __m256 vv = _mm256_set1_ps(v);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 ax = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
    const __m256 ay = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<__m128i*>(y + i)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm256_cvtps_ph(_mm256_fmadd_ps(ax, vv, ay), 0));
  }
  for (; i < n; ++i) y[i] = quant::fp32_to_fp16(std::fma(quant::fp16_to_fp32(x[i]), v, quant::fp16_to_fp32(y[i])));
}

void mad_f32_scalar(int64_t n, float* y, const float* x, float v) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::fma(x[i], v, y[i]);
}

void mad_f16_scalar(int64_t n, uint16_t* y, const uint16_t* x, float v) {
  for (int64_t i = 0; i < n; ++i)
    y[i] = quant::fp32_to_fp16(std::fma(quant::fp16_to_fp32(x[i]), v, quant::fp16_to_fp32(y[i])));
}

void scale_f16(int64_t n, uint16_t* y, float v) {
  for (int64_t i = 0; i < n; ++i) y[i] = quant::fp32_to_fp16(quant::fp16_to_fp32(y[i]) * v);
}

void scale_f32(int64_t n, float* y, float v) {
  for (int64_t i = 0; i < n; ++i) y[i] *= v;
}

struct Kernels {
  void (*mad_f32)(int64_t, float*, const float*, float);
  void (*mad_f16)(int64_t, uint16_t*, const uint16_t*, float);
  float (*dot_f16)(int64_t, const void*, const void*);
};

const Kernels& kernels() {
  static const Kernels k = cpu_has_avx2() ? Kernels{mad_f32_avx2, mad_f16_avx2, dot_f16_avx2}
                                          : Kernels{mad_f32_scalar, mad_f16_scalar, dot_f16_scalar};
  return k;
}

void copy_f32(const float* src, void* dst, int64_t n) { std::memcpy(dst, src, sizeof(float) * n); }
void load_f32(const void* src, float* dst, int64_t n) { std::memcpy(dst, src, sizeof(float) * n); }

void store_q8_0(const float* src, void* dst, int64_t n) { quantize_activations(Type::Q8_0, src, dst, n); }
void store_q8_1(const float* src, void* dst, int64_t n) { quantize_activations(Type::Q8_1, src, dst, n); }

// Converts a query for a BF16 cache: rounded through bf16, kept as f32 for
// the bf16×f32 dot product.
void convert_q_bf16(const float* src, void* dst, int64_t n) {
  float* d = static_cast<float*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = quant::bf16_to_fp32(quant::fp32_to_bf16(src[i]));
}

}  // namespace

KvRowCodec kv_row_codec(Type t) {
  KvRowCodec c;
  c.type = t;
  const auto& tr = quant::traits(t);
  c.load = tr.to_float;
  switch (t) {
    case Type::F32:
      c.store = copy_f32;
      c.load = load_f32;
      c.q_type = Type::F32;
      c.convert_q = copy_f32;
      c.dot = best_vec_dot(Type::F32);
      return c;
    case Type::F16:
      c.store = tr.from_float;
      c.q_type = Type::F16;
      c.convert_q = tr.from_float;
      c.dot = kernels().dot_f16;
      return c;
    case Type::BF16:
      c.store = tr.from_float;
      c.q_type = Type::F32;
      c.convert_q = convert_q_bf16;
      c.dot = best_vec_dot(Type::BF16);
      return c;
    case Type::Q8_0:
    case Type::Q4_0:
    case Type::Q4_1:
    case Type::Q5_0:
    case Type::Q5_1:
      // The CPU's own quantizer for q8 rows (ggml's x86 quantize_row_q8_0),
      // the reference one for the 4/5-bit types (what ggml's CPU uses).
      c.store = t == Type::Q8_0 ? store_q8_0 : tr.from_float;
      c.q_type = tr.vec_dot_type;
      c.convert_q = tr.vec_dot_type == Type::Q8_1 ? store_q8_1 : store_q8_0;
      c.dot = best_vec_dot(t);
      return c;
    default:
      throw core::Error("type " + std::string(tr.name) + " cannot hold a KV cache");
  }
}

void attend_one(const float* q, int32_t hd, int32_t n_pos, float scale, const KvRowCodec& kc,
                const uint8_t* k_base, size_t k_stride, const KvRowCodec& vc, const uint8_t* v_base,
                size_t v_stride, AttentionScratch& s, float* out) {
  const Kernels& kern = kernels();
  s.q_conv.resize(quant::row_bytes(kc.q_type, hd));
  kc.convert_q(q, s.q_conv.data(), hd);
  const bool v_f16 = vc.type == Type::F16;
  s.acc32.assign(hd, 0.0f);
  if (v_f16) s.acc16.assign(hd, 0);
  s.v_row.resize(hd);

  float S = 0.0f;        // running sum of exp(score - M)
  float M = -INFINITY;   // running maximum score
  for (int32_t j = 0; j < n_pos; ++j) {
    const float sc = kc.dot(hd, k_base + j * k_stride, s.q_conv.data()) * scale;
    const float m_old = M;
    float ms = 1.0f;  // rescales what was accumulated when the maximum grows
    float vs = 1.0f;  // weight of this position: exp(sc - M)
    const uint8_t* v = v_base + j * v_stride;
    if (sc > M) {
      M = sc;
      ms = std::exp(m_old - M);
      if (v_f16) scale_f16(hd, s.acc16.data(), ms);
      else scale_f32(hd, s.acc32.data(), ms);
    } else {
      vs = std::exp(sc - M);
    }
    if (v_f16) {
      kern.mad_f16(hd, s.acc16.data(), reinterpret_cast<const uint16_t*>(v), vs);
    } else {
      vc.load(v, s.v_row.data(), hd);
      kern.mad_f32(hd, s.acc32.data(), s.v_row.data(), vs);
    }
    S = std::fma(S, ms, vs);
  }
  if (v_f16)
    for (int32_t d = 0; d < hd; ++d) s.acc32[d] = quant::fp16_to_fp32(s.acc16[d]);
  const float inv = S == 0.0f ? 0.0f : 1.0f / S;
  for (int32_t d = 0; d < hd; ++d) out[d] = s.acc32[d] * inv;
}

}  // namespace tandem::cpu
