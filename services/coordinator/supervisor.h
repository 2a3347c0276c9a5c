#pragma once
// Keeps the pipeline's workers alive and connected.
//
// Supervisor mode (what `make run` uses): starts tandem-gpu-worker and
// tandem-cpu-worker as child processes on private Unix sockets, notices an
// exit at once (waitpid), restarts it with backoff (0.5 s doubling to 30 s,
// reset after a minute of uptime or once the pipeline came up with it) and
// brings a new pipeline incarnation up.
//
// Attach mode (one container per process, e.g. a Kubernetes pod): the
// workers run on their own at given addresses; their control planes are
// probed every 500 ms and the pipeline is rebuilt when both answer again.
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
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
  Supervisor(Pipeline& pipeline, std::vector<WorkerProcess> workers, std::vector<std::string> addresses, bool supervise);
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

  Pipeline& pipeline_;
  std::vector<WorkerProcess> workers_;
  std::vector<std::string> addresses_;
  bool supervise_;
  std::function<void(const std::string&)> on_restart_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace tandem::services
