#pragma once
// Load-time and input errors. They travel as exceptions inside a process and
// become an exit code (CLI) or a status (services) in exactly one place; the
// hot path (kernels, forward pass) never throws.
#include <stdexcept>
#include <string>

namespace tandem::core {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The request is sound but the memory is not there (a device allocation, a
// worker's --memory-limit): services answer RESOURCE_EXHAUSTED, so the
// coordinator can put a layer fewer on that worker and try again.
class OutOfMemory : public Error {
 public:
  using Error::Error;
};

}  // namespace tandem::core
