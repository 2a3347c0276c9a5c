// AVX2 dot products and activation quantizers, dispatched at run time.
//
// Integer work per block is exact (same sums as the scalar references); only
// the float accumulation order differs. The trick used throughout: AVX2 has
// no signed x signed byte multiply, but _mm256_maddubs_epi16 multiplies
// unsigned x signed bytes and adds adjacent pairs into int16. Weight quants
// are either already unsigned (Q4_1, Q5_1, K-quants before their offset) or
// made unsigned with the sign trick |x| * (y * sign(x)). Pair sums never
// saturate int16: activations are in -127..127 and unsigned weight quants
// are at most 63, except Q8_0's |x| <= 128 (2 * 128 * 127 = 32512 < 32767).
#include "cpu_worker/simd_dot.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/quant_blocks.h"
#include "core/quant_iq_tables.h"
#include "core/quant_reference.h"
#include "cpu_worker/simd_dot_kquants.h"
#include "cpu_worker/simd_x86.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define TANDEM_X86_SIMD 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define TANDEM_X86_SIMD 0
#endif

namespace tandem::cpu {

namespace q = core::quant;
using q::Type;

#if TANDEM_X86_SIMD
namespace {

using namespace x86;

// ---- float weights x f32 activations ----------------------------------------------

// The three float weight types differ only in how 8 weights become a __m256.
struct LoadF32 {
  const float* p;
  TANDEM_AVX2 __m256 operator()(int64_t i) const { return _mm256_loadu_ps(p + i); }
};
struct LoadF16 {
  const uint16_t* p;
  TANDEM_AVX2 __m256 operator()(int64_t i) const {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)));
  }
};
struct LoadBF16 {
  const uint16_t* p;
  TANDEM_AVX2 __m256 operator()(int64_t i) const {
    const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
  }
};

// Sum over the first n8 (a multiple of 8) elements; four accumulators hide
// the FMA latency.
template <typename Load>
TANDEM_AVX2 inline float dot_f32_acts(int64_t n8, const float* a, Load load) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n8; i += 32) {
    acc0 = _mm256_fmadd_ps(load(i + 0), _mm256_loadu_ps(a + i + 0), acc0);
    acc1 = _mm256_fmadd_ps(load(i + 8), _mm256_loadu_ps(a + i + 8), acc1);
    acc2 = _mm256_fmadd_ps(load(i + 16), _mm256_loadu_ps(a + i + 16), acc2);
    acc3 = _mm256_fmadd_ps(load(i + 24), _mm256_loadu_ps(a + i + 24), acc3);
  }
  for (; i < n8; i += 8) acc0 = _mm256_fmadd_ps(load(i), _mm256_loadu_ps(a + i), acc0);
  return hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
}

TANDEM_AVX2 float dot_f32_avx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const float*>(w);
  const auto* y = static_cast<const float*>(a);
  const int64_t n8 = n & ~int64_t{7};
  float sum = dot_f32_acts(n8, y, LoadF32{x});
  for (int64_t i = n8; i < n; ++i) sum += x[i] * y[i];
  return sum;
}

TANDEM_AVX2 float dot_f16_avx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const float*>(a);
  const int64_t n8 = n & ~int64_t{7};
  float sum = dot_f32_acts(n8, y, LoadF16{x});
  for (int64_t i = n8; i < n; ++i) sum += q::fp16_to_fp32(x[i]) * y[i];
  return sum;
}

TANDEM_AVX2 float dot_bf16_avx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const float*>(a);
  const int64_t n8 = n & ~int64_t{7};
  float sum = dot_f32_acts(n8, y, LoadBF16{x});
  for (int64_t i = n8; i < n; ++i) sum += q::bf16_to_fp32(x[i]) * y[i];
  return sum;
}

// ---- legacy quants (32-wide blocks) ------------------------------------------------

TANDEM_AVX2 float dot_q4_0_avx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const q::BlockQ4_0*>(w);
  const auto* y = static_cast<const q::BlockQ8_0*>(a);
  const int64_t nb = n / q::QK8_0;
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
    const __m256i qx = _mm256_sub_epi8(unpack_nibbles32(x[i].qs), _mm256_set1_epi8(8));
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8_pairs(qx, qy)), acc);
  }
  return hsum_ps(acc);
}

TANDEM_AVX2 float dot_q4_1_avx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const q::BlockQ4_1*>(w);
  const auto* y = static_cast<const q::BlockQ8_1*>(a);
  const int64_t nb = n / q::QK8_1;
  __m256 acc = _mm256_setzero_ps();
  float summs = 0;  // sum of m * s: the min's contribution
  for (int64_t i = 0; i < nb; ++i) {
    summs += h2f(x[i].m) * h2f(y[i].s);
    const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
    const __m256i qx = unpack_nibbles32(x[i].qs);
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_u8_i8_pairs(qx, qy)), acc);
  }
  return hsum_ps(acc) + summs;
}

