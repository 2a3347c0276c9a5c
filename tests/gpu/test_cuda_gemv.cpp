// CUDA GEMV and f16 row dequantization against the host reference: weights
// quantized on the host with traits(t).from_float (random valid blocks for
// the i-quants Tandem cannot quantize to), the reference dequantized with
// traits(t).to_float (bit-identical to the dequant_chunk code the kernels run) and
// dotted with the activations in double precision. The GPU sums the same f32
// values in another order, so the normalized error stays near f32 rounding.
#include <cuda_fp16.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/quant_random_blocks.h"
#include "core/quant_types.h"
#include "gpu_worker/cuda/device_matrix.h"
#include "gpu_worker/cuda/gemv.h"
#include "tests/gpu/gpu_test_support.h"

namespace q = tandem::core::quant;
using q::Type;
using tandem::gpu::DeviceMatrix;
using tandem::test::DeviceBuffer;
using tandem::test::nmse_sqrt;
using tandem::test::random_floats;

namespace {

const Type kIQuantTypes[] = {Type::IQ2_XXS, Type::IQ2_XS, Type::IQ2_S,  Type::IQ3_XXS, Type::IQ3_S,
                             Type::IQ1_S,   Type::IQ1_M,  Type::IQ4_NL, Type::IQ4_XS};

const Type kTypes[] = {Type::F32,   Type::F16,     Type::BF16,   Type::Q4_0,  Type::Q4_1,    Type::Q5_0,
                       Type::Q5_1,  Type::Q8_0,    Type::Q2_K,   Type::Q3_K,  Type::Q4_K,    Type::Q5_K,
                       Type::Q6_K,  Type::IQ2_XXS, Type::IQ2_XS, Type::IQ2_S, Type::IQ3_XXS, Type::IQ3_S,
                       Type::IQ1_S, Type::IQ1_M,   Type::IQ4_NL, Type::IQ4_XS};

constexpr double kMaxError = 1e-5;

std::string name_of(Type t) { return std::string(q::type_name(t)); }

// A weight matrix quantized on the host, rows `row_bytes` apart.
struct HostMatrix {
  Type type = Type::F32;
  int64_t rows = 0, cols = 0;
  size_t row_bytes = 0;
  std::vector<uint8_t> bytes;
};

HostMatrix make_matrix(Type t, int64_t rows, int64_t cols, uint64_t seed, size_t pad = 0) {
  HostMatrix m;
  m.type = t;
  m.rows = rows;
  m.cols = cols;
  m.row_bytes = q::row_bytes(t, cols) + pad;
  m.bytes.assign(static_cast<size_t>(rows) * m.row_bytes, 0);
  const std::vector<float> w = random_floats(static_cast<size_t>(rows * cols), seed);
  const q::TypeTraits& tr = q::traits(t);
  std::mt19937_64 rng(seed);
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* dst = m.bytes.data() + static_cast<size_t>(r) * m.row_bytes;
    const float* src = w.data() + r * cols;
    if (t == Type::F32)
      std::memcpy(dst, src, static_cast<size_t>(cols) * sizeof(float));
    else if (tr.from_float)
      tr.from_float(src, dst, cols);
    else
      q::random_valid_row(t, rng, 1.0f, dst, cols);  // any bits are a valid i-quant block
  }
  return m;
}

std::vector<float> host_row(const HostMatrix& m, int64_t r) {
  std::vector<float> out(static_cast<size_t>(m.cols));
  q::traits(m.type).to_float(m.bytes.data() + static_cast<size_t>(r) * m.row_bytes, out.data(), m.cols);
  return out;
}

// y[t][r] = sum_c W[r][c] x[t][c] in double from the host-dequantized rows.
std::vector<float> host_gemv(const HostMatrix& m, const std::vector<float>& x, int n_tokens) {
  std::vector<float> y(static_cast<size_t>(n_tokens * m.rows));
  for (int64_t r = 0; r < m.rows; ++r) {
    const std::vector<float> w = host_row(m, r);
    for (int t = 0; t < n_tokens; ++t) {
      double s = 0;
      for (int64_t c = 0; c < m.cols; ++c) s += static_cast<double>(w[c]) * x[t * m.cols + c];
      y[t * m.rows + r] = static_cast<float>(s);
    }
  }
  return y;
}

DeviceMatrix device_view(const HostMatrix& m, const DeviceBuffer<uint8_t>& buf) {
  DeviceMatrix d;
  d.data = buf.get();
  d.type = m.type;
  d.rows = m.rows;
  d.cols = m.cols;
  d.row_bytes = m.row_bytes;
  return d;
}

