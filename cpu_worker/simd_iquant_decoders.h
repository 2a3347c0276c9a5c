// AVX2 block decoders for the i-quants IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS,
// IQ3_S, IQ4_XS, IQ1_S and IQ1_M, in the decoder shape of simd_dot_kquants.cpp (quants,
// dot, group_dot, scale16, d), so the same 1-row, 4-row and 4-token kernels
// run them. Included by simd_dot_kquants.cpp inside its anonymous namespace:
// it uses that file's helpers (load32, pair_scales, bcast_scale16, kMasks).
//
// Grid formats store magnitudes and a sign bit per value: quants() returns
// the unsigned magnitudes and the signs go onto the activations
// (_mm256_sign_epi8), which is safe because Q8_K values lie in -127..127.
// IQ4_XS stores signed levels: maddubs(|q|, sign(y, q)). Products of pairs
// stay below 2^15 (magnitudes ≤ 127), but four groups of them may not, so
// these decoders set kWideQuants and the prefill kernel widens each group;
// the grid decoders (magnitudes ≤ 62) set kPairQuants: two groups at a time.
// The fixed factors of ggml's formulas (0.125 for IQ2, 0.25 for IQ3_XXS) are
// powers of two folded into d(), which is exact. IQ1 values are
// scale · (grid + delta) with grid in {-1, 0, 1} and delta = ±1/8: eight
// times that, 8·grid ± 1 in [-9, 9], is an integer, so the IQ1 decoders
// return those signed quants and fold 1/8 into d(); small blocks (50 and 56
// bytes) are prefetched ~1 KiB ahead like the others (kSmallBlocks).
// The including file includes core/quant_iq_tables.h at namespace scope.
#pragma once

// The largest byte of a grid table: kPairQuants needs ≤ 64.
template <typename Row, size_t N>
constexpr int max_grid_byte(const Row (&grid)[N]) {
  int m = 0;
  for (size_t i = 0; i < N; ++i)
    for (size_t j = 0; j < sizeof(Row); ++j) {
      const int b = static_cast<int>((grid[i] >> (8 * j)) & 0xFF);
      m = b > m ? b : m;
    }
  return m;
}
static_assert(max_grid_byte(q::iq2xxs_grid) <= 64 && max_grid_byte(q::iq2xs_grid) <= 64 &&
                  max_grid_byte(q::iq2s_grid) <= 64 && max_grid_byte(q::iq3xxs_grid) <= 64 &&
                  max_grid_byte(q::iq3s_grid) <= 64,
              "kPairQuants: two groups' pair sums must fit int16");

TANDEM_AVX2 inline __m256i rows4(uint64_t r0, uint64_t r1, uint64_t r2, uint64_t r3) {
  return _mm256_set_epi64x(static_cast<int64_t>(r3), static_cast<int64_t>(r2), static_cast<int64_t>(r1),
                           static_cast<int64_t>(r0));
}

// Sign byte b (bit j set: value j negative) → 8 bytes of +1 / -1 (0x01 /
// 0xFF) for _mm256_sign_epi8: one load instead of expanding bits.
struct SignBytes {
  uint64_t v[256];
  constexpr SignBytes() : v{} {
    for (int b = 0; b < 256; ++b)
      for (int j = 0; j < 8; ++j) v[b] |= static_cast<uint64_t>((b >> j) & 1 ? 0xFF : 0x01) << (8 * j);
  }
};
inline constexpr SignBytes kSignBytes;

// The same keyed by a 7-bit ksigns index (IQ2_XXS, IQ2_XS, IQ3_XXS): one
// lookup instead of ksigns_iq2xs then kSignBytes.
struct KsignBytes {
  uint64_t v[128];
  constexpr KsignBytes() : v{} {
    for (int i = 0; i < 128; ++i) v[i] = SignBytes().v[q::ksigns_iq2xs[i]];
  }
};
inline constexpr KsignBytes kKsignBytes;

// Σ magnitude · (±y) in int32 lanes, times an int16 scale vector.
TANDEM_AVX2 inline __m256i signed_dot(__m256i mag, __m256i signs, __m256i y, __m256i scale16) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(mag, _mm256_sign_epi8(y, signs)), scale16);
}

