#include "cpu_worker/matmul.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "cpu_worker/repack_x4.h"
#include "cpu_worker/repack_x8.h"
#include "cpu_worker/simd_dot.h"

namespace tandem::cpu {

quant::Type act_type_for(quant::Type weight_type) { return quant::traits(weight_type).vec_dot_type; }

void QuantizedActs::quantize(const float* x, int64_t n_rows, int64_t cols, quant::Type act_type, ThreadPool& pool) {
  type_ = act_type;
  n_rows_ = n_rows;
  cols_ = cols;
  row_bytes_ = quant::row_bytes(act_type, cols);
  if (act_type == quant::Type::F32) {
    data_ = reinterpret_cast<const uint8_t*>(x);
    return;
  }
  const size_t need = static_cast<size_t>(n_rows) * row_bytes_;
  if (buf_.size() < need) buf_.resize(need);
  uint8_t* dst = buf_.data();
  pool.parallel_for(n_rows, 4, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) quantize_activations(act_type, x + r * cols, dst + r * row_bytes_, cols);
  });
  data_ = dst;
  tokens4_ready_ = false;
}

void QuantizedActs::gather(const QuantizedActs& src, const std::vector<int32_t>& rows) {
  type_ = src.type_;
  n_rows_ = static_cast<int64_t>(rows.size());
  cols_ = src.cols_;
  row_bytes_ = src.row_bytes_;
  if (buf_.size() < rows.size() * row_bytes_) buf_.resize(rows.size() * row_bytes_);
  for (size_t i = 0; i < rows.size(); ++i) std::memcpy(buf_.data() + i * row_bytes_, src.row(rows[i]), row_bytes_);
  data_ = buf_.data();
  tokens4_ready_ = false;
}

const uint8_t* QuantizedActs::tokens4(ThreadPool& pool) const {
  if (type_ != quant::Type::Q8_K || n_rows_ < 4) return nullptr;
  if (!tokens4_ready_) {
    const int64_t groups = n_rows_ / 4;
    tokens4_bytes_ = static_cast<size_t>(cols_ / quant::traits(type_).block_size) * sizeof(BlockQ8Kx4);
    if (tokens4_.size() < static_cast<size_t>(groups) * tokens4_bytes_) tokens4_.resize(static_cast<size_t>(groups) * tokens4_bytes_);
    pool.parallel_for(groups, 1, [&](int64_t b, int64_t e) {
      for (int64_t g = b; g < e; ++g) {
        const void* rows[4] = {row(4 * g), row(4 * g + 1), row(4 * g + 2), row(4 * g + 3)};
        interleave_q8_K_x4(rows, tokens4_.data() + static_cast<size_t>(g) * tokens4_bytes_, cols_);
      }
    });
    tokens4_ready_ = true;
  }
  return tokens4_.data();
}

namespace {

// Eight-row groups of a repacked matrix, up to four tokens per call; each
// group's weights stay in cache while every token of the batch meets them.
// `arith`: the float steps every row takes (see matmul()).
void matmul_x8(const Matrix& w, const QuantizedActs& x, float* out, ThreadPool& pool, RowArith arith) {
  const int64_t n_tok = x.rows(), n_out = w.rows, groups = n_out / 8;
  const size_t group_bytes = x8_group_bytes(w.type, w.cols);
  const int64_t grain = std::max<int64_t>(1, std::min<int64_t>(8, groups / (8 * pool.threads())));
  // Q4_K's four-token kernel is llama.cpp's gemm order: rows outside a gemm
  // group go at most three at a time (its gemv order).
  const int per_call = w.type == quant::Type::Q4_K && arith != RowArith::kGemm4 ? 3 : 4;
  const bool batch = arith == RowArith::kBatch;
  // Kernels picked once: per_call tokens per call, then the remainder.
  const X8DotFn full = x8_kernel(w.type, per_call, batch);
  const int rest = static_cast<int>(n_tok % per_call);
  const X8DotFn tail = rest ? x8_kernel(w.type, rest, batch) : nullptr;
  pool.parallel_for(groups, grain, [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g)
      for (int64_t t = 0; t < n_tok; t += per_call) {
        const int n = static_cast<int>(std::min<int64_t>(per_call, n_tok - t));
        const uint8_t* a[4] = {x.row(t), nullptr, nullptr, nullptr};
        for (int k = 1; k < n; ++k) a[k] = x.row(t + k);
        (n == per_call ? full : tail)(w.cols, w.x8 + g * group_bytes, a, out + t * n_out + 8 * g,
                                      static_cast<size_t>(n_out));
      }
  });
}

