// Dot products of FOUR weight rows with one activation row. A single-row
// dot is one long dependent chain of fused multiply-adds (latency-bound);
// four independent rows keep the FMA units busy. Each row's arithmetic is
// exactly that of its single-row kernel (same per-block order), so results
// are bit-identical to best_vec_dot's.
#include <cstring>

#include "core/quant_blocks.h"
#include "core/quant_iq_tables.h"
#include "cpu_worker/repack_x4.h"
#include "cpu_worker/simd_dot.h"
#include "cpu_worker/simd_dot_kquants.h"
#include "cpu_worker/simd_x86.h"

namespace tandem::cpu {

namespace q = core::quant;
using q::Type;

#if defined(__x86_64__) || defined(__i386__)
namespace {

using namespace x86;
constexpr int kRows = 4;

template <typename Block>
TANDEM_AVX2 inline const Block* row_blocks(const uint8_t* w, size_t stride, int r) {
  return reinterpret_cast<const Block*>(w + static_cast<size_t>(r) * stride);
}

// Four fp16 values → four floats (exact conversion).
TANDEM_AVX2 inline __m128 block_scales4(uint16_t a, uint16_t b, uint16_t c, uint16_t d) {
  return _mm_cvtph_ps(_mm_setr_epi16(static_cast<short>(a), static_cast<short>(b), static_cast<short>(c),
                                     static_cast<short>(d), 0, 0, 0, 0));
}

// How each legacy type turns a block into 32 signed/unsigned bytes and pairs
// them with the activation bytes; types with a block minimum (Q4_1) also add
// m·s per block, in the single-row kernel's order. kBlockSums: the type's
// single-row kernel reduces each block to one exact integer sum before
// scaling (IQ4_NL, as llama.cpp does); the others scale 8 lanes per block.

struct Q4_0Policy {
  static constexpr bool kBlockSums = false;
  using WBlock = q::BlockQ4_0;
  using ABlock = q::BlockQ8_0;
  using X4Block = BlockQ4_0x4;
  static constexpr bool kHasMin = false;
  TANDEM_AVX2 static __m256i quants(const uint8_t* qs) {
    return _mm256_sub_epi8(unpack_nibbles32(qs), _mm256_set1_epi8(8));
  }
  TANDEM_AVX2 static __m256i pairs(__m256i qx, __m256i qy) { return dot_i8_pairs(qx, qy); }
};

struct Q4_1Policy {
  static constexpr bool kBlockSums = false;
  using WBlock = q::BlockQ4_1;
  using ABlock = q::BlockQ8_1;
  using X4Block = BlockQ4_1x4;
  static constexpr bool kHasMin = true;
  TANDEM_AVX2 static __m256i quants(const uint8_t* qs) { return unpack_nibbles32(qs); }
  TANDEM_AVX2 static __m256i pairs(__m256i qx, __m256i qy) { return dot_u8_i8_pairs(qx, qy); }
};

struct Q8_0Policy {
  static constexpr bool kBlockSums = false;
  using WBlock = q::BlockQ8_0;
  using ABlock = q::BlockQ8_0;
  using X4Block = BlockQ8_0x4;
  static constexpr bool kHasMin = false;
  TANDEM_AVX2 static __m256i quants(const int8_t* qs) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs)); }
  TANDEM_AVX2 static __m256i pairs(__m256i qx, __m256i qy) { return dot_i8_pairs(qx, qy); }
};

// IQ4_NL: Q4_0's block with the nibble looked up in 16 levels; the four-row
// layout is Q4_0's (fp16 scale and 16 nibble bytes per row).
struct IQ4_NLPolicy {
  static constexpr bool kBlockSums = true;
  using WBlock = q::BlockIQ4_NL;
  using ABlock = q::BlockQ8_0;
  using X4Block = BlockQ4_0x4;
  static constexpr bool kHasMin = false;
  TANDEM_AVX2 static __m256i quants(const uint8_t* qs) {
    return _mm256_shuffle_epi8(iq4nl_levels(q::kvalues_iq4nl), unpack_nibbles32(qs));
  }
  TANDEM_AVX2 static __m256i pairs(__m256i qx, __m256i qy) { return dot_i8_pairs(qx, qy); }
};