// 16 int8 scales 2s+1 from eight bytes of two 4-bit s each (IQ2_XS, IQ2_S):
// scale 2g is the low nibble of byte g, 2g+1 the high one.
TANDEM_AVX2 inline __m128i odd_scales16(const uint8_t* scales) {
  const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(scales));
  const __m128i lo = _mm_and_si128(v, _mm_set1_epi8(0x0F));
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), _mm_set1_epi8(0x0F));
  const __m128i s = _mm_unpacklo_epi8(lo, hi);
  return _mm_add_epi8(_mm_add_epi8(s, s), _mm_set1_epi8(1));
}

// Four sign bytes (byte l for values 8l .. 8l+7 of a chunk) → 32 bytes of
// +1 / -1 for _mm256_sign_epi8, in vector registers: cheaper in the decode
// loop than four table loads and their inserts.
TANDEM_AVX2 inline __m256i expand_signs(uint32_t bytes) {
  const __m256i rep = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                       2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bytes)), rep);
  return _mm256_or_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit), _mm256_set1_epi8(1));
}

// The grid formats' shared decoder half: a derived decoder gives row(c, l)
// (8 magnitudes of group l of chunk c), sign8(c, l) (their sign bytes) and
// chunk_scale(c) (int16 lanes for the chunk's maddubs pairs).
template <typename D>
struct GridDecoder {
  TANDEM_AVX2 const D& self() const { return static_cast<const D&>(*this); }
  TANDEM_AVX2 __m256i quants(int c) const {
    return rows4(self().row(c, 0), self().row(c, 1), self().row(c, 2), self().row(c, 3));
  }
  TANDEM_AVX2 __m256i dot(__m256i qv, int c, __m256i y) const {
    const D& d = self();
    if constexpr (requires { d.sign_bytes(c); })  // the chunk's four sign bytes side by side
      return signed_dot(qv, expand_signs(d.sign_bytes(c)), y, d.chunk_scale(c));
    else
      return signed_dot(qv, rows4(d.sign8(c, 0), d.sign8(c, 1), d.sign8(c, 2), d.sign8(c, 3)), y, d.chunk_scale(c));
  }
  TANDEM_AVX2 __m256i group_dot(int c, int g, __m256i y4) const {
    return _mm256_maddubs_epi16(_mm256_set1_epi64x(static_cast<int64_t>(self().row(c, g))),
                                _mm256_sign_epi8(y4, _mm256_set1_epi64x(static_cast<int64_t>(self().sign8(c, g)))));
  }
};

struct IQ2XXS : GridDecoder<IQ2XXS> {
  using Block = q::BlockIQ2_XXS;
  static constexpr bool kHasMin = false, kHasOffset = false, kScalePer32 = true, kWideQuants = true,
                        kPairQuants = true, kLaneSums = true;
  const Block& x;
  TANDEM_AVX2 explicit IQ2XXS(const Block& b) : x(b) {}
  TANDEM_AVX2 float d() const { return h2f(x.d) * 0.125f; }
  TANDEM_AVX2 float dmin() const { return 0.0f; }
  TANDEM_AVX2 uint32_t idx(int c) const { return q::u16_pair(x.qs + 4 * c); }      // 4 grid indices
  TANDEM_AVX2 uint32_t aux(int c) const { return q::u16_pair(x.qs + 4 * c + 2); }  // 4 × 7 sign bits, scale on top
  TANDEM_AVX2 uint64_t sign8(int c, int l) const { return kKsignBytes.v[(aux(c) >> (7 * l)) & 127]; }
  TANDEM_AVX2 uint64_t row(int c, int l) const { return q::iq2xxs_grid[(idx(c) >> (8 * l)) & 255]; }
  TANDEM_AVX2 __m256i scale16(int c) const { return _mm256_set1_epi16(static_cast<int16_t>(2 * (aux(c) >> 28) + 1)); }
  TANDEM_AVX2 __m256i chunk_scale(int c) const { return scale16(c); }
};

