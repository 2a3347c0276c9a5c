#include "cpu_worker/throughput_probe.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>

#include "core/error.h"
#include "core/quant_random_blocks.h"
#include "cpu_worker/matmul.h"
#include "cpu_worker/repack_x4.h"
#include "cpu_worker/repack_x8.h"
#include "cpu_worker/simd_dot.h"
#include "cpu_worker/simd_x86.h"
#include "cpu_worker/thread_pool.h"

namespace tandem::cpu {

namespace {

using Clock = std::chrono::steady_clock;

#if defined(__x86_64__) || defined(__i386__)
// XOR of every 32-byte word of [p, p + n); four independent chains so the
// loads, not the XORs, are the limit. n is a multiple of 128.
TANDEM_AVX2 uint64_t read_avx2(const uint8_t* p, size_t n) {
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  for (size_t i = 0; i < n; i += 128) {
    a = _mm256_xor_si256(a, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    b = _mm256_xor_si256(b, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    c = _mm256_xor_si256(c, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    d = _mm256_xor_si256(d, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  const __m256i x = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
  return static_cast<uint64_t>(_mm256_extract_epi64(x, 0) ^ _mm256_extract_epi64(x, 3));
}
#endif

uint64_t read_scalar(const uint8_t* p, size_t n) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  for (size_t i = 0; i < n; i += 32) {
    uint64_t w[4];
    std::memcpy(w, p + i, 32);
    a ^= w[0];
    b ^= w[1];
    c ^= w[2];
    d ^= w[3];
  }
  return a ^ b ^ c ^ d;
}

uint64_t read_all(const uint8_t* p, size_t n) {
#if defined(__x86_64__) || defined(__i386__)
  if (cpu_has_avx2()) return read_avx2(p, n);
#endif
  return read_scalar(p, n);
}

}  // namespace

double read_probe_gbps(int threads, size_t bytes, int reps) {
  if (threads < 1) throw core::Error("read probe: threads must be >= 1");
  constexpr size_t kChunk = size_t{1} << 20;  // work unit: 1 MiB
  bytes = std::max(bytes / kChunk, size_t{1}) * kChunk;
  // 64-byte aligned so every 256-bit load is aligned; written first so every
  // page is really there.
  std::unique_ptr<uint8_t[], void (*)(uint8_t*)> buf(static_cast<uint8_t*>(std::aligned_alloc(64, bytes)),
                                                      [](uint8_t* p) { std::free(p); });
  if (!buf) throw core::Error("read probe: cannot allocate " + std::to_string(bytes >> 20) + " MiB");
  std::memset(buf.get(), 1, bytes);
  ThreadPool pool(threads);
  const int64_t chunks = static_cast<int64_t>(bytes / kChunk);
  std::vector<uint64_t> sink(static_cast<size_t>(chunks));  // keeps the reads from being optimised away
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    pool.parallel_for(chunks, std::max<int64_t>(1, chunks / threads), [&](int64_t b, int64_t e) {
      for (int64_t c = b; c < e; ++c) sink[c] = read_all(buf.get() + c * kChunk, kChunk);
    });
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, static_cast<double>(bytes) / s / 1e9);
  }
  volatile uint64_t keep = 0;
  for (uint64_t v : sink) keep = keep ^ v;
  (void)keep;
  return best;
}

void check_matvec(core::quant::Type type, int64_t cols) {
  const auto& tr = core::quant::traits(type);
  if ((!tr.from_float && !core::quant::random_rows_supported(type)) || !best_vec_dot(type))
    throw core::Error("no quantizer or dot product for " + std::string(tr.name));
  core::quant::row_bytes(type, cols);  // throws for rows that are not whole blocks
}

KernelThroughput matvec_throughput(core::quant::Type type, int64_t rows, int64_t cols, int threads, int reps) {
  namespace quant = core::quant;
  check_matvec(type, cols);
  const auto& tr = quant::traits(type);
  const size_t rb = quant::row_bytes(type, cols);
  constexpr int64_t kDistinct = 64;  // distinct rows, repeated over the matrix
  std::vector<uint8_t> w(rb * static_cast<size_t>(rows));  // [rows × row bytes] weight blocks
  std::vector<float> x(static_cast<size_t>(cols));         // one f32 row (weights, then the input)
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::mt19937_64 block_rng(7);  // i-quants without a quantizer: random valid blocks
  for (int64_t r = 0; r < std::min(rows, kDistinct); ++r) {
    if (!tr.from_float) {
      quant::random_valid_row(type, block_rng, 0.02f, w.data() + r * rb, cols);
      continue;
    }
    for (auto& v : x) v = nd(rng);
    tr.from_float(x.data(), w.data() + r * rb, cols);
  }
  for (int64_t r = kDistinct; r < rows; ++r) std::memcpy(w.data() + r * rb, w.data() + (r % kDistinct) * rb, rb);
  for (auto& v : x) v = nd(rng);
  std::vector<float> y(static_cast<size_t>(rows));
  Matrix m{w.data(), type, cols, rows, rb};
  // What the engine runs: the eight- or four-row layout where it repacks this type.
  std::vector<uint8_t> packed;
  if (x8_enabled(type, rows, cols)) {
    packed = repack_x8(type, w.data(), rb, rows, cols);
    m.x8 = packed.data();
  } else if (x4_enabled(type, rows, cols)) {
    packed = repack_x4(type, w.data(), rb, rows, cols);
    m.x4 = packed.data();
  }
  ThreadPool pool(threads);
  QuantizedActs acts;
  KernelThroughput out{type, rows, cols, static_cast<double>(w.size()), 0};
  for (int r = 0; r < reps + 1; ++r) {  // the first run warms up (page faults, thread start)
    const auto t0 = Clock::now();
    acts.quantize(x.data(), 1, cols, act_type_for(type), pool);
    matmul(m, acts, y.data(), pool);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (r > 0) out.gbps = std::max(out.gbps, out.weight_bytes / s / 1e9);
  }
  return out;
}

}  // namespace tandem::cpu