// Runs gemv for n_tokens and returns the normalized error against the host.
// x_offset floats of lead-in before x (1: misaligned activations).
double gemv_error(const HostMatrix& m, int n_tokens, uint64_t seed, size_t x_offset = 0) {
  const std::vector<float> x = random_floats(static_cast<size_t>(n_tokens * m.cols), seed);
  std::vector<float> x_padded(x_offset, 0.0f);
  x_padded.insert(x_padded.end(), x.begin(), x.end());
  DeviceBuffer<uint8_t> w_dev(m.bytes);
  DeviceBuffer<float> x_dev(x_padded);
  DeviceBuffer<float> y_dev(static_cast<size_t>(n_tokens * m.rows));
  tandem::gpu::gemv(device_view(m, w_dev), x_dev.get() + x_offset, y_dev.get(), n_tokens, nullptr);
  const std::vector<float> y = y_dev.download();
  return nmse_sqrt(y, host_gemv(m, x, n_tokens));
}

// Columns of the odd shape: not a whole number of 32-chunk tiles, and for
// the 32-value blocks a row length that is not a multiple of 16 bytes.
int64_t odd_cols(Type t) {
  const int64_t bs = q::traits(t).block_size;
  if (bs == 256) return 3 * 256;
  if (bs == 32) return 25 * 32;
  return 41 * 16;
}

}  // namespace

TEST(CudaGemv, MatchesHostReferenceForEveryType) {
  TANDEM_REQUIRE_GPU();
  for (Type t : kTypes) {
    SCOPED_TRACE(name_of(t));
    ASSERT_TRUE(tandem::gpu::gemv_supports(t));
    const HostMatrix m = make_matrix(t, 64, 512, 1000 + static_cast<uint64_t>(t));
    for (int n_tokens : {1, 2, 3, 8}) {
      SCOPED_TRACE("n_tokens " + std::to_string(n_tokens));
      EXPECT_LT(gemv_error(m, n_tokens, 77 + static_cast<uint64_t>(n_tokens)), kMaxError);
    }
  }
}

TEST(CudaGemv, OddShapesAndPaddedRows) {
  TANDEM_REQUIRE_GPU();
  for (Type t : kTypes) {
    SCOPED_TRACE(name_of(t));
    // 33 rows: a partial group of rows; odd columns: partial tiles and rows
    // starting at every offset mod 16.
    const HostMatrix m = make_matrix(t, 33, odd_cols(t), 2000 + static_cast<uint64_t>(t));
    // Row stride larger than the row (4 bytes of padding keep every alignment).
    const HostMatrix padded = make_matrix(t, 9, odd_cols(t), 3000 + static_cast<uint64_t>(t), 4);
    for (int n_tokens : {1, 3, 8}) {
      SCOPED_TRACE("n_tokens " + std::to_string(n_tokens));
      EXPECT_LT(gemv_error(m, n_tokens, 11), kMaxError);
      EXPECT_LT(gemv_error(padded, n_tokens, 12), kMaxError);
    }
  }
}

TEST(CudaGemv, MisalignedActivations) {
  TANDEM_REQUIRE_GPU();
  for (Type t : {Type::F16, Type::Q4_0, Type::Q4_K, Type::Q6_K, Type::IQ2_XXS, Type::IQ4_NL}) {
    SCOPED_TRACE(name_of(t));
    const HostMatrix m = make_matrix(t, 16, 512, 4000 + static_cast<uint64_t>(t));
    for (int n_tokens : {1, 4}) {
      SCOPED_TRACE("n_tokens " + std::to_string(n_tokens));
      EXPECT_LT(gemv_error(m, n_tokens, 13, 1), kMaxError);
    }
  }
}