struct IQ2XS : GridDecoder<IQ2XS> {
  using Block = q::BlockIQ2_XS;
  static constexpr bool kHasMin = false, kHasOffset = false, kScalePer32 = false, kWideQuants = true,
                        kPairQuants = true, kLaneSums = true;
  const Block& x;
  __m128i sc8;  // 16 int8 scales 2s+1, one per 16 values
  TANDEM_AVX2 explicit IQ2XS(const Block& b) : x(b), sc8(odd_scales16(b.scales)) {}
  TANDEM_AVX2 float d() const { return h2f(x.d) * 0.125f; }
  TANDEM_AVX2 float dmin() const { return 0.0f; }
  TANDEM_AVX2 uint64_t row(int c, int l) const { return q::iq2xs_grid[x.qs[4 * c + l] & 511]; }
  TANDEM_AVX2 uint64_t sign8(int c, int l) const { return kKsignBytes.v[x.qs[4 * c + l] >> 9]; }
  TANDEM_AVX2 __m256i chunk_scale(int c) const { return pair_scales(sc8, c); }
  TANDEM_AVX2 __m256i scale16(int j) const { return bcast_scale16(sc8, j); }
};

struct IQ2S : GridDecoder<IQ2S> {
  using Block = q::BlockIQ2_S;
  static constexpr bool kHasMin = false, kHasOffset = false, kScalePer32 = false, kWideQuants = true,
                        kPairQuants = true, kLaneSums = true;
  const Block& x;
  __m128i sc8;
  TANDEM_AVX2 explicit IQ2S(const Block& b) : x(b), sc8(odd_scales16(b.scales)) {}
  TANDEM_AVX2 float d() const { return h2f(x.d) * 0.125f; }
  TANDEM_AVX2 float dmin() const { return 0.0f; }
  TANDEM_AVX2 uint64_t row(int c, int l) const {
    return q::iq2s_grid[x.qs[4 * c + l] | ((x.qh[c] << (8 - 2 * l)) & 0x300)];
  }
  TANDEM_AVX2 uint64_t sign8(int c, int l) const { return kSignBytes.v[x.qs[q::QK_K / 8 + 4 * c + l]]; }
  TANDEM_AVX2 uint32_t sign_bytes(int c) const { return q::le_u32(x.qs + q::QK_K / 8 + 4 * c); }
  TANDEM_AVX2 __m256i chunk_scale(int c) const { return pair_scales(sc8, c); }
  TANDEM_AVX2 __m256i scale16(int j) const { return bcast_scale16(sc8, j); }
};

struct IQ3XXS : GridDecoder<IQ3XXS> {
  using Block = q::BlockIQ3_XXS;
  static constexpr bool kHasMin = false, kHasOffset = false, kScalePer32 = true, kWideQuants = true,
                        kPairQuants = true, kLaneSums = true;
  const Block& x;
  TANDEM_AVX2 explicit IQ3XXS(const Block& b) : x(b) {}
  TANDEM_AVX2 float d() const { return h2f(x.d) * 0.25f; }
  TANDEM_AVX2 float dmin() const { return 0.0f; }
  TANDEM_AVX2 uint32_t aux(int c) const { return q::le_u32(x.qs + q::QK_K / 4 + 4 * c); }
  TANDEM_AVX2 uint64_t row(int c, int l) const {  // two 4-value grid rows side by side
    const uint8_t* qs = x.qs + 8 * c + 2 * l;
    return q::iq3xxs_grid[qs[0]] | static_cast<uint64_t>(q::iq3xxs_grid[qs[1]]) << 32;
  }
  TANDEM_AVX2 uint64_t sign8(int c, int l) const { return kKsignBytes.v[(aux(c) >> (7 * l)) & 127]; }
  TANDEM_AVX2 __m256i scale16(int c) const { return _mm256_set1_epi16(static_cast<int16_t>(2 * (aux(c) >> 28) + 1)); }
  TANDEM_AVX2 __m256i chunk_scale(int c) const { return scale16(c); }
};

