#include "cpu_worker/thread_pool.h"

#include <pthread.h>
#include <sched.h>

namespace tandem::cpu {

ThreadPool::ThreadPool(int threads, bool pin) : threads_(threads > 0 ? threads : 1), arena_(threads_) {
  if (!pin || threads_ == 1) return;  // one thread never enters the arena
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &allowed)) cpus_.push_back(c);
}

ThreadPool::~ThreadPool() = default;

void ThreadPool::pin_this_thread() const {
  // A oneTBB worker may take another slot (or serve another pool) next time:
  // re-bind only when the pair changes, so the common case is one compare.
  thread_local const ThreadPool* bound_pool = nullptr;
  thread_local int bound_slot = -1;
  const int slot = tbb::this_task_arena::current_thread_index();
  if (slot < 0 || (bound_pool == this && bound_slot == slot)) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpus_[static_cast<size_t>(slot) % cpus_.size()], &set);
  // Best effort: a refused affinity leaves the thread where the OS put it.
  (void)::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
  bound_pool = this;
  bound_slot = slot;
}

}  // namespace tandem::cpu
