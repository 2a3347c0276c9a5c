#pragma once
// Runs real Tandem processes for the integration tests: the coordinator
// (which starts its two workers) or a lone worker, reading the addresses they
// print; plus a plain HTTP GET for their /metrics.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tandem/v1/inference.grpc.pb.h"

namespace tandem::test {

std::string build_dir();  // where tandem, tandem-coordinator and the workers are

class Process {
 public:
  // Starts argv[0] (a path) with its stdout on a pipe we read lines from and
  // its stderr in a log file (printed by describe() when a test fails).
  explicit Process(std::vector<std::string> argv);
  ~Process();  // SIGTERM, then SIGKILL after 10 s
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // Reads stdout until a line containing `needle` (returns it) or the timeout.
  std::optional<std::string> wait_line(const std::string& needle, std::chrono::milliseconds timeout);
  bool alive();
  // SIGTERM and wait; returns the seconds it took to exit (or -1 if it had to be killed).
  double terminate(std::chrono::milliseconds grace = std::chrono::seconds(10));
  std::string log() const;

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string buf_;
  std::string log_path_;
};

// A coordinator in supervisor mode on free ports.
class Service {
 public:
  // wait_for_serving: false returns once the coordinator listens, for tests
  // whose pipeline cannot come up yet.
  // prefix: a command the coordinator runs under (e.g. unshare ... --).
  explicit Service(const std::string& model, std::vector<std::string> extra_args, bool wait_for_serving = true,
                   std::vector<std::string> prefix = {});
  const std::string& addr() const { return addr_; }
  const std::string& metrics_url() const { return metrics_url_; }
  Process& process() { return *proc_; }
  std::shared_ptr<grpc::Channel> channel();
  std::unique_ptr<tandem::v1::Inference::Stub> stub();
  // grpc.health.v1 status of `service` ("" : the server): see health_status.
  std::string health(const std::string& service = "");
  bool wait_serving(std::chrono::milliseconds timeout);

 private:
  std::unique_ptr<Process> proc_;
  std::string addr_, metrics_url_;
};

// grpc.health.v1 Check of `service` over `channel`: "SERVING", "NOT_SERVING",
// "NOT_FOUND" (no such service registered) or "UNREACHABLE".
std::string health_status(const std::shared_ptr<grpc::Channel>& channel, const std::string& service);

// Attach mode: both workers started on their own, on Unix sockets in a fresh
// directory — what one container per process in a pod amounts to.
class AttachedWorkers {
 public:
  // Starts both; throws with a worker's log when it does not come up.
  // prefix: a command the workers run under (e.g. unshare ... --).
  explicit AttachedWorkers(const std::string& tag, std::vector<std::string> prefix = {});
  ~AttachedWorkers();  // stops them and removes the directory
  Process& worker(const std::string& role) { return role == "gpu" ? *gpu_ : *cpu_; }
  std::string address(const std::string& role) const { return "unix:" + dir_ + "/" + role + ".sock"; }
  // --attach-gpu / --attach-cpu for a coordinator.
  std::vector<std::string> coordinator_args() const;
  // A fresh process at the same address, as an orchestrator restarts a container.
  void restart(const std::string& role);

 private:
  std::unique_ptr<Process> start(const std::string& role);
  std::string dir_;
  std::vector<std::string> prefix_;
  std::unique_ptr<Process> gpu_, cpu_;
};

// GET http://127.0.0.1:PORT/metrics body ("" on failure).
std::string http_get(const std::string& url);
// The value of one sample line "name{labels} value" (exact series text), or nullopt.
std::optional<double> metric(const std::string& body, const std::string& series);

struct StreamResult {
  grpc::Status status;
  std::vector<int32_t> ids;
  std::string text;
  tandem::v1::FinalInfo final_info;
  std::vector<tandem::v1::GeneratedToken> tokens;
};

tandem::v1::GenerateRequest greedy_request(const std::string& prompt, int max_tokens);
StreamResult generate(tandem::v1::Inference::Stub& stub, const tandem::v1::GenerateRequest& req,
                      std::chrono::milliseconds deadline = std::chrono::minutes(5));

// Greedy token ids from the single-process engine (`tandem generate --json`).
std::vector<int32_t> reference_ids(const std::string& model, const std::string& prompt, int max_tokens, int ctx);

}  // namespace tandem::test
