// Shared-memory SPSC ring: layout, futex waits and the segment lifecycle.
//
// Segment layout (all offsets from the start of the mapping):
//   [0, sizeof(Header))                  Header, one cache line per writer
//   header + (i % slots) * stride        slot of message i:
//       SlotHeader {seq, bytes}          16 bytes, written by the producer
//       payload[capacity]                message bytes
//       padding                          up to the next multiple of 64
// `head` counts messages published and `tail` messages released; both are
// 32-bit so they can be futex words, and wrap as unsigned (head - tail is the
// fill level either way). Slot positions come from each side's own 64-bit
// message count instead, because a 32-bit index taken modulo a slot count
// that is not a power of two would jump when it wraps.
#include "core/shm_ring.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <limits>
#include <new>
#include <random>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace tandem::core::shm {

namespace detail {

struct RingHeader {
  // Written once by create(); magic last (release), so an open() racing a
  // half-built segment sees 0 and rejects it instead of reading bad geometry.
  std::atomic<uint64_t> magic;
  uint32_t version;
  uint32_t slots;
  uint64_t stride;    // bytes per slot, multiple of 64
  uint64_t capacity;  // payload bytes per slot
  // Producer and consumer each write one word; separate lines keep them from
  // bouncing a shared line on every message.
  alignas(64) std::atomic<uint32_t> head;  // messages published
  alignas(64) std::atomic<uint32_t> tail;  // messages released
  // Indexed by Side. Written every ~50 ms, so sharing one line costs nothing.
  alignas(64) std::atomic<uint64_t> beat_ns[2];
};

}  // namespace detail

namespace {

using Header = detail::RingHeader;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

constexpr uint64_t kMagic = 0x54444d52494e4731;  // "TDMRING1"
constexpr uint32_t kVersion = 1;
constexpr size_t kLine = 64;
constexpr int kSpins = 256;         // ~ tens of microseconds of pause
constexpr milliseconds kSlice{50};  // longest single futex sleep

struct SlotHeader {
  uint64_t seq;    // message index, stamped by the producer
  uint64_t bytes;  // payload length of this message
};

static_assert(std::atomic<uint32_t>::is_always_lock_free && std::atomic<uint64_t>::is_always_lock_free,
              "the header's atomics are shared between processes, so they must not hide a lock");
static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "head/tail double as 32-bit futex words");
static_assert(std::is_standard_layout_v<Header>, "the header is a wire layout between processes");
static_assert(offsetof(Header, head) % kLine == 0 && offsetof(Header, tail) % kLine == 0 &&
              offsetof(Header, beat_ns) % kLine == 0 && sizeof(Header) % kLine == 0);
static_assert(sizeof(SlotHeader) == 16);

std::string quoted(const std::string& name) { return "shared-memory ring '" + name + "'"; }

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

std::string side_name(Side s) { return s == Side::Producer ? "producer" : "consumer"; }

size_t side_index(Side s) {
  const auto i = static_cast<uint32_t>(s);
  if (i > 1) throw Error("shared-memory ring: invalid side " + std::to_string(i));
  return i;
}

// Slot stride and segment size for a geometry; false if they overflow
// (a segment larger than off_t can describe counts as overflow too).
bool geometry(uint32_t slots, uint64_t capacity, size_t& stride, size_t& total) {
  size_t padded = 0;
  if (__builtin_add_overflow(capacity, sizeof(SlotHeader) + kLine - 1, &padded)) return false;
  stride = padded / kLine * kLine;
  size_t all_slots = 0;
  if (__builtin_mul_overflow(size_t{slots}, stride, &all_slots)) return false;
  if (__builtin_add_overflow(all_slots, sizeof(Header), &total)) return false;
  return total <= static_cast<size_t>(std::numeric_limits<off_t>::max());
}

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // the same clock in every process on the host
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// Not the _PRIVATE futex ops: the word lives in a MAP_SHARED mapping and the
// waker may be another process, so the kernel must key it by the page.
uint32_t* futex_word(std::atomic<uint32_t>& word) { return reinterpret_cast<uint32_t*>(&word); }

