#pragma once
// Measurements `tandem bench` and `make bench` report side by side in one
// process: how fast this machine streams memory (the ceiling of a decode
// step, which reads every weight once) and how fast each quantized
// matrix-vector kernel streams its weights through the same thread pool.
#include <cstdint>
#include <vector>

#include "core/quant_types.h"

namespace tandem::cpu {

// Best-of-`reps` read bandwidth (GB/s, 1e9 bytes) of `threads` threads, each
// reading its share of a `bytes`-sized buffer (far larger than the caches)
// with 256-bit loads where the CPU has AVX2.
double read_probe_gbps(int threads, size_t bytes = size_t{1} << 30, int reps = 5);

struct KernelThroughput {
  core::quant::Type type;
  int64_t rows = 0, cols = 0;
  double weight_bytes = 0;  // bytes of one matrix
  double gbps = 0;          // best-of-reps weight bytes per second / 1e9 (activation quantization included)
};

// Throws core::Error naming the problem when matvec_throughput cannot run
// `type` with rows of `cols` values (no quantizer or kernel, ragged rows).
void check_matvec(core::quant::Type type, int64_t cols);

// y = W·x for a `rows × cols` matrix of `type` (random data; 64 distinct
// quantized rows repeated, so making it is quick while the matrix still far
// exceeds the caches), `reps` times; returns the best rate.
KernelThroughput matvec_throughput(core::quant::Type type, int64_t rows, int64_t cols, int threads, int reps = 10);

}  // namespace tandem::cpu
