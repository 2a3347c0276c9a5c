#include "cpu_worker/thread_pool.h"

#include <pthread.h>
#include <sched.h>
#include <tbb/task_scheduler_observer.h>

#include <vector>

namespace tandem::cpu {

// Binds every thread entering the arena to the CPU of its slot.
class ThreadPool::Pinner : public tbb::task_scheduler_observer {
 public:
  Pinner(tbb::task_arena& arena, std::vector<int> cpus) : tbb::task_scheduler_observer(arena), cpus_(std::move(cpus)) {
    observe(true);
  }
  ~Pinner() override { observe(false); }

  void on_scheduler_entry(bool) override {
    const int slot = tbb::this_task_arena::current_thread_index();
    if (slot < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpus_[static_cast<size_t>(slot) % cpus_.size()], &set);
    // Best effort: a refused affinity leaves the thread where the OS put it.
    (void)::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
  }

 private:
  std::vector<int> cpus_;  // allowed CPUs, ascending
};

ThreadPool::ThreadPool(int threads, bool pin) : threads_(threads > 0 ? threads : 1), arena_(threads_) {
  if (!pin || threads_ == 1) return;  // one thread never enters the arena
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
  if (cpus.empty()) return;
  arena_.initialize();
  pinner_ = std::make_unique<Pinner>(arena_, std::move(cpus));
}

ThreadPool::~ThreadPool() = default;

}  // namespace tandem::cpu