// Where a kernel finds block i of its four rows. FileRows: the GGUF layout,
// four rows `stride` bytes apart (scales gathered one by one). Packed: the
// four-row layout of repack_x4.h (scales side by side, one stream). The
// arithmetic below is the same for both, so both give best_vec_dot's bits.
template <typename P>
struct FileRows {
  const typename P::WBlock* x[kRows];
  size_t stride;
  TANDEM_AVX2 FileRows(const uint8_t* w, size_t s) : stride(s) {
    for (int r = 0; r < kRows; ++r) x[r] = row_blocks<typename P::WBlock>(w, s, r);
  }
  TANDEM_AVX2 __m128 d(int64_t i) const { return block_scales4(x[0][i].d, x[1][i].d, x[2][i].d, x[3][i].d); }
  TANDEM_AVX2 __m128 m(int64_t i) const { return block_scales4(x[0][i].m, x[1][i].m, x[2][i].m, x[3][i].m); }
  TANDEM_AVX2 __m256i quants(int r, int64_t i) const { return P::quants(x[r][i].qs); }
  // The same place in the next four-row group: one group's reads ahead.
  TANDEM_AVX2 void prefetch(int64_t i) const {
    for (int r = 0; r < kRows; ++r) _mm_prefetch(reinterpret_cast<const char*>(x[r] + i) + kRows * stride, _MM_HINT_T0);
  }
};

template <typename P>
struct Packed {
  const typename P::X4Block* b;
  TANDEM_AVX2 Packed(const uint8_t* w, size_t) : b(reinterpret_cast<const typename P::X4Block*>(w)) {}
  TANDEM_AVX2 __m128 d(int64_t i) const { return _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b[i].d))); }
  TANDEM_AVX2 __m128 m(int64_t i) const {
    if constexpr (P::kHasMin) return _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b[i].m)));
    return _mm_setzero_ps();
  }
  TANDEM_AVX2 __m256i quants(int r, int64_t i) const { return P::quants(b[i].qs[r]); }
  TANDEM_AVX2 void prefetch(int64_t i) const {
    prefetch_span(b + i + 4, sizeof(typename P::X4Block));  // four blocks ahead
  }
};

// Four rows x two activation rows, the prefill kernel: each weight block is
// unpacked once and used for two tokens.
// kBlockSums types: per block, the four rows' exact integer sums side by
// side, one fma per token into lane r = row r.
template <typename P, template <typename> class Src>
TANDEM_AVX2 void rows4x2_block_sums(int64_t n, const uint8_t* w, size_t stride, const void* a0, const void* a1,
                                    float* out0, float* out1) {
  const auto* y0 = static_cast<const typename P::ABlock*>(a0);
  const auto* y1 = static_cast<const typename P::ABlock*>(a1);
  const int64_t nb = n / 32;
  const Src<P> x(w, stride);
  __m128 acc0 = _mm_setzero_ps(), acc1 = _mm_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    x.prefetch(i);
    const __m256i qy0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y0[i].qs));
    const __m256i qy1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y1[i].qs));
    const __m256i q0 = x.quants(0, i), q1 = x.quants(1, i), q2 = x.quants(2, i), q3 = x.quants(3, i);
    const __m128 s0 = _mm_cvtepi32_ps(
        hsum4_epi32(P::pairs(q0, qy0), P::pairs(q1, qy0), P::pairs(q2, qy0), P::pairs(q3, qy0)));
    const __m128 s1 = _mm_cvtepi32_ps(
        hsum4_epi32(P::pairs(q0, qy1), P::pairs(q1, qy1), P::pairs(q2, qy1), P::pairs(q3, qy1)));
    const __m128 xd = x.d(i);
    acc0 = _mm_fmadd_ps(s0, _mm_mul_ps(xd, _mm_set1_ps(h2f(y0[i].d))), acc0);
    acc1 = _mm_fmadd_ps(s1, _mm_mul_ps(xd, _mm_set1_ps(h2f(y1[i].d))), acc1);
  }
  _mm_storeu_ps(out0, acc0);
  _mm_storeu_ps(out1, acc1);
}

