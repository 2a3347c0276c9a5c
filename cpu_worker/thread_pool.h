#pragma once
// A oneTBB arena sized to the worker's --threads, so kernels never use more
// cores than the user gave us (the other process of the split needs its own).
// Optionally pinned: arena slot i runs on the i-th CPU this process may use
// (its affinity mask, e.g. a Kubernetes static-CPU-manager cpuset), so a
// thread keeps its L1/L2 and is not migrated mid-matmul.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <cstdint>
#include <vector>

namespace tandem::cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int threads, bool pin = false);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return threads_; }
  bool pinned() const { return !cpus_.empty(); }

  // fn(begin, end) over [0, n) in chunks of at least `grain`.
  template <typename Fn>
  void parallel_for(int64_t n, int64_t grain, Fn&& fn) {
    if (n <= 0) return;
    if (threads_ == 1 || n <= grain) {
      fn(int64_t{0}, n);
      return;
    }
    arena_.execute([&] {
      tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, grain), [&](const tbb::blocked_range<int64_t>& r) {
        if (!cpus_.empty()) pin_this_thread();
        fn(r.begin(), r.end());
      });
    });
  }

 private:
  // Binds the calling arena thread to the CPU of its slot (once per thread
  // and slot: a thread-local remembers what it was last bound to).
  void pin_this_thread() const;

  int threads_;
  tbb::task_arena arena_;
  std::vector<int> cpus_;  // allowed CPUs when pinning, else empty
};

}  // namespace tandem::cpu
