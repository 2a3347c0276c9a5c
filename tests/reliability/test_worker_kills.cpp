// Fault injection (`make soak`, label soak; not in `make test`): kill -9 a
// random worker at a random point of prefill or decode, again and again,
// under a load of concurrent streams. Every stream in flight at a kill must
// end with a status within 2 s, the coordinator must stay up and serve again
// after each, and nothing may leak: shm segments, open fds.
// TANDEM_KILLS (default 100) sets the number of kills.
#include <gtest/gtest.h>
#include <dirent.h>
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "tests/integration/service_harness.h"
#include "tests/unit/test_support.h"

namespace tandem::test {
namespace {

namespace pb = tandem::v1;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

int open_fds(pid_t pid) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) (void)e, ++n;
  return n;
}

int shm_segments(pid_t coordinator) {
  int n = 0;
  const std::string prefix = "tandem-" + std::to_string(coordinator) + "-";
  for (const auto& e : std::filesystem::directory_iterator("/dev/shm"))
    if (e.path().filename().string().rfind(prefix, 0) == 0) ++n;
  return n;
}

struct Flight {
  Clock::time_point start, end;
  bool done = false;
  grpc::StatusCode code = grpc::StatusCode::OK;
};

TEST(WorkerKills, StreamsEndWithinTwoSecondsAndTheServiceRecovers) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  const int kills = std::getenv("TANDEM_KILLS") ? std::atoi(std::getenv("TANDEM_KILLS")) : 100;
  Service svc(model, {"--gpu-layers", "10", "-c", "1024", "--max-sequences", "8"});
  const pid_t coord = svc.process().pid();
  const int fds_start = open_fds(coord);

  std::mutex mu;
  std::vector<Flight> flights;
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&, c] {
      auto stub = svc.stub();
      std::mt19937 r(c);
      const char* prompts[] = {"Once upon a time", "The capital of France is",
                               "Write a long story about a lighthouse keeper and a dog that came in a boat."};
      while (!stop) {
        size_t i;
        {
          std::lock_guard lk(mu);
          i = flights.size();
          Flight f;
          f.start = Clock::now();
          flights.push_back(f);
        }
        auto req = greedy_request(prompts[r() % 3], 16 + static_cast<int>(r() % 48));
        const auto res = generate(*stub, req, 60s);
        std::lock_guard lk(mu);
        flights[i].end = Clock::now();
        flights[i].done = true;
        flights[i].code = res.status.error_code();
        if (!res.status.ok()) std::this_thread::sleep_for(50ms);  // pipeline down: do not spin
      }
    });
  }

  std::mt19937 rng(42);
  int late = 0, recovered = 0;
  double worst_end_s = 0;
  for (int k = 0; k < kills; ++k) {
    ASSERT_TRUE(svc.wait_serving(90s)) << "kill " << k << ": not serving again\n" << svc.process().log();
    ++recovered;
    std::this_thread::sleep_for(std::chrono::milliseconds(200 + rng() % 1300));  // prefill or decode
    pid_t victim = 0;
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 5s);
      pb::ModelInfo info;
      ASSERT_TRUE(svc.stub()->GetModelInfo(&ctx, {}, &info).ok());
      const auto& st = info.stages(static_cast<int>(rng() % info.stages_size()));
      victim = static_cast<pid_t>(st.pid());
    }
    ASSERT_GT(victim, 0);
    std::vector<size_t> in_flight;
    Clock::time_point killed;
    {
      std::lock_guard lk(mu);
      killed = Clock::now();
      ::kill(victim, SIGKILL);
      for (size_t i = 0; i < flights.size(); ++i)
        if (!flights[i].done) in_flight.push_back(i);
    }
    std::this_thread::sleep_for(2500ms);
    std::lock_guard lk(mu);
    for (size_t i : in_flight) {
      const double s = flights[i].done ? std::chrono::duration<double>(flights[i].end - killed).count() : 1e9;
      worst_end_s = std::max(worst_end_s, s);
      if (s > 2.0) ++late;
    }
    ASSERT_TRUE(svc.process().alive()) << "the coordinator died at kill " << k << "\n" << svc.process().log();
  }
  ASSERT_TRUE(svc.wait_serving(90s));
  stop = true;
  for (auto& t : clients) t.join();

  int ok = 0, unavailable = 0, other = 0;
  for (const Flight& f : flights) {
    if (f.code == grpc::StatusCode::OK) ++ok;
    else if (f.code == grpc::StatusCode::UNAVAILABLE) ++unavailable;
    else ++other;
  }
  std::printf("worker kills: %d kills, %d recoveries, %zu requests (%d ok, %d unavailable, %d other), "
              "worst stream end after a kill %.2f s, late %d; coordinator fds %d -> %d, shm segments %d\n",
              kills, recovered, flights.size(), ok, unavailable, other, worst_end_s, late, fds_start, open_fds(coord),
              shm_segments(coord));
  EXPECT_EQ(late, 0) << "streams in flight at a kill that took more than 2 s to end";
  EXPECT_EQ(other, 0) << "statuses other than OK and UNAVAILABLE";
  EXPECT_GT(ok, kills) << "the service did not do real work between kills";
  EXPECT_LE(open_fds(coord), fds_start + 8) << "the coordinator leaks file descriptors";
  EXPECT_EQ(shm_segments(coord), 0) << "shm segments left in /dev/shm";
}

}  // namespace
}  // namespace tandem::test
