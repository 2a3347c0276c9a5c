// The compute arena: sized to --threads, optionally one CPU per thread.
#include <gtest/gtest.h>

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "cpu_worker/thread_pool.h"

namespace tandem {
namespace {

int allowed_cpus() {
  cpu_set_t s;
  CPU_ZERO(&s);
  return ::sched_getaffinity(0, sizeof s, &s) == 0 ? CPU_COUNT(&s) : 0;
}

TEST(ThreadPool, CoversTheRangeOnceWithAtMostItsThreads) {
  cpu::ThreadPool pool(2);
  std::vector<std::atomic<int>> hits(1000);
  std::mutex mu;
  std::set<std::thread::id> ids;
  pool.parallel_for(1000, 7, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) hits[i]++;
    std::lock_guard lk(mu);
    ids.insert(std::this_thread::get_id());
  });
  for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i].load(), 1) << "index " << i;
  EXPECT_LE(ids.size(), 2u);
  EXPECT_FALSE(pool.pinned());
}

TEST(ThreadPool, PinnedThreadsRunOnOneCpuEach) {
  if (allowed_cpus() < 2) GTEST_SKIP() << "needs two CPUs in this process's affinity mask";
  // The test thread joins the arena and gets pinned: run it on a copy.
  std::thread([] {
    cpu::ThreadPool pool(2, true);
    ASSERT_TRUE(pool.pinned());
    std::mutex mu;
    std::set<int> cpus_seen;
    bool all_single = true;
    pool.parallel_for(64, 1, [&](int64_t, int64_t) {
      cpu_set_t s;
      CPU_ZERO(&s);
      ::pthread_getaffinity_np(::pthread_self(), sizeof s, &s);
      std::lock_guard lk(mu);
      all_single = all_single && CPU_COUNT(&s) == 1;
      for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &s)) cpus_seen.insert(c);
    });
    EXPECT_TRUE(all_single) << "a compute thread was not bound to one CPU";
    EXPECT_LE(cpus_seen.size(), 2u);
  }).join();
}

}  // namespace
}  // namespace tandem
