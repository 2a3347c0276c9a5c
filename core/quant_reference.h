#pragma once
// Scalar reference implementations of the quantization formats: the ground
// truth that SIMD and CUDA kernels are tested against. Each function is
// bit-exact with the ggml function named in its comment (same float
// operations in the same order), so a model dequantized or a dot product
// computed here equals what ggml's scalar code produces.
//
// Conventions: n is a count of values and a multiple of the format's block
// size (callers check; these functions do not); w/x point to whole blocks.
// The .cpp files are compiled with FP contraction off (see their top) because
// a fused multiply-add would change results.
#include <cstdint>

#include "core/quant_blocks.h"

namespace tandem::core::quant::ref {

// ---- to_float (dequantize) --------------------------------------------------
void to_float_f32(const void* src, float* dst, int64_t n);
void to_float_f16(const void* src, float* dst, int64_t n);
void to_float_bf16(const void* src, float* dst, int64_t n);
void to_float_q4_0(const void* src, float* dst, int64_t n);  // dequantize_row_q4_0
void to_float_q4_1(const void* src, float* dst, int64_t n);  // dequantize_row_q4_1
void to_float_q5_0(const void* src, float* dst, int64_t n);  // dequantize_row_q5_0
void to_float_q5_1(const void* src, float* dst, int64_t n);  // dequantize_row_q5_1
void to_float_q8_0(const void* src, float* dst, int64_t n);  // dequantize_row_q8_0
void to_float_q8_1(const void* src, float* dst, int64_t n);  // d * q (ggml has none)
void to_float_q2_K(const void* src, float* dst, int64_t n);  // dequantize_row_q2_K
void to_float_q3_K(const void* src, float* dst, int64_t n);  // dequantize_row_q3_K
void to_float_q4_K(const void* src, float* dst, int64_t n);  // dequantize_row_q4_K
void to_float_q5_K(const void* src, float* dst, int64_t n);  // dequantize_row_q5_K
void to_float_q6_K(const void* src, float* dst, int64_t n);  // dequantize_row_q6_K
void to_float_q8_K(const void* src, float* dst, int64_t n);  // dequantize_row_q8_K
// i-quants (quant_ref_iquants.cpp): dequantization only, no quantizers or dots yet.
void to_float_iq2_xxs(const void* src, float* dst, int64_t n);  // dequantize_row_iq2_xxs
void to_float_iq2_xs(const void* src, float* dst, int64_t n);   // dequantize_row_iq2_xs
void to_float_iq2_s(const void* src, float* dst, int64_t n);    // dequantize_row_iq2_s
void to_float_iq3_xxs(const void* src, float* dst, int64_t n);  // dequantize_row_iq3_xxs
void to_float_iq3_s(const void* src, float* dst, int64_t n);    // dequantize_row_iq3_s
void to_float_iq1_s(const void* src, float* dst, int64_t n);    // dequantize_row_iq1_s
void to_float_iq1_m(const void* src, float* dst, int64_t n);    // dequantize_row_iq1_m
void to_float_iq4_nl(const void* src, float* dst, int64_t n);   // dequantize_row_iq4_nl
void to_float_iq4_xs(const void* src, float* dst, int64_t n);   // dequantize_row_iq4_xs

// ---- from_float: file-creation quantizers -------------------------------------
// ggml's deterministic *_ref quantizers (no importance matrix): what
// llama-quantize writes for these types without --imatrix.
void from_float_f16(const float* src, void* dst, int64_t n);   // GGML_FP32_TO_FP16
void from_float_bf16(const float* src, void* dst, int64_t n);  // GGML_FP32_TO_BF16
void from_float_q4_0(const float* src, void* dst, int64_t n);  // quantize_row_q4_0_ref
void from_float_q4_1(const float* src, void* dst, int64_t n);  // quantize_row_q4_1_ref
void from_float_q5_0(const float* src, void* dst, int64_t n);  // quantize_row_q5_0_ref
void from_float_q5_1(const float* src, void* dst, int64_t n);  // quantize_row_q5_1_ref
void from_float_q8_0(const float* src, void* dst, int64_t n);  // quantize_row_q8_0_ref (roundf)
void from_float_q8_1(const float* src, void* dst, int64_t n);  // quantize_row_q8_1_ref (roundf)
void from_float_q2_K(const float* src, void* dst, int64_t n);  // quantize_row_q2_K_ref
void from_float_q3_K(const float* src, void* dst, int64_t n);  // quantize_row_q3_K_ref
void from_float_q4_K(const float* src, void* dst, int64_t n);  // quantize_row_q4_K_ref
void from_float_q5_K(const float* src, void* dst, int64_t n);  // quantize_row_q5_K_ref
void from_float_q6_K(const float* src, void* dst, int64_t n);  // quantize_row_q6_K_ref
void from_float_q8_K(const float* src, void* dst, int64_t n);  // quantize_row_q8_K_ref
void from_float_iq4_nl(const float* src, void* dst, int64_t n);  // quantize_iq4_nl, no imatrix
void from_float_iq4_xs(const float* src, void* dst, int64_t n);  // quantize_iq4_xs, no imatrix

// ---- activation quantizers ------------------------------------------------------
// What llama.cpp runs on x86 (ggml-cpu/arch/x86/quants.c, AVX/AVX2 path) to
// quantize activations before a dot product. They differ from the file
// quantizers above: id = 127/amax instead of 1/(amax/127), and rounding is to
// nearest even (_mm256_round_ps) instead of roundf's half away from zero.
// cpu::quantize_activations' SIMD versions equal these bit for bit.
void quantize_act_q8_0(const float* src, void* dst, int64_t n);
void quantize_act_q8_1(const float* src, void* dst, int64_t n);  // s = fp16(d * sum(qs)), d unrounded
// x86 uses the reference quantizer for Q8_K (it already rounds to nearest even);
// unlike ggml, an all-zero block also gets zero bsums.
inline void quantize_act_q8_K(const float* src, void* dst, int64_t n) { from_float_q8_K(src, dst, n); }

// ---- dot products ------------------------------------------------------------------
// Weight row (this format) x activation row (its vec_dot_type). Quantized
// dots follow ggml's *_generic functions: exact integer sums per block, then
// float scaling, in ggml's order. Float weights take f32 activations and
// accumulate float products in double, as ggml_vec_dot_f32 / _f16 do.
float vec_dot_f32_f32(int64_t n, const void* w, const void* a);
float vec_dot_f16_f32(int64_t n, const void* w, const void* a);
float vec_dot_bf16_f32(int64_t n, const void* w, const void* a);
float vec_dot_q4_0_q8_0(int64_t n, const void* w, const void* a);
float vec_dot_q4_1_q8_1(int64_t n, const void* w, const void* a);
float vec_dot_q5_0_q8_0(int64_t n, const void* w, const void* a);
float vec_dot_q5_1_q8_1(int64_t n, const void* w, const void* a);
float vec_dot_q8_0_q8_0(int64_t n, const void* w, const void* a);
float vec_dot_q2_K_q8_K(int64_t n, const void* w, const void* a);
float vec_dot_q3_K_q8_K(int64_t n, const void* w, const void* a);
float vec_dot_q4_K_q8_K(int64_t n, const void* w, const void* a);
float vec_dot_q5_K_q8_K(int64_t n, const void* w, const void* a);
float vec_dot_q6_K_q8_K(int64_t n, const void* w, const void* a);
// i-quants (core/quant_ref_iquants_dot.cpp): integer sums as ggml's generic code.
float vec_dot_iq2_xxs_q8_K(int64_t n, const void* w, const void* a);
float vec_dot_iq2_xs_q8_K(int64_t n, const void* w, const void* a);
float vec_dot_iq2_s_q8_K(int64_t n, const void* w, const void* a);
float vec_dot_iq3_xxs_q8_K(int64_t n, const void* w, const void* a);
float vec_dot_iq3_s_q8_K(int64_t n, const void* w, const void* a);
float vec_dot_iq1_s_q8_K(int64_t n, const void* w, const void* a);
float vec_dot_iq1_m_q8_K(int64_t n, const void* w, const void* a);
float vec_dot_iq4_nl_q8_0(int64_t n, const void* w, const void* a);
float vec_dot_iq4_xs_q8_K(int64_t n, const void* w, const void* a);

}  // namespace tandem::core::quant::ref
