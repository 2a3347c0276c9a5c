// The kernels' compute ceiling: each dot-product path on weights that stay
// in L2 (128 rows × 4096 values), one thread, so memory is not the limit.
// Compare with `tandem bench kernels` (matrices far larger than the caches):
// where a kernel's ceiling here is close to its rate there, it is
// compute-bound. Weight bytes per second; `make bench` runs it.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "core/quant_types.h"
#include "cpu_worker/repack_x4.h"
#include "cpu_worker/repack_x8.h"
#include "cpu_worker/simd_dot.h"

namespace {

namespace quant = tandem::core::quant;
using quant::Type;
namespace cpu = tandem::cpu;

constexpr int64_t kRows = 128, kCols = 4096;

struct Data {
  size_t rb = 0;
  std::vector<uint8_t> w;                  // [kRows × rb] weight blocks
  std::vector<std::vector<uint8_t>> acts;  // [4][act row bytes]
};

Data make(Type t) {
  const auto& tr = quant::traits(t);
  Data d;
  d.rb = quant::row_bytes(t, kCols);
  d.w.resize(d.rb * kRows);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(kCols);
  for (int64_t r = 0; r < kRows; ++r) {
    for (auto& v : x) v = nd(rng);
    tr.from_float(x.data(), d.w.data() + r * d.rb, kCols);
  }
  for (int t = 0; t < 4; ++t) {
    for (auto& v : x) v = nd(rng);
    d.acts.emplace_back(quant::row_bytes(tr.vec_dot_type, kCols));
    cpu::quantize_activations(tr.vec_dot_type, x.data(), d.acts.back().data(), kCols);
  }
  return d;
}

// Row layout, one token: the 4-row kernel where there is one, else single rows.
void BM_RowLayout(benchmark::State& state, Type t) {
  const Data d = make(t);
  const auto dot = cpu::best_vec_dot(t);
  const auto dot4 = cpu::best_vec_dot_rows4(t);
  std::vector<float> out(kRows);
  for (auto _ : state) {
    for (int64_t r = 0; r < kRows; r += 4) {
      if (dot4) {
        dot4(kCols, d.w.data() + r * d.rb, d.rb, d.acts[0].data(), out.data() + r);
      } else {
        for (int k = 0; k < 4; ++k) out[r + k] = dot(kCols, d.w.data() + (r + k) * d.rb, d.acts[0].data());
      }
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * d.w.size()));
}

// Four-row layout of the legacy types (one token): scales side by side.
void BM_FourRows(benchmark::State& state, Type t) {
  if (!cpu::x4_enabled(t, kRows, kCols)) {
    state.SkipWithError("no four-row layout for this type on this CPU");
    return;
  }
  const Data d = make(t);
  const std::vector<uint8_t> packed = cpu::repack_x4(t, d.w.data(), d.rb, kRows, kCols);
  const size_t group = cpu::x4_group_bytes(t, kCols);
  const auto one = cpu::x4_rows_kernel(t);
  std::vector<float> out(kRows);
  for (auto _ : state) {
    for (int64_t g = 0; g < kRows / 4; ++g) one(kCols, packed.data() + g * group, 0, d.acts[0].data(), out.data() + 4 * g);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * d.w.size()));
}

// Eight-row layout, n tokens per call (state.range(0)); bytes counted once
// per token, as a decode of that many sequences would read them.
void BM_EightRows(benchmark::State& state, Type t) {
  if (!cpu::x8_enabled(t, kRows, kCols)) {
    state.SkipWithError("no eight-row layout for this type on this CPU");
    return;
  }
  const Data d = make(t);
  const int n = static_cast<int>(state.range(0));
  const std::vector<uint8_t> packed = cpu::repack_x8(t, d.w.data(), d.rb, kRows, kCols);
  const size_t group = cpu::x8_group_bytes(t, kCols);
  const uint8_t* a[4] = {d.acts[0].data(), d.acts[1].data(), d.acts[2].data(), d.acts[3].data()};
  std::vector<float> out(4 * kRows);
  for (auto _ : state) {
    for (int64_t g = 0; g < kRows / 8; ++g) cpu::x8_dot(t, kCols, packed.data() + g * group, a, n, out.data() + 8 * g, kRows);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * d.w.size() * n));
}

}  // namespace

BENCHMARK_CAPTURE(BM_RowLayout, Q4_0, Type::Q4_0);
BENCHMARK_CAPTURE(BM_RowLayout, Q4_1, Type::Q4_1);
BENCHMARK_CAPTURE(BM_RowLayout, Q8_0, Type::Q8_0);
BENCHMARK_CAPTURE(BM_RowLayout, Q3_K, Type::Q3_K);
BENCHMARK_CAPTURE(BM_RowLayout, Q4_K, Type::Q4_K);
BENCHMARK_CAPTURE(BM_RowLayout, Q5_K, Type::Q5_K);
BENCHMARK_CAPTURE(BM_RowLayout, Q6_K, Type::Q6_K);
BENCHMARK_CAPTURE(BM_FourRows, Q4_0, Type::Q4_0);
BENCHMARK_CAPTURE(BM_FourRows, Q4_1, Type::Q4_1);
BENCHMARK_CAPTURE(BM_FourRows, Q8_0, Type::Q8_0);
BENCHMARK_CAPTURE(BM_EightRows, Q3_K, Type::Q3_K)->Arg(1)->Arg(4);
BENCHMARK_CAPTURE(BM_EightRows, Q4_K, Type::Q4_K)->Arg(1)->Arg(4);
BENCHMARK_CAPTURE(BM_EightRows, Q6_K, Type::Q6_K)->Arg(1)->Arg(4);

BENCHMARK_MAIN();