struct IQ3S : GridDecoder<IQ3S> {
  using Block = q::BlockIQ3_S;
  static constexpr bool kHasMin = false, kHasOffset = false, kScalePer32 = true, kWideQuants = true,
                        kPairQuants = true, kLaneSums = true;
  const Block& x;
  TANDEM_AVX2 explicit IQ3S(const Block& b) : x(b) {}
  TANDEM_AVX2 float d() const { return h2f(x.d); }
  TANDEM_AVX2 float dmin() const { return 0.0f; }
  TANDEM_AVX2 uint64_t row(int c, int l) const {
    const uint8_t* qs = x.qs + 8 * c + 2 * l;
    const int qh = x.qh[c];
    return q::iq3s_grid[qs[0] | ((qh << (8 - 2 * l)) & 256)] |
           static_cast<uint64_t>(q::iq3s_grid[qs[1] | ((qh << (7 - 2 * l)) & 256)]) << 32;
  }
  TANDEM_AVX2 uint64_t sign8(int c, int l) const { return kSignBytes.v[x.signs[4 * c + l]]; }
  TANDEM_AVX2 uint32_t sign_bytes(int c) const { return q::le_u32(x.signs + 4 * c); }
  TANDEM_AVX2 __m256i scale16(int c) const {
    return _mm256_set1_epi16(static_cast<int16_t>(2 * ((x.scales[c / 2] >> (4 * (c % 2))) & 0xF) + 1));
  }
  TANDEM_AVX2 __m256i chunk_scale(int c) const { return scale16(c); }
};

struct IQ4XS {
  using Block = q::BlockIQ4_XS;
  static constexpr bool kHasMin = false, kHasOffset = false, kScalePer32 = true, kWideQuants = true,
                        kLaneSums = true;
  const Block& x;
  TANDEM_AVX2 explicit IQ4XS(const Block& b) : x(b) {}
  TANDEM_AVX2 float d() const { return h2f(x.d); }
  TANDEM_AVX2 float dmin() const { return 0.0f; }
  // Nibbles → IQ4_NL's 16 signed levels.
  TANDEM_AVX2 static __m256i levels(__m256i nibbles) {
    const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q::kvalues_iq4nl));
    return _mm256_shuffle_epi8(_mm256_set_m128i(t, t), nibbles);
  }
  TANDEM_AVX2 __m256i quants(int c) const {  // values 0..15: low nibbles, 16..31: high nibbles of qs[16c ..]
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.qs + 16 * c));
    const __m256i v = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
    return levels(_mm256_and_si256(v, _mm256_set1_epi8(0x0F)));
  }
  TANDEM_AVX2 __m256i scale16(int c) const { return _mm256_set1_epi16(static_cast<int16_t>(q::iq4_xs_scale(x, c) - 32)); }
  TANDEM_AVX2 __m256i dot(__m256i qv, int c, __m256i y) const {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(qv), _mm256_sign_epi8(y, qv)), scale16(c));
  }
  TANDEM_AVX2 __m256i group_dot(int c, int g, __m256i y4) const {
    const __m256i b = bcast8(x.qs + 16 * c + 8 * (g % 2));
    const __m256i v = levels(_mm256_and_si256(g >= 2 ? _mm256_srli_epi16(b, 4) : b, _mm256_set1_epi8(0x0F)));
    return _mm256_maddubs_epi16(_mm256_abs_epi8(v), _mm256_sign_epi8(y4, v));
  }
};

// Signed quants q (no zero among them, |q| < 128) against activations: Σ q·y
// in int16 pair sums, as maddubs(|q|, sign(y, q)).
TANDEM_AVX2 inline __m256i signed_pairs(__m256i q, __m256i y) {
  return _mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(y, q));
}

// 8·grid + delta for 32 grid bytes in {-1, 0, 1} (three doublings: bytes
// never carry into each other) and per-byte deltas of ±1.
TANDEM_AVX2 inline __m256i iq1_quants(__m256i grid, __m256i delta) {
  const __m256i g2 = _mm256_add_epi8(grid, grid);
  const __m256i g4 = _mm256_add_epi8(g2, g2);
  return _mm256_add_epi8(_mm256_add_epi8(g4, g4), delta);
}

// Eight bytes of +1, or of -1 when `negative`.
TANDEM_AVX2 inline uint64_t iq1_delta8(bool negative) { return negative ? ~uint64_t{0} : 0x0101010101010101ull; }

