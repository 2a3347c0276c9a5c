#pragma once
// Keeps the pipeline's workers alive and connected.
//
// Supervisor mode (what `make run` uses): starts tandem-gpu-worker and
// tandem-cpu-worker as child processes on private Unix sockets, notices an
// exit at once (waitpid), restarts it with backoff (0.5 s doubling to 30 s,
// reset after a minute of uptime or once the pipeline came up with it) and
// brings a new pipeline incarnation up.
//
// A worker that stops answering its control plane (frozen: SIGSTOP, a
// deadlock, swapped out) is noticed without a request in flight: after 5 s
// of silence the pipeline goes down (readiness NOT_SERVING, callers get
// UNAVAILABLE saying why); if it answers again it is reconnected, and in
// supervisor mode one silent for hang_timeout is killed and restarted.
// Silence only counts once the process has answered at all, so a worker
// still starting up is not mistaken for a hung one.
//
// Attach mode (one container per process, e.g. a Kubernetes pod): the
// workers run on their own at given addresses; their control planes are
// probed every 500 ms and the pipeline is rebuilt when both answer again.
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "services/coordinator/pipeline.h"

namespace tandem::services {

struct WorkerProcess {
  std::string role;          // "gpu" | "cpu"
  std::string binary;        // path of tandem-<role>-worker
  std::string listen;        // control plane address handed to it (unix:...)
  std::string metrics_bind;  // HOST:PORT for its /metrics
  int threads = 0;
  std::vector<std::string> extra_args;  // passed through (--mlock, --huge-pages)
  pid_t pid = 0;             // 0: not running
  std::chrono::steady_clock::time_point started{};
  std::chrono::milliseconds backoff{500};
  std::chrono::steady_clock::time_point next_start{};
};

class Supervisor {
 public:
  // supervise: spawn `workers` (stage order); attach: `addresses` (stage order).
  // hang_timeout: supervisor mode kills a worker silent this long (0: never).
  Supervisor(Pipeline& pipeline, std::vector<WorkerProcess> workers, std::vector<std::string> addresses, bool supervise,
             std::chrono::milliseconds hang_timeout = std::chrono::seconds(30));
  ~Supervisor();

  void start();
  // Stops monitoring; in supervisor mode stops the children (SIGTERM, then SIGKILL after 3 s).
  void stop();
  // Called once per worker restart (for metrics).
  void on_restart(std::function<void(const std::string& role)> cb) { on_restart_ = std::move(cb); }
  std::vector<std::string> addresses() const;

 private:
  void loop();
  void spawn(WorkerProcess& w);
  void reap();
  void watch();        // the watchdog thread: Health of each control plane every 500 ms
  void check_silence();  // loop(): acts on what watch() saw

  // What the watchdog last heard from each stage's control plane.
  struct Heard {
    int64_t pid = 0;  // the pid that answered; 0: nothing yet
    std::chrono::steady_clock::time_point at{};
  };

  Pipeline& pipeline_;
  std::vector<WorkerProcess> workers_;
  std::vector<std::string> addresses_;
  bool supervise_;
  std::chrono::milliseconds hang_timeout_;
  std::mutex heard_mu_;
  std::vector<Heard> heard_;  // per stage
  bool any_silent_ = false;   // loop() only: a worker that answered before is silent > 5 s
  std::thread watchdog_;
  std::function<void(const std::string&)> on_restart_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace tandem::services
