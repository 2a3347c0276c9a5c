#pragma once
// A oneTBB arena sized to the worker's --threads, so kernels never use more
// cores than the user gave us (the other process of the split needs its own).
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <cstdint>

namespace tandem::cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int threads) : threads_(threads > 0 ? threads : 1), arena_(threads_) {}
  int threads() const { return threads_; }

  // fn(begin, end) over [0, n) in chunks of at least `grain`.
  template <typename Fn>
  void parallel_for(int64_t n, int64_t grain, Fn&& fn) {
    if (n <= 0) return;
    if (threads_ == 1 || n <= grain) {
      fn(int64_t{0}, n);
      return;
    }
    arena_.execute([&] {
      tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, grain),
                        [&](const tbb::blocked_range<int64_t>& r) { fn(r.begin(), r.end()); });
    });
  }

 private:
  int threads_;
  tbb::task_arena arena_;
};

}  // namespace tandem::cpu
