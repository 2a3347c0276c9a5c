// Latency of one shared-memory hop: a parent and a forked child bounce one
// row of 8192 f32 (a Llama-70B hidden row, 32 KiB, in the batch wire format)
// through two rings; one hop = half a round trip. Prints p50/p90/p99/max.
// Usage: tandem_bench_shm_hop [iterations] [row_floats]
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "core/batch_wire.h"
#include "core/shm_ring.h"

using namespace tandem::core;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  const int iters = argc > 1 ? std::atoi(argv[1]) : 20000;
  const uint32_t width = argc > 2 ? static_cast<uint32_t>(std::atoi(argv[2])) : 8192;
  const size_t cap = wire::message_bytes(1, width, wire::DType::F32);
  shm::Ring ping = shm::Ring::create(shm::unique_name("bench-ping"), 2, cap);
  shm::Ring pong = shm::Ring::create(shm::unique_name("bench-pong"), 2, cap);
  const std::string ping_name = ping.name(), pong_name = pong.name();
  std::vector<float> row(width, 0.5f);
  const wire::RowMeta meta{0, 0, 0, 0};
  shm::WaitOptions w;
  w.timeout = std::chrono::seconds(10);

  const pid_t child = fork();
  if (child == 0) {
    // Echo: read the row (decode to f32 as a worker does), send it back.
    shm::Ring in = shm::Ring::open(ping_name), out = shm::Ring::open(pong_name);
    std::vector<float> buf(width);
    for (int i = 0; i < iters; ++i) {
      auto v = wire::parse(in.peek(w));
      wire::read_rows(v, buf.data());
      in.release();
      out.publish(wire::write_rows(out.acquire(w), wire::Kind::Hidden, 0, i, std::span(&meta, 1), buf.data(), width,
                                   wire::DType::F32));
    }
    _exit(0);
  }
  std::vector<double> hop_us;
  hop_us.reserve(iters);
  std::vector<float> back(width);
  for (int i = 0; i < iters; ++i) {
    const auto t0 = Clock::now();
    ping.publish(wire::write_rows(ping.acquire(w), wire::Kind::Hidden, 0, i, std::span(&meta, 1), row.data(), width,
                                  wire::DType::F32));
    auto v = wire::parse(pong.peek(w));
    wire::read_rows(v, back.data());
    pong.release();
    hop_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / 2);
  }
  int st;
  waitpid(child, &st, 0);
  ping.unlink();
  pong.unlink();
  // The first iterations fault pages in; report the steady state.
  std::vector<double> s(hop_us.begin() + std::min<size_t>(100, hop_us.size() / 10), hop_us.end());
  std::sort(s.begin(), s.end());
  auto pct = [&](double p) { return s[static_cast<size_t>(p * (s.size() - 1))]; };
  std::printf("shm hop, one row of %u f32 (%zu bytes with header), %zu round trips:\n", width, cap, s.size());
  std::printf("  p50 %.1f us   p90 %.1f us   p99 %.1f us   max %.1f us\n", pct(0.5), pct(0.9), pct(0.99), s.back());
  return 0;
}
