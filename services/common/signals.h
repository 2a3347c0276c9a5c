#pragma once
// Orderly shutdown of a service process: SIGINT/SIGTERM are blocked in every
// thread (call block_shutdown_signals() before starting any) and collected by
// the main thread in wait_for_shutdown().
#include <atomic>
#include <chrono>

namespace tandem::services {

void block_shutdown_signals();
// Returns when SIGINT/SIGTERM arrives or `requested` becomes true (polled
// every 100 ms). Returns the signal number, or 0 for a request.
int wait_for_shutdown(const std::atomic<bool>& requested);
// The same for at most `max`: -1 when that passed with neither.
int wait_for_shutdown_for(const std::atomic<bool>& requested, std::chrono::milliseconds max);

}  // namespace tandem::services
