#pragma once
// A whole file into memory, for small inputs named on a command line
// (certificates, keys, token lists).
#include <string>

namespace tandem::core {

// Throws core::Error "<what> <path>: cannot read it" when it cannot be opened.
std::string read_whole_file(const std::string& path, const std::string& what);

}  // namespace tandem::core
