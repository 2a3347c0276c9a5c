#pragma once
// Small AVX2 building blocks shared by the dot-product kernels. Every
// function carries its own target attribute, so files that include this need
// no -mavx2: callers dispatch at run time (cpu_has_avx2()).
//
// Including it also turns off FMA contraction for the rest of the file: the
// kernels must give bit-exact results (the quantizers equal the scalar ones,
// every dot kernel of a type equals the others), so every fused
// multiply-add is an explicit intrinsic and the compiler may not add more.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace tandem::cpu::x86 {

#define TANDEM_AVX2 __attribute__((target("avx2,fma,f16c")))

// ---- helpers ------------------------------------------------------------------

TANDEM_AVX2 inline float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

TANDEM_AVX2 inline int hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

TANDEM_AVX2 inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

// Asks for the cache lines of [p, p + bytes) ahead of use. The kernels read
// weights as one or a few forward streams; with one thread the hardware
// prefetchers alone left decode waiting on memory (SmolLM2 Q4_1 decode went
// from ~30 to ~48 tok/s on one Zen 1 core with a prefetch one row group
// ahead). Prefetching never faults, so reading past a buffer's end is safe.
TANDEM_AVX2 inline void prefetch_span(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (size_t o = 0; o < bytes; o += 64) _mm_prefetch(c + o, _MM_HINT_T0);
}

// 16 bytes of nibbles -> 32 bytes: low nibbles first (elements 0..15), then
// high nibbles (elements 16..31), the legacy quants' element order.
TANDEM_AVX2 inline __m256i unpack_nibbles32(const uint8_t* p) {
  const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
  return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

// Byte j of the result is 0xFF when bit j of `bits` is set, else 0.
TANDEM_AVX2 inline __m256i bits_to_bytes32(uint32_t bits) {
  const __m256i spread =
      _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)),
                          _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
  const __m256i sel = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
  return _mm256_cmpeq_epi8(_mm256_and_si256(spread, sel), sel);
}

// Signed x signed bytes, pair-summed twice: 8 int32 lanes.
TANDEM_AVX2 inline __m256i dot_i8_pairs(__m256i x, __m256i y) {
  const __m256i ax = _mm256_sign_epi8(x, x);
  const __m256i sy = _mm256_sign_epi8(y, x);
  return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
}

// Unsigned x signed bytes, pair-summed twice: 8 int32 lanes.
TANDEM_AVX2 inline __m256i dot_u8_i8_pairs(__m256i ux, __m256i y) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(ux, y), _mm256_set1_epi16(1));
}

// IQ4_NL's 16 levels as signed bytes, in both 128-bit lanes (a pshufb table).
TANDEM_AVX2 inline __m256i iq4nl_levels(const int8_t* kvalues16) {
  return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kvalues16)));
}

// Four rows' 8-lane int32 partial sums → their four exact totals (lane r = row r).
TANDEM_AVX2 inline __m128i hsum4_epi32(__m256i p0, __m256i p1, __m256i p2, __m256i p3) {
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

}  // namespace tandem::cpu::x86

#endif