TEST(CudaGemv, DequantRowsF16MatchesHostBitForBit) {
  TANDEM_REQUIRE_GPU();
  constexpr int64_t kRow0 = 5, kRows = 8;  // rows 5..12 of 16
  for (Type t : kTypes) {
    SCOPED_TRACE(name_of(t));
    const HostMatrix m = make_matrix(t, 16, 512, 5000 + static_cast<uint64_t>(t));
    std::vector<uint16_t> expect;
    for (int64_t r = kRow0; r < kRow0 + kRows; ++r)
      for (float v : host_row(m, r)) {
        const __half h = __float2half_rn(v);
        uint16_t bits;
        std::memcpy(&bits, &h, sizeof bits);
        expect.push_back(bits);
      }
    DeviceBuffer<uint8_t> w_dev(m.bytes);
    const size_t n = static_cast<size_t>(kRows * m.cols);
    // offset 0: 16-byte stores; offset 1: an output that is only 2-byte aligned.
    for (size_t offset : {size_t{0}, size_t{1}}) {
      SCOPED_TRACE("output offset " + std::to_string(offset));
      DeviceBuffer<uint16_t> out(n + offset);
      tandem::gpu::dequant_rows_f16(device_view(m, w_dev), kRow0, kRows, reinterpret_cast<__half*>(out.get() + offset),
                                    nullptr);
      const std::vector<uint16_t> got_all = out.download();
      const std::vector<uint16_t> got(got_all.begin() + static_cast<std::ptrdiff_t>(offset), got_all.end());
      ASSERT_EQ(got.size(), expect.size());
      size_t mismatches = 0, first = 0;
      for (size_t i = 0; i < n; ++i)
        if (got[i] != expect[i] && mismatches++ == 0) first = i;
      EXPECT_EQ(mismatches, 0u) << "first at value " << first << ": got 0x" << std::hex << got[first] << ", want 0x"
                                << expect[first];
    }
  }
}

TEST(CudaGemv, RejectsBadInput) {
  TANDEM_REQUIRE_GPU();
  EXPECT_FALSE(tandem::gpu::gemv_supports(Type::Q8_1));
  EXPECT_FALSE(tandem::gpu::gemv_supports(Type::Q8_K));
  for (Type t : kIQuantTypes) EXPECT_TRUE(tandem::gpu::gemv_supports(t)) << name_of(t);

  DeviceBuffer<uint8_t> w_dev(std::vector<uint8_t>(64 * 1024, 0));
  DeviceBuffer<float> x_dev(16 * 512);
  DeviceBuffer<float> y_dev(16 * 64);
  DeviceBuffer<uint16_t> h_dev(64 * 512);
  auto* h = reinterpret_cast<__half*>(h_dev.get());

  DeviceMatrix q81;  // Q8_1 is an activation format: no weight kernels
  q81.data = w_dev.get();
  q81.type = Type::Q8_1;
  q81.rows = 4;
  q81.cols = 64;
  q81.row_bytes = q::row_bytes(Type::Q8_1, 64);
  EXPECT_THROW(tandem::gpu::gemv(q81, x_dev.get(), y_dev.get(), 1, nullptr), tandem::core::Error);
  EXPECT_THROW(tandem::gpu::dequant_rows_f16(q81, 0, 1, h, nullptr), tandem::core::Error);
  try {
    tandem::gpu::gemv(q81, x_dev.get(), y_dev.get(), 1, nullptr);
  } catch (const tandem::core::Error& e) {
    EXPECT_NE(std::string(e.what()).find("Q8_1"), std::string::npos) << e.what();
  }

  DeviceMatrix q40;
  q40.data = w_dev.get();
  q40.type = Type::Q4_0;
  q40.rows = 8;
  q40.cols = 512;
  q40.row_bytes = q::row_bytes(Type::Q4_0, 512);
  for (int n_tokens : {0, -1, 9}) {
    SCOPED_TRACE("n_tokens " + std::to_string(n_tokens));
    EXPECT_THROW(tandem::gpu::gemv(q40, x_dev.get(), y_dev.get(), n_tokens, nullptr), tandem::core::Error);
  }
  EXPECT_THROW(tandem::gpu::dequant_rows_f16(q40, 4, 5, h, nullptr), tandem::core::Error);  // rows 4..8 of 8

  DeviceMatrix ragged = q40;  // 48 columns: not a multiple of Q4_0's 32
  ragged.cols = 48;
  EXPECT_THROW(tandem::gpu::gemv(ragged, x_dev.get(), y_dev.get(), 1, nullptr), tandem::core::Error);
  DeviceMatrix short_rows = q40;  // row stride smaller than a row
  short_rows.row_bytes = q40.row_bytes - 18;
  EXPECT_THROW(tandem::gpu::gemv(short_rows, x_dev.get(), y_dev.get(), 1, nullptr), tandem::core::Error);

  // The valid matrix still works after the rejected calls.
  EXPECT_NO_THROW(tandem::gpu::gemv(q40, x_dev.get(), y_dev.get(), 8, nullptr));
  TANDEM_CUDA_CHECK(cudaDeviceSynchronize());
}
