#pragma once
// What this process really holds in RAM, from /proc/self/smaps.
#include <cstdint>
#include <string>

namespace tandem::services {

// Resident bytes (Rss) of every mapping of `path` in this process: for an
// mmapped GGUF, the pages of the tensors this process has touched.
uint64_t resident_bytes_of_file(const std::string& path);

}  // namespace tandem::services
