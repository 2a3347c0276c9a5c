#pragma once
// Every device allocation of a stage goes through one DeviceMemory, which
// counts bytes per purpose and refuses up front a plan that does not fit:
// a shard too big for the card is a clear error, never an out-of-memory crash
// halfway through loading.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tandem::gpu {

enum class MemoryKind { Weights = 0, Kv = 1, Scratch = 2 };

struct MemoryPlan {
  uint64_t weights = 0, kv = 0, scratch = 0;
  uint64_t total() const { return weights + kv + scratch; }
};

class DeviceMemory {
 public:
  // Selects `device`; throws core::Error when it does not exist.
  explicit DeviceMemory(int device);
  ~DeviceMemory();
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;

  // Throws core::Error naming the shortfall ("needs X GiB … only Y GiB free:
  // short by Z GiB (weights …, KV …, scratch …)") when the plan plus a reserve
  // for the CUDA context and cuBLAS workspace exceeds the free memory.
  void check_fits(const MemoryPlan& plan, const std::string& what) const;

  void* alloc(size_t bytes, MemoryKind kind);
  uint64_t used(MemoryKind kind) const { return used_[static_cast<int>(kind)]; }
  int device() const { return device_; }
  const std::string& device_name() const { return name_; }

  static constexpr uint64_t kReserve = 512ull << 20;  // context, cuBLAS workspace, fragmentation

 private:
  int device_;
  std::string name_;
  std::vector<void*> blocks_;
  uint64_t used_[3] = {0, 0, 0};
};

// Number of usable CUDA devices (0 when the driver or device is missing; never throws).
int cuda_device_count();

}  // namespace tandem::gpu
