#include "services/common/signals.h"

#include <csignal>
#include <ctime>

namespace tandem::services {

namespace {
sigset_t shutdown_set() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGTERM);
  return s;
}
}  // namespace

void block_shutdown_signals() {
  sigset_t s = shutdown_set();
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
  // A write to a dead peer's socket must be an error, not a kill.
  std::signal(SIGPIPE, SIG_IGN);
}

int wait_for_shutdown(const std::atomic<bool>& requested) {
  sigset_t s = shutdown_set();
  const timespec tick{0, 100'000'000};
  while (!requested.load()) {
    const int sig = sigtimedwait(&s, nullptr, &tick);
    if (sig > 0) return sig;
  }
  return 0;
}

int wait_for_shutdown_for(const std::atomic<bool>& requested, std::chrono::milliseconds max) {
  sigset_t s = shutdown_set();
  const auto until = std::chrono::steady_clock::now() + max;
  const timespec tick{0, 20'000'000};
  while (!requested.load()) {
    const int sig = sigtimedwait(&s, nullptr, &tick);
    if (sig > 0) return sig;
    if (std::chrono::steady_clock::now() >= until) return -1;
  }
  return 0;
}

}  // namespace tandem::services
