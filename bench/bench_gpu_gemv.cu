// GEMV bandwidth on the device at 70B shapes.
//
// Usage: tandem_bench_gpu_gemv [--json]
//
// Measures the device-to-device cudaMemcpy bandwidth (1 GiB, best of 10,
// counting read + write bytes), then times tandem::gpu::gemv with one token
// for each weight type and shape (rows x cols) with cudaEvents: warm-up, then
// the median of 25 runs, each after a write to a scratch buffer twice the L2
// size so the weights come from HBM and not from a warm L2. Reports the
// achieved weight-read rate and its share of the copy's read rate (copy GB/s
// / 2: a GEMV only reads). Without a CUDA device it says so and exits 0.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/quant_types.h"
#include "gpu_worker/cuda/cuda_error.h"
#include "gpu_worker/cuda/device_matrix.h"
#include "gpu_worker/cuda/gemv.h"

namespace {

namespace q = tandem::core::quant;
using q::Type;

constexpr int kWarmup = 3;
constexpr int kRuns = 25;
constexpr int kCopyRuns = 10;
constexpr int64_t kTileRows = 256;  // rows quantized on the host, then replicated

struct Shape {
  int64_t rows, cols;
};

struct Result {
  std::string type;
  Shape shape;
  size_t bytes;
  double us;
  double gbps;
  double pct_of_copy_read;
};

class Events {
 public:
  Events() {
    TANDEM_CUDA_CHECK(cudaEventCreate(&start_));
    TANDEM_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~Events() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;
  cudaEvent_t start() const { return start_; }
  cudaEvent_t stop() const { return stop_; }
  float elapsed_ms() const {
    TANDEM_CUDA_CHECK(cudaEventSynchronize(stop_));
    float ms = 0;
    TANDEM_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    return ms;
  }

 private:
  cudaEvent_t start_{}, stop_{};
};

class DeviceMemory {
 public:
  explicit DeviceMemory(size_t bytes) : bytes_(bytes) { TANDEM_CUDA_CHECK(cudaMalloc(&p_, bytes)); }
  DeviceMemory(DeviceMemory&& o) noexcept : p_(std::exchange(o.p_, nullptr)), bytes_(o.bytes_) {}
  ~DeviceMemory() { cudaFree(p_); }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  void* get() const { return p_; }
  size_t size() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_;
};

// Read + write GB/s of a device-to-device copy of `bytes`, best of kCopyRuns.
double copy_gbps(size_t bytes, cudaStream_t stream) {
  DeviceMemory a(bytes), b(bytes);
  TANDEM_CUDA_CHECK(cudaMemsetAsync(a.get(), 1, bytes, stream));
  TANDEM_CUDA_CHECK(cudaMemcpyAsync(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice, stream));  // warm-up
  Events ev;
  float best = 1e30f;
  for (int i = 0; i < kCopyRuns; ++i) {
    TANDEM_CUDA_CHECK(cudaEventRecord(ev.start(), stream));
    TANDEM_CUDA_CHECK(cudaMemcpyAsync(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice, stream));
    TANDEM_CUDA_CHECK(cudaEventRecord(ev.stop(), stream));
    best = std::min(best, ev.elapsed_ms());
  }
  return 2.0 * static_cast<double>(bytes) / (best * 1e-3) / 1e9;
}

// Device matrix of rows x cols in type t: one kTileRows-row tile of random
// weights quantized on the host, uploaded once and replicated on the device
// (the reference K-quant quantizers are too slow for 28672 x 8192 values).
DeviceMemory make_weights(Type t, Shape s, cudaStream_t stream) {
  const size_t rb = q::row_bytes(t, s.cols);
  const int64_t tile_rows = std::min(kTileRows, s.rows);
  std::mt19937_64 rng(static_cast<uint64_t>(t) * 1000003u + static_cast<uint64_t>(s.cols));
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> src(static_cast<size_t>(s.cols));
  std::vector<uint8_t> tile(static_cast<size_t>(tile_rows) * rb);
  for (int64_t r = 0; r < tile_rows; ++r) {
    for (float& v : src) v = dist(rng);
    uint8_t* dst = tile.data() + static_cast<size_t>(r) * rb;
    if (t == Type::F32)
      std::memcpy(dst, src.data(), src.size() * sizeof(float));
    else
      q::traits(t).from_float(src.data(), dst, s.cols);
  }
  DeviceMemory w(static_cast<size_t>(s.rows) * rb);
  auto* base = static_cast<uint8_t*>(w.get());
  TANDEM_CUDA_CHECK(cudaMemcpyAsync(base, tile.data(), tile.size(), cudaMemcpyHostToDevice, stream));
  // Double the filled prefix until the matrix is full.
  for (size_t filled = tile.size(); filled < w.size();) {
    const size_t n = std::min(filled, w.size() - filled);
    TANDEM_CUDA_CHECK(cudaMemcpyAsync(base + filled, base, n, cudaMemcpyDeviceToDevice, stream));
    filled += n;
  }
  TANDEM_CUDA_CHECK(cudaStreamSynchronize(stream));
  return w;
}

Result bench_gemv(Type t, Shape s, double copy_read_gbps, const DeviceMemory& flush, cudaStream_t stream) {
  const DeviceMemory w = make_weights(t, s, stream);
  std::vector<float> x_host(static_cast<size_t>(s.cols));
  std::mt19937_64 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (float& v : x_host) v = dist(rng);
  DeviceMemory x(x_host.size() * sizeof(float));
  DeviceMemory y(static_cast<size_t>(s.rows) * sizeof(float));
  TANDEM_CUDA_CHECK(cudaMemcpy(x.get(), x_host.data(), x.size(), cudaMemcpyHostToDevice));

  tandem::gpu::DeviceMatrix m;
  m.data = w.get();
  m.type = t;
  m.rows = s.rows;
  m.cols = s.cols;
  m.row_bytes = q::row_bytes(t, s.cols);
  auto* xp = static_cast<const float*>(x.get());
  auto* yp = static_cast<float*>(y.get());

  for (int i = 0; i < kWarmup; ++i) tandem::gpu::gemv(m, xp, yp, 1, stream);
  TANDEM_CUDA_CHECK(cudaStreamSynchronize(stream));

  Events ev;
  std::vector<float> ms;
  for (int i = 0; i < kRuns; ++i) {
    // Evict the weights from L2; the memset also keeps the GPU busy while the
    // timed launch is queued behind it.
    TANDEM_CUDA_CHECK(cudaMemsetAsync(flush.get(), i & 0xFF, flush.size(), stream));
    TANDEM_CUDA_CHECK(cudaEventRecord(ev.start(), stream));
    tandem::gpu::gemv(m, xp, yp, 1, stream);
    TANDEM_CUDA_CHECK(cudaEventRecord(ev.stop(), stream));
    ms.push_back(ev.elapsed_ms());
  }
  std::sort(ms.begin(), ms.end());
  const double med_ms = kRuns % 2 ? ms[kRuns / 2] : 0.5 * (ms[kRuns / 2 - 1] + ms[kRuns / 2]);

  Result r;
  r.type = std::string(q::type_name(t));
  r.shape = s;
  r.bytes = w.size();
  r.us = med_ms * 1e3;
  r.gbps = static_cast<double>(w.size()) / (med_ms * 1e-3) / 1e9;
  r.pct_of_copy_read = 100.0 * r.gbps / copy_read_gbps;
  return r;
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) o += c;
  }
  return o;
}

