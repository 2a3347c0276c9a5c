#include "services/coordinator/supervisor.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include <grpcpp/grpcpp.h>

#include "core/error.h"

namespace tandem::services {

namespace pb = tandem::v1;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Silence after which a worker counts as frozen. Well above a Health
// answer's worst case on a machine busy decoding (tens of ms), and the
// heartbeats already end a step in flight after 1 s.
constexpr auto kSilent = 5s;

Supervisor::Supervisor(Pipeline& pipeline, std::vector<WorkerProcess> workers, std::vector<std::string> addresses,
                       bool supervise, std::chrono::milliseconds hang_timeout)
    : pipeline_(pipeline), workers_(std::move(workers)), addresses_(std::move(addresses)), supervise_(supervise),
      hang_timeout_(hang_timeout) {
  if (supervise_) {
    addresses_.clear();
    for (const auto& w : workers_) addresses_.push_back(w.listen);
  }
  heard_.resize(addresses_.size());
}

Supervisor::~Supervisor() { stop(); }

std::vector<std::string> Supervisor::addresses() const { return addresses_; }

void Supervisor::start() {
  // Spawn from the thread that lives as long as the coordinator: children
  // get SIGTERM (PR_SET_PDEATHSIG) when it dies, so no worker outlives us.
  thread_ = std::thread([this] { loop(); });
  watchdog_ = std::thread([this] { watch(); });
}

void Supervisor::stop() {
  if (stop_.exchange(true)) return;
  if (watchdog_.joinable()) watchdog_.join();
  if (thread_.joinable()) thread_.join();
}

void Supervisor::watch() {
  // The channels are made before the workers listen. With gRPC's default
  // reconnect back-off (1 s growing ×1.6 to 120 s) a worker that took a few
  // seconds to load was first heard seconds after it was up, and one frozen
  // in that window was never counted as silent (only a worker heard once
  // is). Retry every 0.2-0.5 s instead: a worker is heard within half a
  // second of listening.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  std::vector<std::unique_ptr<pb::Worker::Stub>> stubs;
  for (const auto& a : addresses_)
    stubs.push_back(pb::Worker::NewStub(grpc::CreateCustomChannel(a, grpc::InsecureChannelCredentials(), args)));
  while (!stop_) {
    for (size_t i = 0; i < stubs.size() && !stop_; ++i) {
      pb::WorkerHealth h;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 1s);
      if (!stubs[i]->Health(&ctx, pb::WorkerHealthRequest(), &h).ok()) continue;
      std::lock_guard lk(heard_mu_);
      heard_[i] = {h.pid(), Clock::now()};
    }
    for (int k = 0; k < 10 && !stop_; ++k) std::this_thread::sleep_for(50ms);
  }
}

void Supervisor::check_silence() {
  std::vector<Heard> heard;
  {
    std::lock_guard lk(heard_mu_);
    heard = heard_;
  }
  const auto now = Clock::now();
  any_silent_ = false;
  for (size_t i = 0; i < heard.size(); ++i) {
    // Only the process that answered before counts: a fresh one (after a
    // restart) is starting up, not hung, until it has answered once.
    if (heard[i].pid == 0) continue;
    if (supervise_ && (workers_[i].pid <= 0 || workers_[i].pid != heard[i].pid)) continue;
    const auto silent = now - heard[i].at;
    const std::string role = pipeline_.stages()[i].role;
    const std::string secs = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(silent).count());
    if (silent > kSilent) any_silent_ = true;
    if (silent > kSilent && pipeline_.up())
      pipeline_.mark_down(role + " worker (pid " + std::to_string(heard[i].pid) + ") has not answered its control plane for " +
                          secs + " s");
    if (supervise_ && hang_timeout_.count() > 0 && silent > hang_timeout_) {
      std::fprintf(stderr, "tandem-coordinator: %s worker (pid %d) has not answered for %s s (--worker-hang-timeout); killing it\n",
                   role.c_str(), static_cast<int>(workers_[i].pid), secs.c_str());
      ::kill(workers_[i].pid, SIGKILL);  // reap() restarts it
      std::lock_guard lk(heard_mu_);
      heard_[i] = {};
    }
  }
}

