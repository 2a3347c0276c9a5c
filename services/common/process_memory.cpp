#include "services/common/process_memory.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace tandem::services {

uint64_t resident_bytes_of_file(const std::string& path) {
  std::error_code ec;
  const std::string canon = std::filesystem::canonical(path, ec).string();
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool in_target = false;
  uint64_t kb = 0;
  while (std::getline(in, line)) {
    // A mapping header is "start-end perms offset dev inode [path]"; its
    // fields follow as "Name:   value kB" lines.
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') < line.find(' ')) {
      const auto slash = line.find('/');
      in_target = slash != std::string::npos && (line.compare(slash, std::string::npos, canon) == 0 ||
                                                 line.compare(slash, std::string::npos, path) == 0);
      continue;
    }
    if (in_target && line.rfind("Rss:", 0) == 0) {
      std::istringstream ss(line.substr(4));
      uint64_t v = 0;
      ss >> v;
      kb += v;
    }
  }
  return kb * 1024;
}

uint64_t anon_huge_page_bytes() {
  std::ifstream in("/proc/self/smaps_rollup");
  std::string key;
  uint64_t kb = 0;
  while (in >> key) {
    if (key == "AnonHugePages:") {
      in >> kb;
      return kb * 1024;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

}  // namespace tandem::services