TANDEM_AVX2 float dot_q5_0_avx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const q::BlockQ5_0*>(w);
  const auto* y = static_cast<const q::BlockQ8_0*>(a);
  const int64_t nb = n / q::QK8_0;
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
    // q - 16 as a signed byte: nibble when the 5th bit is set, nibble | 0xF0
    // (= nibble - 16) when it is clear.
    const __m256i hi =
        _mm256_andnot_si256(bits_to_bytes32(q::q5_high_bits(x[i].qh)), _mm256_set1_epi8(static_cast<char>(0xF0)));
    const __m256i qx = _mm256_or_si256(unpack_nibbles32(x[i].qs), hi);
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8_pairs(qx, qy)), acc);
  }
  return hsum_ps(acc);
}

TANDEM_AVX2 float dot_q5_1_avx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const q::BlockQ5_1*>(w);
  const auto* y = static_cast<const q::BlockQ8_1*>(a);
  const int64_t nb = n / q::QK8_1;
  __m256 acc = _mm256_setzero_ps();
  float summs = 0;
  for (int64_t i = 0; i < nb; ++i) {
    summs += h2f(x[i].m) * h2f(y[i].s);
    const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
    const __m256i hi = _mm256_and_si256(bits_to_bytes32(q::q5_high_bits(x[i].qh)), _mm256_set1_epi8(0x10));
    const __m256i qx = _mm256_or_si256(unpack_nibbles32(x[i].qs), hi);  // 0..31
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_u8_i8_pairs(qx, qy)), acc);
  }
  return hsum_ps(acc) + summs;
}

TANDEM_AVX2 float dot_q8_0_avx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const q::BlockQ8_0*>(w);
  const auto* y = static_cast<const q::BlockQ8_0*>(a);
  const int64_t nb = n / q::QK8_0;
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
    const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs));
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8_pairs(qx, qy)), acc);
  }
  return hsum_ps(acc);
}

// IQ4_NL: Q4_0's layout with the nibble looked up in 16 non-linear levels.
// The arithmetic is that of llama.cpp's AVX2 kernel for this type (the
// interleaved iq4_nl_8x8 gemv/gemm it repacks every IQ4_NL matrix into):
// per block the exact integer dot, then acc = fma(float(sum), d_w * d_a, acc).
// The rows kernels (simd_dot_rows.cpp) do the same per row.
TANDEM_AVX2 float dot_iq4_nl_avx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const q::BlockIQ4_NL*>(w);
  const auto* y = static_cast<const q::BlockQ8_0*>(a);
  const int64_t nb = n / q::QK4_NL;
  const __m256i levels = iq4nl_levels(q::kvalues_iq4nl);
  __m128 acc = _mm_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const __m256i qx = _mm256_shuffle_epi8(levels, unpack_nibbles32(x[i].qs));
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    const float sum = static_cast<float>(hsum_epi32(dot_i8_pairs(qx, qy)));
    acc = _mm_fmadd_ss(_mm_set_ss(sum), _mm_set_ss(h2f(x[i].d) * h2f(y[i].d)), acc);
  }
  return _mm_cvtss_f32(acc);
}

// ---- activation quantizers ----------------------------------------------------------

// One 32-value block the way ggml's x86 quantize_row_q8_0/q8_1 do it:
// id = 127/amax, round to nearest even. Returns sum(qs).
TANDEM_AVX2 inline int quantize_block32(const float* x, float* d_out, int8_t* qs) {
  __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
  __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 amax = _mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1));
  amax = _mm256_max_ps(amax, _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
  __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(amax, 1), _mm256_castps256_ps128(amax));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  const float max_scalar = _mm_cvtss_f32(m4);
  *d_out = max_scalar / 127.f;
  const __m256 mul = _mm256_set1_ps(max_scalar != 0.0f ? 127.f / max_scalar : 0.0f);
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, mul), kRound));
  __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, mul), kRound));
  __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, mul), kRound));
  __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, mul), kRound));
  const int sum = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
  // The packs work per 128-bit lane; the permute restores element order.
  i0 = _mm256_packs_epi32(i0, i1);
  i2 = _mm256_packs_epi32(i2, i3);
  i0 = _mm256_packs_epi16(i0, i2);
  i0 = _mm256_permutevar8x32_epi32(i0, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs), i0);
  return sum;
}

TANDEM_AVX2 void quantize_q8_0_avx2(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<q::BlockQ8_0*>(dst);
  for (int64_t i = 0; i < n / q::QK8_0; ++i) {
    float d;
    quantize_block32(x + i * q::QK8_0, &d, y[i].qs);
    y[i].d = q::fp32_to_fp16(d);
  }
}

TANDEM_AVX2 void quantize_q8_1_avx2(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<q::BlockQ8_1*>(dst);
  for (int64_t i = 0; i < n / q::QK8_1; ++i) {
    float d;
    const int sum = quantize_block32(x + i * q::QK8_1, &d, y[i].qs);
    y[i].d = q::fp32_to_fp16(d);
    y[i].s = q::fp32_to_fp16(d * static_cast<float>(sum));
  }
}

