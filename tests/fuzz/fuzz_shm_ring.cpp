// libFuzzer target for what a worker or the coordinator reads from shared
// memory written by another process: the ring header (Ring::open), the slot
// headers (peek), and the batch message inside a slot (wire::parse,
// read_rows). A peer that dies mid-write or a bug on the other side must end
// in core::Error, never in a read outside the segment.
//
// Input: the whole segment. It is written to a fresh /dev/shm name and
// opened as a consumer would; then peek / parse / read_rows / release, and a
// producer's acquire / publish, each with a zero timeout so that an empty or
// full ring ends the round at once. The seed corpus holds real segments
// (a ring with one hidden-rows, logits or error message in flight).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/batch_wire.h"
#include "core/error.h"
#include "core/shm_ring.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using namespace tandem::core;

bool inside(std::span<const uint8_t> part, std::span<const uint8_t> whole) {
  if (part.empty()) return true;  // an empty view may point anywhere (rows of an error message)
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

// The segment under a fresh name; false if /dev/shm refuses (not a finding).
bool write_segment(const std::string& name, const uint8_t* data, size_t size) {
  const int fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) return false;
  size_t done = 0;
  while (done < size) {
    const ssize_t w = ::write(fd, data + done, size - done);
    if (w <= 0) break;
    done += static_cast<size_t>(w);
  }
  close(fd);
  return done == size;
}

void consume(shm::Ring& ring, const shm::WaitOptions& w) {
  std::span<const uint8_t> msg;
  try {
    msg = ring.peek(w);
  } catch (const Error&) {
    return;  // empty, corrupt, or the producer's heartbeat is stale
  }
  FUZZ_CHECK(msg.size() <= ring.slot_capacity() && inside(msg, ring.mapping()));
  try {
    const wire::BatchView v = wire::parse(msg);
    FUZZ_CHECK(inside({reinterpret_cast<const uint8_t*>(v.rows.data()), v.rows.size_bytes()}, msg));
    if (v.kind() == wire::Kind::Error) {
      FUZZ_CHECK(v.text.size() <= wire::kMaxErrorText);
      FUZZ_CHECK(inside({reinterpret_cast<const uint8_t*>(v.text.data()), v.text.size()}, msg));
    } else {
      std::vector<float> rows(size_t{v.header.n_rows} * v.header.row_width);  // [n_rows × row_width]
      wire::read_rows(v, rows.data());
    }
  } catch (const Error&) {
  }
  ring.release();
}

void produce(shm::Ring& ring, const shm::WaitOptions& w) {
  try {
    std::span<uint8_t> slot = ring.acquire(w);
    FUZZ_CHECK(slot.size() == ring.slot_capacity() && inside(slot, ring.mapping()));
    const size_t n = std::min<size_t>(slot.size(), 64);
    std::memset(slot.data(), 0xa5, n);
    ring.publish(n);
  } catch (const Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Large segments only cost time: the geometry checks are the same.
  if (size > (1u << 20)) return 0;
  static int round = 0;
  const std::string name = "/tandem-fuzz-" + std::to_string(getpid()) + "-" + std::to_string(round++);
  if (!write_segment(name, data, size)) {
    shm_unlink(name.c_str());
    return 0;
  }
  shm::WaitOptions w;
  w.timeout = std::chrono::milliseconds(0);
  w.peer_timeout = std::chrono::milliseconds(1000);
  try {
    shm::Ring consumer = shm::Ring::open(name);
    FUZZ_CHECK(consumer.slots() > 0 && consumer.slot_capacity() > 0);
    FUZZ_CHECK(consumer.mapping().size() == size);
    shm::Ring producer = shm::Ring::open(name);
    for (int i = 0; i < 3; ++i) {
      consume(consumer, w);
      produce(producer, w);
    }
  } catch (const Error& e) {
    const std::string m = e.what();
    FUZZ_CHECK(!m.empty() && m.find('\n') == std::string::npos);
  }
  shm_unlink(name.c_str());
  return 0;
}