template <typename P, template <typename> class Src>
TANDEM_AVX2 void rows4_block_sums(int64_t n, const uint8_t* w, size_t stride, const void* a, float* out) {
  const auto* y = static_cast<const typename P::ABlock*>(a);
  const int64_t nb = n / 32;
  const Src<P> x(w, stride);
  __m128 acc = _mm_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    x.prefetch(i);
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    const __m128 s = _mm_cvtepi32_ps(hsum4_epi32(P::pairs(x.quants(0, i), qy), P::pairs(x.quants(1, i), qy),
                                                 P::pairs(x.quants(2, i), qy), P::pairs(x.quants(3, i), qy)));
    acc = _mm_fmadd_ps(s, _mm_mul_ps(x.d(i), _mm_set1_ps(h2f(y[i].d))), acc);
  }
  _mm_storeu_ps(out, acc);
}

template <typename P, template <typename> class Src>
TANDEM_AVX2 void rows4x2(int64_t n, const uint8_t* w, size_t stride, const void* a0, const void* a1, float* out0,
                         float* out1) {
  if constexpr (P::kBlockSums) return rows4x2_block_sums<P, Src>(n, w, stride, a0, a1, out0, out1);
  const auto* y0 = static_cast<const typename P::ABlock*>(a0);
  const auto* y1 = static_cast<const typename P::ABlock*>(a1);
  const int64_t nb = n / 32;
  const Src<P> x(w, stride);
  __m256 acc0[kRows], acc1[kRows];
  __m128 mins0 = _mm_setzero_ps(), mins1 = _mm_setzero_ps();  // lane r: Σ m·s of row r per token
  for (int r = 0; r < kRows; ++r) acc0[r] = acc1[r] = _mm256_setzero_ps();
  alignas(16) float dd0[kRows], dd1[kRows];  // d_weight · d_activation per row, per token
  for (int64_t i = 0; i < nb; ++i) {
    x.prefetch(i);
    const __m256i qy0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y0[i].qs));
    const __m256i qy1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y1[i].qs));
    const __m128 xd = x.d(i);
    _mm_store_ps(dd0, _mm_mul_ps(xd, _mm_set1_ps(h2f(y0[i].d))));
    _mm_store_ps(dd1, _mm_mul_ps(xd, _mm_set1_ps(h2f(y1[i].d))));
    if constexpr (P::kHasMin) {
      const __m128 xm = x.m(i);
      mins0 = _mm_add_ps(mins0, _mm_mul_ps(xm, _mm_set1_ps(h2f(y0[i].s))));
      mins1 = _mm_add_ps(mins1, _mm_mul_ps(xm, _mm_set1_ps(h2f(y1[i].s))));
    }
    for (int r = 0; r < kRows; ++r) {
      const __m256i qx = x.quants(r, i);
      acc0[r] = _mm256_fmadd_ps(_mm256_set1_ps(dd0[r]), _mm256_cvtepi32_ps(P::pairs(qx, qy0)), acc0[r]);
      acc1[r] = _mm256_fmadd_ps(_mm256_set1_ps(dd1[r]), _mm256_cvtepi32_ps(P::pairs(qx, qy1)), acc1[r]);
    }
  }
  alignas(16) float m0[kRows], m1[kRows];
  _mm_store_ps(m0, mins0);
  _mm_store_ps(m1, mins1);
  for (int r = 0; r < kRows; ++r) {
    out0[r] = P::kHasMin ? hsum_ps(acc0[r]) + m0[r] : hsum_ps(acc0[r]);
    out1[r] = P::kHasMin ? hsum_ps(acc1[r]) + m1[r] : hsum_ps(acc1[r]);
  }
}