// Four-row groups of a repacked legacy matrix: tokens two at a time, then
// one; in a prefill, blocks of groups small enough for L2 meet every token
// before the next block is read.
void matmul_x4(const Matrix& w, const QuantizedActs& x, float* out, ThreadPool& pool) {
  const VecDotRowsFn one = x4_rows_kernel(w.type);
  const VecDotRows2Fn two = x4_rows2_kernel(w.type);
  const int64_t n_tok = x.rows(), n_out = w.rows, groups = n_out / 4;
  const size_t group_bytes = x4_group_bytes(w.type, w.cols);
  const int64_t grain = std::max<int64_t>(1, std::min<int64_t>(16, groups / (8 * pool.threads())));
  const int64_t block = n_tok == 1 ? groups : std::max<int64_t>(1, static_cast<int64_t>((256u << 10) / group_bytes));
  pool.parallel_for(groups, grain, [&](int64_t g0, int64_t g1) {
    for (int64_t b0 = g0; b0 < g1; b0 += block) {
      const int64_t b1 = std::min(g1, b0 + block);
      int64_t t = 0;
      for (; t + 2 <= n_tok; t += 2)
        for (int64_t g = b0; g < b1; ++g)
          two(w.cols, w.x4 + g * group_bytes, 0, x.row(t), x.row(t + 1), out + t * n_out + 4 * g,
              out + (t + 1) * n_out + 4 * g);
      for (; t < n_tok; ++t)
        for (int64_t g = b0; g < b1; ++g) one(w.cols, w.x4 + g * group_bytes, 0, x.row(t), out + t * n_out + 4 * g);
    }
  });
}

// One arithmetic for all rows of x.
void matmul_rows(const Matrix& w, const QuantizedActs& x, float* out, ThreadPool& pool, RowArith arith) {
  if (w.x8 && x.type() == quant::Type::Q8_K) {
    matmul_x8(w, x, out, pool, arith);
    return;
  }
  if (w.x4) {
    matmul_x4(w, x, out, pool);
    return;
  }
  const bool batch = arith == RowArith::kBatch;
  const VecDotFn dot = batch ? batch_vec_dot(w.type) : best_vec_dot(w.type);
  const VecDotRowsFn dot4 = batch ? batch_vec_dot_rows4(w.type) : best_vec_dot_rows4(w.type);
  const VecDotRows2Fn dot4x2 = best_vec_dot_rows4x2(w.type);
  const KTokens4Fn tok4 = x.type() == quant::Type::Q8_K && x.rows() >= 4
                              ? (batch ? batch_vec_dot_tokens4(w.type) : best_vec_dot_tokens4(w.type))
                              : nullptr;
  const uint8_t* a4 = tok4 ? x.tokens4(pool) : nullptr;  // interleaved before the parallel region
  const int64_t n_tok = x.rows();
  const int64_t n_out = w.rows;
  // Work split by chunks of output rows. Within a chunk, blocks of rows small
  // enough to stay in L2 (~256 KiB of weights) meet every token of the batch
  // before the next block is read, so a prefill reads the weights from
  // memory once, not once per token group (also with one thread, where the
  // whole matrix is one chunk).
  const int64_t grain = std::max<int64_t>(4, std::min<int64_t>(64, n_out / (8 * pool.threads())) & ~int64_t{3});
  const int64_t block_rows =
      n_tok == 1 ? n_out : std::max<int64_t>(4, std::min<int64_t>(64, (256 << 10) / static_cast<int64_t>(w.row_bytes)) & ~int64_t{3});
  auto rows_block = [&](int64_t r0, int64_t r1) {
    int64_t t = 0;
    if (tok4)  // Four tokens share each broadcast weight group.
      for (; t + 4 <= n_tok; t += 4) tok4(w.cols, w.row(r0), w.row_bytes, r1 - r0, a4 + (t / 4) * x.tokens4_bytes(), out + t * n_out + r0, n_out);
    if (dot4x2) {
      // Two tokens at a time share each unpacked weight block.
      for (; t + 2 <= n_tok; t += 2) {
        const uint8_t* a0 = x.row(t);
        const uint8_t* a1 = x.row(t + 1);
        float* o0 = out + t * n_out;
        float* o1 = o0 + n_out;
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) dot4x2(w.cols, w.row(r), w.row_bytes, a0, a1, o0 + r, o1 + r);
        for (; r < r1; ++r) {
          o0[r] = dot(w.cols, w.row(r), a0);
          o1[r] = dot(w.cols, w.row(r), a1);
        }
      }
    }
    for (; t < n_tok; ++t) {
      const uint8_t* a = x.row(t);
      float* o = out + t * n_out;
      int64_t r = r0;
      if (dot4)
        for (; r + 4 <= r1; r += 4) dot4(w.cols, w.row(r), w.row_bytes, a, o + r);
      for (; r < r1; ++r) o[r] = dot(w.cols, w.row(r), a);
    }
  };
  pool.parallel_for(n_out, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t b = r0; b < r1; b += block_rows) rows_block(b, std::min(r1, b + block_rows));
  });
}

}  // namespace

