#include "cpu_worker/weight_buffer.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <utility>

namespace tandem::cpu {

namespace {
constexpr size_t kHuge = size_t{2} << 20;  // x86-64 transparent huge page
}

WeightBuffer::WeightBuffer(size_t bytes, bool huge_pages) : size_(bytes) {
  if (bytes == 0) return;
  mapped_ = (bytes + kHuge - 1) / kHuge * kHuge;
  // Map 2 MiB more than needed and trim both ends, so data_ is 2 MiB-aligned.
  void* raw = ::mmap(nullptr, mapped_ + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto base = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (base + kHuge - 1) / kHuge * kHuge;
  if (aligned > base) ::munmap(raw, aligned - base);
  const uintptr_t end = base + mapped_ + kHuge;
  if (end > aligned + mapped_) ::munmap(reinterpret_cast<void*>(aligned + mapped_), end - (aligned + mapped_));
  data_ = reinterpret_cast<uint8_t*>(aligned);
  // Advice only: a kernel without THP (or with it off) still gives us memory.
  if (huge_pages) ::madvise(data_, mapped_, MADV_HUGEPAGE);
}

WeightBuffer::WeightBuffer(WeightBuffer&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)), mapped_(std::exchange(o.mapped_, 0)) {}

WeightBuffer& WeightBuffer::operator=(WeightBuffer&& o) noexcept {
  if (this != &o) {
    if (data_) ::munmap(data_, mapped_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    mapped_ = std::exchange(o.mapped_, 0);
  }
  return *this;
}

WeightBuffer::~WeightBuffer() {
  if (data_) ::munmap(data_, mapped_);
}

namespace {
// [begin, end) of the whole pages covering [p, p + bytes).
std::pair<uintptr_t, uintptr_t> page_span(const void* p, size_t bytes) {
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  return {reinterpret_cast<uintptr_t>(p) / page * page, (reinterpret_cast<uintptr_t>(p) + bytes + page - 1) / page * page};
}
}  // namespace

void unlock_pages(const void* p, size_t bytes) {
  const auto [begin, end] = page_span(p, bytes);
  if (end > begin) ::munlock(reinterpret_cast<const void*>(begin), end - begin);
}

std::string lock_pages(const void* p, size_t bytes) {
  if (bytes == 0) return "";
  const auto [begin, end] = page_span(p, bytes);
  if (::mlock(reinterpret_cast<const void*>(begin), end - begin) == 0) return "";
  const int err = errno;
  std::string why = std::strerror(err);
  if (err == ENOMEM || err == EPERM) {
    rlimit lim{};
    ::getrlimit(RLIMIT_MEMLOCK, &lim);
    why += lim.rlim_cur == RLIM_INFINITY
               ? std::string(" (RLIMIT_MEMLOCK is unlimited: not enough RAM to lock)")
               : " (RLIMIT_MEMLOCK is " + std::to_string(lim.rlim_cur >> 10) +
                     " KiB: raise `ulimit -l` or grant CAP_IPC_LOCK)";
  }
  return why;
}

}  // namespace tandem::cpu
