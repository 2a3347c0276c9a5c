// Matrix-vector products (the decode step) on quantized weights: bytes of
// weights streamed per second, per type, at 1 and 2 threads.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "cpu_worker/matmul.h"

namespace {

using tandem::core::quant::Type;
namespace quant = tandem::core::quant;

void BM_Matvec(benchmark::State& state, Type type) {
  const int64_t cols = 4096, rows = 4096;
  const int threads = static_cast<int>(state.range(0));
  const auto& tr = quant::traits(type);
  const size_t rb = quant::row_bytes(type, cols);
  std::vector<uint8_t> w(rb * rows);  // [rows × row_bytes] weight blocks
  std::vector<float> tmp(cols);       // one f32 row before quantization
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  for (int64_t r = 0; r < rows; ++r) {
    for (auto& v : tmp) v = nd(rng);
    tr.from_float(tmp.data(), w.data() + r * rb, cols);
  }
  std::vector<float> x(cols), y(rows);  // input row, output row
  for (auto& v : x) v = nd(rng);
  tandem::cpu::Matrix m{w.data(), type, cols, rows, rb};
  tandem::cpu::ThreadPool pool(threads);
  tandem::cpu::QuantizedActs acts;
  for (auto _ : state) {
    acts.quantize(x.data(), 1, cols, tandem::cpu::act_type_for(type), pool);
    tandem::cpu::matmul(m, acts, y.data(), pool);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(w.size()));
}

}  // namespace

BENCHMARK_CAPTURE(BM_Matvec, Q4_0, Type::Q4_0)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_Matvec, Q4_1, Type::Q4_1)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_Matvec, Q8_0, Type::Q8_0)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_Matvec, Q4_K, Type::Q4_K)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_Matvec, Q6_K, Type::Q6_K)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_Matvec, F16, Type::F16)->Arg(1)->Arg(2)->UseRealTime();

BENCHMARK_MAIN();
