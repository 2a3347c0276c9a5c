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

}  // namespace tandem::core