template <typename P, template <typename> class Src>
TANDEM_AVX2 void rows4(int64_t n, const uint8_t* w, size_t stride, const void* a, float* out) {
  if constexpr (P::kBlockSums) return rows4_block_sums<P, Src>(n, w, stride, a, out);
  const auto* y = static_cast<const typename P::ABlock*>(a);
  const int64_t nb = n / 32;
  const Src<P> x(w, stride);
  __m256 acc[kRows];
  __m128 mins = _mm_setzero_ps();  // lane r: Σ m·s of row r (types with a block minimum)
  for (int r = 0; r < kRows; ++r) acc[r] = _mm256_setzero_ps();
  alignas(16) float dd[kRows];  // per row: d_weight · d_activation of this block
  for (int64_t i = 0; i < nb; ++i) {
    x.prefetch(i);
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    // The four rows' fp16 scales converted in one instruction; the products
    // are the same IEEE multiplications the single-row kernel does.
    _mm_store_ps(dd, _mm_mul_ps(x.d(i), _mm_set1_ps(h2f(y[i].d))));
    if constexpr (P::kHasMin) mins = _mm_add_ps(mins, _mm_mul_ps(x.m(i), _mm_set1_ps(h2f(y[i].s))));
    for (int r = 0; r < kRows; ++r)
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dd[r]), _mm256_cvtepi32_ps(P::pairs(x.quants(r, i), qy)), acc[r]);
  }
  alignas(16) float m[kRows];
  _mm_store_ps(m, mins);
  for (int r = 0; r < kRows; ++r) out[r] = P::kHasMin ? hsum_ps(acc[r]) + m[r] : hsum_ps(acc[r]);
}

// The kernel family K instantiated for the policy of weight type t, or
// nullptr when t has none (or the CPU lacks AVX2).
template <template <typename> class Src>
struct Rows4 {
  template <typename P>
  static constexpr VecDotRowsFn fn = rows4<P, Src>;
};
template <template <typename> class Src>
struct Rows4x2 {
  template <typename P>
  static constexpr VecDotRows2Fn fn = rows4x2<P, Src>;
};

template <typename K>
auto pick(Type t) -> decltype(K::template fn<Q4_0Policy>) {
  if (!cpu_has_avx2()) return nullptr;
  switch (t) {
    case Type::Q4_0:
      return K::template fn<Q4_0Policy>;
    case Type::Q4_1:
      return K::template fn<Q4_1Policy>;
    case Type::Q8_0:
      return K::template fn<Q8_0Policy>;
    case Type::IQ4_NL:
      return K::template fn<IQ4_NLPolicy>;
    default:
      return nullptr;
  }
}

}  // namespace
#endif

VecDotRowsFn best_vec_dot_rows4(Type t) {
#if defined(__x86_64__) || defined(__i386__)
  if (VecDotRowsFn f = pick<Rows4<FileRows>>(t)) return f;
  return cpu_has_avx2() ? kquant_rows4_avx2(t) : nullptr;
#else
  (void)t;
  return nullptr;
#endif
}

KTokens4Fn best_vec_dot_tokens4(Type t) {
#if defined(__x86_64__) || defined(__i386__)
  return cpu_has_avx2() ? kquant_tokens4_avx2(t) : nullptr;
#else
  (void)t;
  return nullptr;
#endif
}

VecDotFn batch_vec_dot(Type t) { return cpu_has_avx2() ? kquant_batch_dot_avx2(t) : nullptr; }
VecDotRowsFn batch_vec_dot_rows4(Type t) { return cpu_has_avx2() ? kquant_batch_rows4_avx2(t) : nullptr; }
KTokens4Fn batch_vec_dot_tokens4(Type t) { return cpu_has_avx2() ? kquant_batch_tokens4_avx2(t) : nullptr; }

VecDotRows2Fn best_vec_dot_rows4x2(Type t) {
#if defined(__x86_64__) || defined(__i386__)
  return pick<Rows4x2<FileRows>>(t);
#else
  (void)t;
  return nullptr;
#endif
}

VecDotRowsFn x4_rows_kernel(Type t) {
#if defined(__x86_64__) || defined(__i386__)
  return pick<Rows4<Packed>>(t);
#else
  (void)t;
  return nullptr;
#endif
}

VecDotRows2Fn x4_rows2_kernel(Type t) {
#if defined(__x86_64__) || defined(__i386__)
  return pick<Rows4x2<Packed>>(t);
#else
  (void)t;
  return nullptr;
#endif
}

}  // namespace tandem::cpu