void futex_wait(std::atomic<uint32_t>& word, uint32_t expected, nanoseconds slice) {
  timespec ts{};
  ts.tv_sec = time_t(slice.count() / 1'000'000'000);
  ts.tv_nsec = long(slice.count() % 1'000'000'000);
  // Sleeps only while the word still equals `expected`, so a store between
  // the caller's check and this call is not lost. EAGAIN, EINTR and ETIMEDOUT
  // all just send the caller back to re-check.
  syscall(SYS_futex, futex_word(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}

// Called after every publish/release. Skipping it when nobody sleeps would
// need a waiters flag plus a full fence on both sides to avoid lost wake-ups;
// one uncontended FUTEX_WAKE (well under a microsecond) per slot is small next
// to the activation the slot carries, so we always wake.
void futex_wake(std::atomic<uint32_t>& word) {
  syscall(SYS_futex, futex_word(word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

// Waits until ready(word) and returns the word's value that satisfied it.
// Spins first (the peer is usually mid-message), then sleeps on the futex in
// slices, re-checking between slices the caller's keep_waiting, the peer's
// heartbeat and the deadline. `what` names the awaited thing for errors.
template <class Ready>
uint32_t wait_for(const Ring& ring, std::atomic<uint32_t>& word, Ready ready, Side peer, const WaitOptions& w,
                  const char* what) {
  for (int i = 0; i < kSpins; ++i) {
    const uint32_t seen = word.load(std::memory_order_acquire);
    if (ready(seen)) return seen;
    cpu_relax();
  }
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + w.timeout;
  for (;;) {
    const uint32_t seen = word.load(std::memory_order_acquire);
    if (ready(seen)) return seen;
    if (w.keep_waiting && !w.keep_waiting())
      throw RingAborted(quoted(ring.name()) + ": wait for " + what + " abandoned (keep_waiting returned false)");
    if (!ring.peer_alive(peer, w.peer_timeout)) {
      const uint64_t age_ms = (monotonic_ns() - ring.last_beat_ns(peer)) / 1'000'000;
      throw PeerDead(quoted(ring.name()) + ": " + side_name(peer) + " heartbeat is " + std::to_string(age_ms) +
                     " ms old (peer_timeout " + std::to_string(w.peer_timeout.count()) + " ms) while waiting for " +
                     what);
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline)
      throw RingTimeout(quoted(ring.name()) + ": timed out after " + std::to_string(w.timeout.count()) +
                        " ms waiting for " + what);
    futex_wait(word, seen, std::min<nanoseconds>(deadline - now, kSlice));
  }
}

// A side's own message count must match its shared index (mod 2^32). It does
// not when a second producer/consumer uses the ring, or when a side attached
// to a ring in use without reset(); continuing would hand out the wrong slot.
void check_in_step(const std::string& name, const char* index_name, uint32_t shared, uint64_t own) {
  if (shared != uint32_t(own))
    throw Error(quoted(name) + ": " + index_name + " is " + std::to_string(shared) + " but this side has counted " +
                std::to_string(own) + " messages (a second user of this side, or re-attached without reset()?)");
}

}  // namespace

std::string unique_name(std::string_view tag) {
  static std::atomic<uint64_t> counter{0};
  std::random_device rd;
  const uint64_t random = (uint64_t(rd()) << 32) | rd();
  std::string clean;
  for (char c : tag.substr(0, 32)) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    clean += ok ? c : '_';
  }
  char buf[96];  // "/tandem-" + pid + 20-digit counter + 16 hex + dashes, with room to spare
  std::snprintf(buf, sizeof buf, "/tandem-%ld-%llu-%016llx-", long(getpid()),
                static_cast<unsigned long long>(counter.fetch_add(1)), static_cast<unsigned long long>(random));
  return buf + clean;
}

Ring::Ring(std::string name, void* base, size_t bytes)
    : name_(std::move(name)), base_(static_cast<uint8_t*>(base)), mapped_(bytes) {}

Ring::Ring(Ring&& other) noexcept { swap(other); }

Ring& Ring::operator=(Ring&& other) noexcept {
  Ring old(std::move(other));
  swap(old);  // our previous mapping leaves with `old`
  return *this;
}

Ring::~Ring() {
  if (base_) munmap(base_, mapped_);
}

void Ring::swap(Ring& o) noexcept {
  std::swap(name_, o.name_);
  std::swap(base_, o.base_);
  std::swap(mapped_, o.mapped_);
  std::swap(slots_, o.slots_);
  std::swap(stride_, o.stride_);
  std::swap(capacity_, o.capacity_);
  std::swap(produced_, o.produced_);
  std::swap(consumed_, o.consumed_);
  std::swap(acquired_, o.acquired_);
  std::swap(peeked_, o.peeked_);
  std::swap(unlinked_, o.unlinked_);
}

detail::RingHeader& Ring::header() const {
  if (!base_) throw Error("shared-memory ring used after it was moved from");
  return *reinterpret_cast<Header*>(base_);
}

uint8_t* Ring::slot_at(uint64_t index) const { return base_ + sizeof(Header) + (index % slots_) * stride_; }

Ring Ring::create(const std::string& name, uint32_t slots, size_t slot_capacity) {
  const std::string shape = std::to_string(slots) + " slots of " + std::to_string(slot_capacity) + " bytes";
  if (slots == 0 || slot_capacity == 0)
    throw Error("cannot create " + quoted(name) + " with " + shape + ": needs at least one slot of at least one byte");
  size_t stride = 0, total = 0;
  if (!geometry(slots, slot_capacity, stride, total))
    throw Error("cannot create " + quoted(name) + " with " + shape + ": the segment size overflows");

  const int fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) throw Error("cannot create " + quoted(name) + " (" + errno_text(errno) + ")");
  // From here on the name is ours, so a failure removes it again.
  auto fail = [&](const char* step, int err) {
    close(fd);
    shm_unlink(name.c_str());
    throw Error("cannot create " + quoted(name) + " with " + shape + " (" + std::to_string(total) + " bytes): " + step +
                " failed (" + errno_text(err) + ")");
  };
  // shm_open's mode is filtered by the umask; the peer (same user) needs
  // read-write, and nobody else should get anything.
  if (fchmod(fd, 0600) != 0) fail("fchmod", errno);
  if (ftruncate(fd, off_t(total)) != 0) fail("ftruncate", errno);
  // Mapping first: a size beyond the address space fails here at no cost,
  // before the reservation below would try to allocate it.
  void* base = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) fail("mmap", errno);
  // ftruncate alone leaves the file sparse: with /dev/shm full (64 MiB by
  // default in containers) a later write to the mapping would die with SIGBUS.
  if (const int err = posix_fallocate(fd, 0, off_t(total)); err != 0) {
    munmap(base, total);
    fail("posix_fallocate", err);
  }
  close(fd);  // the mapping keeps the segment alive

  Ring ring(name, base, total);
  Header* h = new (base) Header{};
  h->version = kVersion;
  h->slots = slots;
  h->stride = stride;
  h->capacity = slot_capacity;
  h->magic.store(kMagic, std::memory_order_release);
  ring.slots_ = slots;
  ring.stride_ = stride;
  ring.capacity_ = slot_capacity;
  return ring;
}

Ring Ring::open(const std::string& name) {
  const int fd = shm_open(name.c_str(), O_RDWR, 0);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) throw Error(quoted(name) + " does not exist (" + errno_text(err) + ")");
    throw Error("cannot open " + quoted(name) + " (" + errno_text(err) + ")");
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    throw Error("cannot stat " + quoted(name) + " (" + errno_text(err) + ")");
  }
  const auto size = static_cast<size_t>(st.st_size);
  if (size < sizeof(Header)) {
    close(fd);
    throw Error(quoted(name) + " is not a Tandem ring: " + std::to_string(size) + " bytes, smaller than the " +
                std::to_string(sizeof(Header)) + "-byte ring header");
  }
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int map_err = errno;
  close(fd);
  if (base == MAP_FAILED) throw Error("cannot map " + quoted(name) + " (" + errno_text(map_err) + ")");

  Ring ring(name, base, size);  // unmaps again if a check below throws
  const Header& h = ring.header();
  const uint64_t magic = h.magic.load(std::memory_order_acquire);
  if (magic != kMagic) {
    char hex[64];
    std::snprintf(hex, sizeof hex, "magic 0x%016llx, expected 0x%016llx", static_cast<unsigned long long>(magic),
                  static_cast<unsigned long long>(kMagic));
    throw Error(quoted(name) + " is not a Tandem ring (" + hex + ")");
  }
  if (h.version != kVersion)
    throw Error(quoted(name) + " has layout version " + std::to_string(h.version) + ", this build reads version " +
                std::to_string(kVersion));
  size_t stride = 0, total = 0;
  if (h.slots == 0 || h.capacity == 0 || !geometry(h.slots, h.capacity, stride, total) || h.stride != stride ||
      total != size)
    throw Error(quoted(name) + " has a bad header: " + std::to_string(h.slots) + " slots of " +
                std::to_string(h.capacity) + " bytes with stride " + std::to_string(h.stride) + " in a segment of " +
                std::to_string(size) + " bytes");
  ring.slots_ = h.slots;
  ring.stride_ = stride;
  ring.capacity_ = h.capacity;
  return ring;
}

namespace {
// More slots filled than exist: a peer wrote nonsense into the indices.
void check_fill(const std::string& name, uint32_t head, uint32_t tail, uint32_t slots) {
  if (head - tail > slots)
    throw Error(quoted(name) + ": corrupt indices (head " + std::to_string(head) + ", tail " + std::to_string(tail) +
                ", " + std::to_string(slots) + " slots)");
}
}  // namespace

void Ring::unlink() noexcept {
  if (unlinked_ || !base_) return;
  unlinked_ = true;
  shm_unlink(name_.c_str());  // ENOENT (someone else unlinked it) is fine too
}

std::span<uint8_t> Ring::acquire(const WaitOptions& w) {
  Header& h = header();
  const uint32_t head = h.head.load(std::memory_order_relaxed);  // only we write it
  check_in_step(name_, "head", head, produced_);
  // Free means fewer than slots_ filled. "Not exactly full" is the wait
  // condition so that impossible fill levels end the wait and get reported.
  // The acquire load of tail orders the consumer's reads of the slot before
  // our overwrite.
  const uint32_t tail = wait_for(
      *this, h.tail, [&](uint32_t t) { return head - t != slots_; }, Side::Consumer, w, "a free slot");
  check_fill(name_, head, tail, slots_);
  acquired_ = true;
  return {slot_at(produced_) + sizeof(SlotHeader), capacity_};
}

void Ring::publish(size_t bytes) {
  Header& h = header();
  if (!acquired_) throw Error(quoted(name_) + ": publish() without a preceding acquire()");
  if (bytes > capacity_)
    throw Error(quoted(name_) + ": cannot publish " + std::to_string(bytes) + " bytes into a slot of " +
                std::to_string(capacity_) + " bytes");
  auto* slot = reinterpret_cast<SlotHeader*>(slot_at(produced_));
  slot->seq = produced_;
  slot->bytes = bytes;
  // Release: the payload and slot header are visible before the new head.
  h.head.store(uint32_t(produced_ + 1), std::memory_order_release);
  ++produced_;
  acquired_ = false;
  futex_wake(h.head);
}

std::span<const uint8_t> Ring::peek(const WaitOptions& w) {
  Header& h = header();
  const uint32_t tail = h.tail.load(std::memory_order_relaxed);  // only we write it
  check_in_step(name_, "tail", tail, consumed_);
  // Acquire load of head: the producer's slot writes are visible after it.
  const uint32_t head = wait_for(
      *this, h.head, [&](uint32_t hd) { return hd != tail; }, Side::Producer, w, "a filled slot");
  check_fill(name_, head, tail, slots_);
  const uint8_t* slot = slot_at(consumed_);
  // Each field is read once: a confused producer could rewrite the slot, and
  // a length checked then re-read could differ from the one used.
  SlotHeader sh;
  std::memcpy(&sh, slot, sizeof sh);
  if (sh.seq != consumed_ || sh.bytes > capacity_)
    throw Error(quoted(name_) + ": corrupt slot " + std::to_string(consumed_ % slots_) + " (sequence number " +
                std::to_string(sh.seq) + ", expected " + std::to_string(consumed_) + "; " + std::to_string(sh.bytes) +
                " bytes, capacity " + std::to_string(capacity_) + ")");
  peeked_ = true;
  return {slot + sizeof(SlotHeader), size_t(sh.bytes)};
}

void Ring::release() {
  Header& h = header();
  if (!peeked_) throw Error(quoted(name_) + ": release() without a preceding peek()");
  // Release: our reads of the payload complete before the producer may reuse it.
  h.tail.store(uint32_t(consumed_ + 1), std::memory_order_release);
  ++consumed_;
  peeked_ = false;
  futex_wake(h.tail);
}

void Ring::beat(Side s) {
  // Relaxed: a beat carries a time, not data. Never 0, which means "never".
  header().beat_ns[side_index(s)].store(std::max<uint64_t>(monotonic_ns(), 1), std::memory_order_relaxed);
}

uint64_t Ring::last_beat_ns(Side s) const { return header().beat_ns[side_index(s)].load(std::memory_order_relaxed); }

bool Ring::peer_alive(Side peer, milliseconds peer_timeout) const {
  const uint64_t last = last_beat_ns(peer);
  if (last == 0) return true;
  const uint64_t now = monotonic_ns();  // read after `last`, so normally now >= last
  const uint64_t age = now > last ? now - last : 0;
  return age <= uint64_t(std::max<int64_t>(nanoseconds(peer_timeout).count(), 0));
}

void Ring::reset() {
  Header& h = header();
  h.head.store(0, std::memory_order_release);
  h.tail.store(0, std::memory_order_release);
  h.beat_ns[0].store(0, std::memory_order_relaxed);
  h.beat_ns[1].store(0, std::memory_order_relaxed);
  produced_ = consumed_ = 0;
  acquired_ = peeked_ = false;
}

}  // namespace tandem::core::shm
