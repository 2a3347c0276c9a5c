#pragma once
// What this process really holds in RAM, from /proc/self/smaps.
#include <cstdint>
#include <string>

namespace tandem::services {

// Resident bytes (Rss) of every mapping of `path` in this process: for an
// mmapped GGUF, the pages of the tensors this process has touched.
uint64_t resident_bytes_of_file(const std::string& path);

// Bytes of this process's anonymous memory backed by transparent huge pages
// (AnonHugePages in /proc/self/smaps_rollup); 0 where that is unreadable.
uint64_t anon_huge_page_bytes();

}  // namespace tandem::services