void Supervisor::spawn(WorkerProcess& w) {
  if (w.listen.rfind("unix:", 0) == 0) ::unlink(w.listen.c_str() + 5);  // a stale socket of a dead predecessor
  std::vector<std::string> args = {w.binary, "--listen", w.listen, "--metrics", w.metrics_bind};
  if (w.threads > 0) {
    args.push_back("--threads");
    args.push_back(std::to_string(w.threads));
  }
  args.insert(args.end(), w.extra_args.begin(), w.extra_args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    std::fprintf(stderr, "tandem-coordinator: cannot fork the %s worker: %s\n", w.role.c_str(), std::strerror(errno));
    return;
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);  // the coordinator died before prctl
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);  // undo the coordinator's blocked SIGINT/SIGTERM
    ::execv(argv[0], argv.data());
    std::fprintf(stderr, "tandem-coordinator: cannot start %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  w.pid = pid;
  w.started = Clock::now();
  std::fprintf(stderr, "tandem-coordinator: started %s worker (pid %d)\n", w.role.c_str(), static_cast<int>(pid));
}

void Supervisor::reap() {
  for (auto& w : workers_) {
    if (w.pid <= 0) continue;
    int status = 0;
    const pid_t r = ::waitpid(w.pid, &status, WNOHANG);
    if (r != w.pid) continue;
    const std::string how = WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status))
                                                : "exited with status " + std::to_string(WEXITSTATUS(status));
    std::fprintf(stderr, "tandem-coordinator: %s worker (pid %d) %s\n", w.role.c_str(), static_cast<int>(w.pid), how.c_str());
    w.pid = 0;
    // Crash loops back off; a worker that ran a minute starts over quickly.
    if (Clock::now() - w.started > 60s) w.backoff = 500ms;
    w.next_start = Clock::now() + w.backoff;
    w.backoff = std::min<std::chrono::milliseconds>(w.backoff * 2, 30s);
    pipeline_.mark_down(w.role + " worker " + how);
    if (on_restart_) on_restart_(w.role);
  }
}

void Supervisor::loop() {
  auto next_probe = Clock::now();
  auto next_attempt = Clock::now();
  while (!stop_) {
    check_silence();
    if (supervise_) {
      reap();
      for (auto& w : workers_)
        if (w.pid == 0 && Clock::now() >= w.next_start) spawn(w);
    } else if (pipeline_.up() && Clock::now() >= next_probe) {
      std::string why;
      if (!pipeline_.probe(why)) pipeline_.mark_down(why);
      next_probe = Clock::now() + 500ms;
    }
    bool all_running = true;
    if (supervise_)
      for (auto& w : workers_) all_running = all_running && w.pid > 0;
    // A frozen worker would hold bring_up in its 10 s Health wait; wait for
    // it to answer again (or for the hang timeout to replace it) instead.
    if (!pipeline_.up() && all_running && !any_silent_ && Clock::now() >= next_attempt) {
      try {
        pipeline_.bring_up(addresses_);
        std::fprintf(stderr, "tandem-coordinator: pipeline up\n");
        // Workers that loaded and connected are not crash-looping: the next
        // restart of either waits the shortest back-off again.
        for (auto& w : workers_) w.backoff = 500ms;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "tandem-coordinator: cannot bring the pipeline up: %s\n", e.what());
        pipeline_.note_bring_up_failure(e.what());
        next_attempt = Clock::now() + 1s;
      }
      continue;
    }
    std::this_thread::sleep_for(20ms);
  }
  if (supervise_) {
    // Ask first (Shutdown RPC): a worker that got a signal too (Ctrl-C goes
    // to the whole process group) keeps serving the pipeline until told;
    // SIGTERM is the fallback for one that does not answer.
    pipeline_.shutdown_workers();
    for (auto& w : workers_)
      if (w.pid > 0) ::kill(w.pid, SIGTERM);
    const auto deadline = Clock::now() + 3s;
    for (auto& w : workers_) {
      while (w.pid > 0) {
        int st;
        if (::waitpid(w.pid, &st, WNOHANG) == w.pid) {
          w.pid = 0;
          break;
        }
        if (Clock::now() > deadline) {
          ::kill(w.pid, SIGKILL);
          ::waitpid(w.pid, &st, 0);
          w.pid = 0;
          break;
        }
        std::this_thread::sleep_for(10ms);
      }
      if (w.listen.rfind("unix:", 0) == 0) ::unlink(w.listen.c_str() + 5);
    }
  }
}

}  // namespace tandem::services