// The float steps llama.cpp takes for row j of a run of m rows of one
// sequence, on weights `w`: its gemm order for Q4_K rows in the run's whole
// groups of four (when it repacks them: our eight-row layout), its tiled
// order from kBatchArithmeticTokens rows on for the types that have one,
// else its vec_dot / gemv order.
RowArith row_arith(const Matrix& w, int64_t j, int64_t m) {
  if (w.type == quant::Type::Q4_K && w.x8) return m >= 4 && j < m - m % 4 ? RowArith::kGemm4 : RowArith::kVecDot;
  const bool has_batch = w.x8 ? w.type != quant::Type::Q4_K : batch_vec_dot(w.type) != nullptr;
  return has_batch && m >= kBatchArithmeticTokens ? RowArith::kBatch : RowArith::kVecDot;
}

void matmul(const Matrix& w, const QuantizedActs& x, float* out, ThreadPool& pool, const std::vector<int32_t>& runs) {
  const int64_t n_tok = x.rows();
  int64_t covered = 0;
  for (const int32_t m : runs) covered += m;
  if (!runs.empty() && covered != n_tok)
    throw core::Error("matmul: the runs cover " + std::to_string(covered) + " rows, the batch has " +
                      std::to_string(n_tok));
  if (runs.size() <= 1) {
    // One run. Every row alike, but for a Q4_K gemm run's last n % 4 rows,
    // which matmul_x8 hands to its one-to-three-token (gemv) kernels anyway.
    matmul_rows(w, x, out, pool, row_arith(w, 0, n_tok));
    return;
  }
  // Rows by arithmetic (kVecDot, kBatch, kGemm4), each run's rows in order;
  // kept per thread so a decode step allocates nothing.
  thread_local std::vector<int32_t> rows[3];
  for (auto& r : rows) r.clear();
  int32_t t = 0;
  for (const int32_t m : runs)
    for (int32_t j = 0; j < m; ++j, ++t) rows[static_cast<int>(row_arith(w, j, m))].push_back(t);
  for (int c = 0; c < 3; ++c) {
    if (rows[c].size() == static_cast<size_t>(n_tok)) {  // all rows alike: no copies
      matmul_rows(w, x, out, pool, static_cast<RowArith>(c));
      return;
    }
  }
  // Mixed: each arithmetic over a gathered copy of its rows (a second read of
  // the weights, only in steps that mix decode rows with a long prompt).
  thread_local QuantizedActs part;
  thread_local std::vector<float> part_out;
  const int64_t n_out = w.rows;
  for (int c = 0; c < 3; ++c) {
    if (rows[c].empty()) continue;
    part.gather(x, rows[c]);
    part_out.resize(rows[c].size() * static_cast<size_t>(n_out));
    matmul_rows(w, part, part_out.data(), pool, static_cast<RowArith>(c));
    for (size_t i = 0; i < rows[c].size(); ++i)
      std::memcpy(out + static_cast<int64_t>(rows[c][i]) * n_out, part_out.data() + i * n_out, n_out * sizeof(float));
  }
}

}  // namespace tandem::cpu
