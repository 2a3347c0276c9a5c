#pragma once
// The AVX2 K-quant kernels (simd_dot_kquants.cpp), for simd_dot's dispatch.
// They assume the CPU has AVX2+FMA+F16C: callers check cpu_has_avx2() first.
// nullptr for a type that is not a K-quant.
#include "cpu_worker/simd_dot.h"

namespace tandem::cpu {

VecDotFn kquant_dot_avx2(quant::Type weight_type);
VecDotRowsFn kquant_rows4_avx2(quant::Type weight_type);
KTokens4Fn kquant_tokens4_avx2(quant::Type weight_type);
// The same in the batch arithmetic (simd_dot.h, kBatchArithmeticTokens);
// nullptr for a type with one arithmetic only.
VecDotFn kquant_batch_dot_avx2(quant::Type weight_type);
VecDotRowsFn kquant_batch_rows4_avx2(quant::Type weight_type);
KTokens4Fn kquant_batch_tokens4_avx2(quant::Type weight_type);

}  // namespace tandem::cpu