// IQ1_S: one 3-bit scale and one delta sign per 32-value chunk (qh[c]).
struct IQ1S {
  using Block = q::BlockIQ1_S;
  static constexpr bool kHasMin = false, kHasOffset = false, kScalePer32 = true, kSmallBlocks = true;
  const Block& x;
  TANDEM_AVX2 explicit IQ1S(const Block& b) : x(b) {}
  TANDEM_AVX2 float d() const { return h2f(x.d) * 0.125f; }
  TANDEM_AVX2 float dmin() const { return 0.0f; }
  TANDEM_AVX2 uint64_t row(int c, int l) const {
    return q::iq1s_grid[x.qs[4 * c + l] | (((x.qh[c] >> (3 * l)) & 7) << 8)];
  }
  TANDEM_AVX2 uint64_t delta8(int c) const { return iq1_delta8(x.qh[c] & 0x8000); }
  TANDEM_AVX2 __m256i quants(int c) const {
    return iq1_quants(rows4(row(c, 0), row(c, 1), row(c, 2), row(c, 3)),
                      _mm256_set1_epi64x(static_cast<int64_t>(delta8(c))));
  }
  TANDEM_AVX2 __m256i scale16(int c) const {
    return _mm256_set1_epi16(static_cast<int16_t>(2 * ((x.qh[c] >> 12) & 7) + 1));
  }
  TANDEM_AVX2 __m256i dot(__m256i qv, int c, __m256i y) const {
    return _mm256_madd_epi16(signed_pairs(qv, y), scale16(c));
  }
  TANDEM_AVX2 __m256i group_dot(int c, int g, __m256i y4) const {
    const __m256i v = iq1_quants(_mm256_set1_epi64x(static_cast<int64_t>(row(c, g))),
                                 _mm256_set1_epi64x(static_cast<int64_t>(delta8(c))));
    return signed_pairs(v, y4);
  }
};

// IQ1_M: a 3-bit scale per 16 values, a delta sign per 8 (the top bit of
// each row's qh nibble), the fp16 d spread over the scales' top nibbles.
struct IQ1M {
  using Block = q::BlockIQ1_M;
  static constexpr bool kHasMin = false, kHasOffset = false, kScalePer32 = false, kSmallBlocks = true;
  const Block& x;
  __m128i sc8;  // 16 int8 scales 2s+1, one per 16 values
  TANDEM_AVX2 explicit IQ1M(const Block& b) : x(b), sc8(scales16(b)) {}
  TANDEM_AVX2 static __m128i scales16(const Block& b) {
    alignas(16) int8_t s[16];
    for (int j = 0; j < 16; ++j) {  // j = 2g + h: value group g, half h
      const int g = j / 2, h = j % 2;
      s[j] = static_cast<int8_t>(2 * ((q::le_u16(b.scales + 2 * (g / 2)) >> (6 * (g % 2) + 3 * h)) & 7) + 1);
    }
    return _mm_load_si128(reinterpret_cast<const __m128i*>(s));
  }
  TANDEM_AVX2 float d() const { return q::fp16_to_fp32(q::iq1m_scale_bits(x)) * 0.125f; }
  TANDEM_AVX2 float dmin() const { return 0.0f; }
  TANDEM_AVX2 int nibble(int c, int l) const { return (x.qh[2 * c + l / 2] >> (4 * (l % 2))) & 0xF; }
  TANDEM_AVX2 uint64_t row(int c, int l) const { return q::iq1s_grid[x.qs[4 * c + l] | ((nibble(c, l) & 7) << 8)]; }
  TANDEM_AVX2 uint64_t delta8(int c, int l) const { return iq1_delta8(nibble(c, l) & 8); }
  TANDEM_AVX2 __m256i quants(int c) const {
    return iq1_quants(rows4(row(c, 0), row(c, 1), row(c, 2), row(c, 3)),
                      rows4(delta8(c, 0), delta8(c, 1), delta8(c, 2), delta8(c, 3)));
  }
  TANDEM_AVX2 __m256i scale16(int j) const { return bcast_scale16(sc8, j); }
  TANDEM_AVX2 __m256i dot(__m256i qv, int c, __m256i y) const {
    return _mm256_madd_epi16(signed_pairs(qv, y), pair_scales(sc8, c));
  }
  TANDEM_AVX2 __m256i group_dot(int c, int g, __m256i y4) const {
    const __m256i v = iq1_quants(_mm256_set1_epi64x(static_cast<int64_t>(row(c, g))),
                                 _mm256_set1_epi64x(static_cast<int64_t>(delta8(c, g))));
    return signed_pairs(v, y4);
  }
};