int run(bool json) {
  int n_dev = 0;
  const cudaError_t e = cudaGetDeviceCount(&n_dev);
  if (e != cudaSuccess || n_dev == 0) {
    std::printf("no CUDA device: %s\n", e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount found none");
    return 0;
  }
  cudaDeviceProp prop{};
  TANDEM_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  TANDEM_CUDA_CHECK(cudaSetDevice(0));
  cudaStream_t stream{};
  TANDEM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));

  size_t free_b = 0, total_b = 0;
  TANDEM_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  size_t copy_bytes = size_t{1} << 30;
  while (copy_bytes > (size_t{64} << 20) && 2 * copy_bytes > free_b / 2) copy_bytes /= 2;
  const double copy = copy_gbps(copy_bytes, stream);
  const double copy_read = copy / 2;

  const size_t flush_bytes = std::max<size_t>(2 * static_cast<size_t>(prop.l2CacheSize), size_t{64} << 20);
  const DeviceMemory flush(flush_bytes);

  const Type types[] = {Type::Q4_0, Type::Q4_K, Type::Q5_K, Type::Q6_K, Type::Q8_0, Type::F16};
  const Shape shapes[] = {{8192, 8192}, {28672, 8192}};
  std::vector<Result> results;
  for (Type t : types)
    for (Shape s : shapes) results.push_back(bench_gemv(t, s, copy_read, flush, stream));
  TANDEM_CUDA_CHECK(cudaStreamDestroy(stream));

  if (json) {
    std::printf("{\"device\": \"%s\", \"sm_count\": %d, \"l2_bytes\": %d,\n", json_escape(prop.name).c_str(),
                prop.multiProcessorCount, prop.l2CacheSize);
    std::printf(" \"copy\": {\"bytes\": %zu, \"gbps_read_plus_write\": %.1f, \"gbps_read\": %.1f},\n", copy_bytes, copy,
                copy_read);
    std::printf(" \"gemv\": [\n");
    for (size_t i = 0; i < results.size(); ++i) {
      const Result& r = results[i];
      std::printf(
          "  {\"type\": \"%s\", \"rows\": %lld, \"cols\": %lld, \"n_tokens\": 1, \"weight_bytes\": %zu, \"us\": %.2f, "
          "\"gbps\": %.1f, \"pct_of_copy_read\": %.1f}%s\n",
          r.type.c_str(), static_cast<long long>(r.shape.rows), static_cast<long long>(r.shape.cols), r.bytes, r.us,
          r.gbps, r.pct_of_copy_read, i + 1 < results.size() ? "," : "");
    }
    std::printf(" ]}\n");
    return 0;
  }

  std::printf("device: %s (%d SMs, L2 %d MiB)\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
  std::printf("device-to-device copy of %zu MiB, best of %d: %.1f GB/s read+write (read rate %.1f GB/s)\n",
              copy_bytes >> 20, kCopyRuns, copy, copy_read);
  std::printf("gemv, 1 token, median of %d runs, L2 flushed before each:\n", kRuns);
  std::printf("%-6s %-13s %10s %10s %10s %8s\n", "type", "rows x cols", "MiB", "us", "GB/s", "% copy");
  for (const Result& r : results) {
    const std::string shape = std::to_string(r.shape.rows) + "x" + std::to_string(r.shape.cols);
    std::printf("%-6s %-13s %10.1f %10.2f %10.1f %7.1f%%\n", r.type.c_str(), shape.c_str(),
                static_cast<double>(r.bytes) / (1 << 20), r.us, r.gbps, r.pct_of_copy_read);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json") {
      json = true;
    } else {
      std::fprintf(stderr, "usage: %s [--json]\n", argv[0]);
      return 2;
    }
  }
  try {
    return run(json);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tandem_bench_gpu_gemv: %s\n", e.what());
    return 1;
  }
}
