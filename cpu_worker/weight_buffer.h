#pragma once
// Anonymous memory for weights the CPU worker copies out of the GGUF mapping
// (the eight-row layouts), and the residency controls a user can ask for:
// transparent huge pages (fewer TLB misses while decode streams ~1 GB of
// weights per token) and mlock (layers that never page out under memory
// pressure, so token latency does not depend on what else the node runs).
#include <cstddef>
#include <cstdint>
#include <string>

namespace tandem::cpu {

struct Residency {
  // madvise(MADV_HUGEPAGE) on the copied weights. Off by default: on this
  // project's VM it tripled load time (compaction while faulting 2 MiB
  // pages) and decode gained nothing measurable (docs/PERFORMANCE.md).
  bool huge_pages = false;
  bool mlock = false;      // lock the shard's weight matrices in RAM
};

// A 2 MiB-aligned anonymous mapping (so the kernel can back it with huge
// pages), zero-filled, move-only. Throws std::bad_alloc when mmap fails.
class WeightBuffer {
 public:
  WeightBuffer() = default;
  WeightBuffer(size_t bytes, bool huge_pages);
  WeightBuffer(WeightBuffer&& o) noexcept;
  WeightBuffer& operator=(WeightBuffer&& o) noexcept;
  WeightBuffer(const WeightBuffer&) = delete;
  WeightBuffer& operator=(const WeightBuffer&) = delete;
  ~WeightBuffer();

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;    // bytes asked for
  size_t mapped_ = 0;  // bytes mapped at data_ (size_ rounded up to 2 MiB)
};

// mlock() of the whole pages covering [p, p + bytes): "" on success, else
// the reason (the usual one: RLIMIT_MEMLOCK / no CAP_IPC_LOCK).
std::string lock_pages(const void* p, size_t bytes);
void unlock_pages(const void* p, size_t bytes);

}  // namespace tandem::cpu
