#pragma once
// y = W·x for a batch of activation rows, on quantized weight blocks directly.
#include <cstdint>
#include <vector>

#include "cpu_worker/thread_pool.h"
#include "cpu_worker/weights.h"

namespace tandem::cpu {

// Activation rows converted once to the format a weight type's dot product
// expects (Q8_0, Q8_1, Q8_K or F32), reused by every matrix that reads them.
class QuantizedActs {
 public:
  // x: [n_rows × cols] f32, row-major.
  void quantize(const float* x, int64_t n_rows, int64_t cols, quant::Type act_type, ThreadPool& pool);
  // This object becomes a copy of src's rows `rows` (in that order).
  void gather(const QuantizedActs& src, const std::vector<int32_t>& rows);
  quant::Type type() const { return type_; }
  const uint8_t* row(int64_t r) const { return data_ + static_cast<size_t>(r) * row_bytes_; }
  int64_t rows() const { return n_rows_; }
  int64_t cols() const { return cols_; }
  // The Q8_K rows interleaved four at a time (group g = rows 4g .. 4g+3, at
  // g × tokens4_bytes()) for the K-quant four-token kernels; made on the
  // first call after quantize(), since only K-quant matrices without an
  // eight-row layout read them. nullptr unless the type is Q8_K and there
  // are at least 4 rows. Not for concurrent first calls.
  const uint8_t* tokens4(ThreadPool& pool) const;
  size_t tokens4_bytes() const { return tokens4_bytes_; }

 private:
  quant::Type type_ = quant::Type::F32;
  int64_t n_rows_ = 0, cols_ = 0;
  size_t row_bytes_ = 0;
  const uint8_t* data_ = nullptr;
  std::vector<uint8_t> buf_;  // [n_rows × row_bytes] blocks; unused for F32 (points at x)
  mutable std::vector<uint8_t> tokens4_;  // [n_rows / 4 × tokens4_bytes_] interleaved Q8_K groups
  mutable size_t tokens4_bytes_ = 0;      // cols / 256 BlockQ8Kx4
  mutable bool tokens4_ready_ = false;    // tokens4_ holds the rows of the last quantize()
};

// The float steps a row of a matmul takes, as llama.cpp's kernel for its
// batch would: vec_dot / gemv order, the tiled kernels' batch order
// (simd_dot.h), or Q4_K's gemm order (four rows per call, repack_x8.h).
enum class RowArith : uint8_t { kVecDot = 0, kBatch = 1, kGemm4 = 2 };
// Row j of a run of m rows of one sequence, on weights w.
RowArith row_arith(const Matrix& w, int64_t j, int64_t m);

// out: [x.rows() × w.rows] f32, row-major (out[t * w.rows + r] = dot(W_r, x_t)).
// x must have been quantized to vec_dot_type(w.type) with cols == w.cols.
//
// runs: the rows in runs of consecutive rows of one sequence (lengths,
// summing to x.rows(); empty = one run of all rows). llama.cpp's float steps
// depend on its batch (simd_dot.h, kBatchArithmeticTokens; Q4_K four rows at
// a time): a row takes the ones llama.cpp would take for its run alone, so
// the result of a sequence's rows never depends on the other sequences in
// the batch, and a single sequence gets llama.cpp's bits.
void matmul(const Matrix& w, const QuantizedActs& x, float* out, ThreadPool& pool,
            const std::vector<int32_t>& runs = {});

// Format the dot product of `weight_type` wants its activations in.
quant::Type act_type_for(quant::Type weight_type);

}  // namespace tandem::cpu