// Q8_K as ggml's quantize_row_q8_K_ref: the first value of largest magnitude
// (with its sign) maps to -127; round to nearest even; per-16 sums in bsums.
TANDEM_AVX2 void quantize_q8_K_avx2(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<q::BlockQ8_K*>(dst);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t i = 0; i < n / q::QK_K; ++i, x += q::QK_K) {
    __m256 amax8 = _mm256_setzero_ps();
    for (int j = 0; j < q::QK_K; j += 8) amax8 = _mm256_max_ps(amax8, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(amax8, 1), _mm256_castps256_ps128(amax8));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    if (!(amax > 0.0f)) {
      y[i].d = 0;
      std::memset(y[i].qs, 0, sizeof y[i].qs);
      std::memset(y[i].bsums, 0, sizeof y[i].bsums);
      continue;
    }
    float max = amax;
    const __m256 target = _mm256_set1_ps(amax);
    for (int j = 0; j < q::QK_K; j += 8) {
      const int hit =
          _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), target, _CMP_EQ_OQ));
      if (hit) {
        max = x[j + __builtin_ctz(static_cast<unsigned>(hit))];
        break;
      }
    }
    const float iscale = -127.f / max;
    const __m256 mul = _mm256_set1_ps(iscale);
    const __m256i lim = _mm256_set1_epi32(127);
    constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    for (int j = 0; j < q::QK_K; j += 32) {
      __m256i v[4];
      for (int k = 0; k < 4; ++k)
        v[k] = _mm256_min_epi32(
            lim, _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * k), mul), kRound)));
      y[i].bsums[j / 16] = static_cast<int16_t>(hsum_epi32(_mm256_add_epi32(v[0], v[1])));
      y[i].bsums[j / 16 + 1] = static_cast<int16_t>(hsum_epi32(_mm256_add_epi32(v[2], v[3])));
      __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
      p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs + j), p);
    }
    y[i].d = 1 / iscale;
  }
}

bool detect_avx2() {
  const char* off = std::getenv("TANDEM_NO_SIMD");
  if (off && *off && std::strcmp(off, "0") != 0) return false;
  __builtin_cpu_init();
  // __builtin_cpu_supports checks that the OS saves the YMM registers too.
  // Older clang does not know "f16c" there; read CPUID leaf 1, ECX bit 29.
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29));
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
}

}  // namespace
#endif  // TANDEM_X86_SIMD

bool cpu_has_avx2() {
#if TANDEM_X86_SIMD
  static const bool has = detect_avx2();
  return has;
#else
  return false;
#endif
}

bool repack_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("TANDEM_REPACK");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return on;
}

Type vec_dot_type(Type weight_type) { return q::traits(weight_type).vec_dot_type; }

VecDotFn avx2_vec_dot(Type t) {
#if TANDEM_X86_SIMD
  if (!cpu_has_avx2()) return nullptr;
  switch (t) {
    case Type::F32:
      return dot_f32_avx2;
    case Type::F16:
      return dot_f16_avx2;
    case Type::BF16:
      return dot_bf16_avx2;
    case Type::Q4_0:
      return dot_q4_0_avx2;
    case Type::Q4_1:
      return dot_q4_1_avx2;
    case Type::Q5_0:
      return dot_q5_0_avx2;
    case Type::Q5_1:
      return dot_q5_1_avx2;
    case Type::Q8_0:
      return dot_q8_0_avx2;
    case Type::IQ4_NL:
      return dot_iq4_nl_avx2;
    default:
      return kquant_dot_avx2(t);
  }
#else
  (void)t;
  return nullptr;
#endif
}

VecDotFn best_vec_dot(Type t) {
  if (VecDotFn f = avx2_vec_dot(t)) return f;
  const q::TypeTraits* tr = q::find_traits(static_cast<uint32_t>(t));
  return tr ? tr->vec_dot : nullptr;
}

QuantizeRowFn avx2_quantizer(Type t) {
#if TANDEM_X86_SIMD
  if (!cpu_has_avx2()) return nullptr;
  switch (t) {
    case Type::Q8_0:
      return quantize_q8_0_avx2;
    case Type::Q8_1:
      return quantize_q8_1_avx2;
    case Type::Q8_K:
      return quantize_q8_K_avx2;
    default:
      return nullptr;
  }
#else
  (void)t;
  return nullptr;
#endif
}

QuantizeRowFn scalar_quantizer(Type t) {
  switch (t) {
    case Type::Q8_0:
      return q::ref::quantize_act_q8_0;
    case Type::Q8_1:
      return q::ref::quantize_act_q8_1;
    case Type::Q8_K:
      return q::ref::quantize_act_q8_K;
    default: {
      const q::TypeTraits* tr = q::find_traits(static_cast<uint32_t>(t));
      return tr ? tr->from_float : nullptr;
    }
  }
}

void quantize_activations(Type act_type, const float* x, void* dst, int64_t n) {
  if (act_type == Type::F32) {
    std::memcpy(dst, x, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  QuantizeRowFn f = avx2_quantizer(act_type);
  if (!f) f = scalar_quantizer(act_type);
  if (!f) {
    std::fprintf(stderr, "tandem: no activation quantizer for ggml type %u\n", static_cast<unsigned>(act_type));
    std::abort();
  }
  f(x, dst, n);
}

}  // namespace tandem::cpu
