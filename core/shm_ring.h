#pragma once
// Single-producer single-consumer ring of fixed-size slots in POSIX shared
// memory, for streaming activations between processes on one host.
//
// One process creates the segment and passes its name to the other, which
// opens it; each process holds its own Ring (its own mapping). Exactly one
// side produces (acquire, fill, publish) and one consumes (peek, use,
// release). Payloads are handed out in place, so a message is written once
// and read once, with no copy through the kernel.
//
// Waiting never blocks forever: every wait is bounded by WaitOptions::timeout,
// can be abandoned by the caller's keep_waiting(), and ends early when the
// other side stops beating (each side calls beat() periodically, so a crashed
// peer is noticed in about peer_timeout instead of the full timeout).
//
// Each Ring object counts the messages it has published and consumed from 0,
// and checks that count against the shared indices. A side that attaches to a
// ring already in use (a peer restart) therefore needs the surviving side to
// call reset() first; without it the first acquire/peek reports the mismatch
// instead of handing out the wrong slot.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "core/error.h"

namespace tandem::core::shm {

namespace detail {
struct RingHeader;  // the shared layout, defined in shm_ring.cpp
}

class RingTimeout : public Error {  // deadline passed while waiting
 public:
  using Error::Error;
};
class PeerDead : public Error {  // the other side's heartbeat went stale
 public:
  using Error::Error;
};
class RingAborted : public Error {  // caller's keep_waiting() returned false
 public:
  using Error::Error;
};

enum class Side : uint32_t { Producer = 0, Consumer = 1 };

struct WaitOptions {
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};              // total wait bound
  std::chrono::milliseconds peer_timeout{std::chrono::milliseconds(1000)};  // heartbeat older than this => PeerDead
  std::function<bool()> keep_waiting;  // optional; polled at least every 50 ms; false => RingAborted
};

// A fresh segment name, "/tandem-<pid>-<counter>-<random hex>-<tag>". The tag
// is a short caller label; characters other than [A-Za-z0-9._-] become '_'
// (a '/' would make the name invalid) and it is cut to 32 characters.
std::string unique_name(std::string_view tag);

class Ring {
 public:
  // Creates a new segment (fails if the name exists), mode 0600 regardless of
  // umask, with `slots` slots of `slot_capacity` payload bytes each. The
  // segment's memory is reserved up front, so a full /dev/shm is reported here
  // rather than as SIGBUS on a later write.
  static Ring create(const std::string& name, uint32_t slots, size_t slot_capacity);
  // Maps an existing segment after checking that it is a ring of this layout
  // (magic, version, and a file size that matches its geometry).
  static Ring open(const std::string& name);

  Ring(Ring&& other) noexcept;
  Ring& operator=(Ring&& other) noexcept;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  ~Ring();  // unmaps; never unlinks (the creator decides when the name goes)

  // Removes the name so nothing else can open it; this mapping and the
  // peer's stay valid. Idempotent, never throws.
  void unlink() noexcept;

  const std::string& name() const { return name_; }
  // The whole segment as this side maps it (header and slots), for checks
  // that a handed-out payload lies inside it (the ring fuzzer's).
  std::span<const uint8_t> mapping() const { return {base_, mapped_}; }
  uint32_t slots() const { return slots_; }
  size_t slot_capacity() const { return capacity_; }

  // Producer. acquire() waits for a free slot and returns its payload area
  // (slot_capacity() bytes, 16-byte aligned); calling it again before
  // publish() returns the same slot. publish(bytes) makes the first `bytes`
  // of it visible to the consumer; bytes > slot_capacity() -> Error.
  std::span<uint8_t> acquire(const WaitOptions& w);
  void publish(size_t bytes);

  // Consumer. peek() waits for a filled slot, checks its header (sequence
  // number and size; otherwise Error "corrupt slot") and returns the payload
  // the producer published. The span stays valid until release(), which
  // hands the slot back to the producer.
  std::span<const uint8_t> peek(const WaitOptions& w);
  void release();

  // Heartbeats. Each side calls beat(its side) periodically (e.g. every 50 ms
  // from a thread). A waiter declares the other side dead once that side has
  // beaten at least once and its last beat is older than peer_timeout; until
  // the first beat only the timeout applies.
  void beat(Side s);
  // CLOCK_MONOTONIC nanoseconds of side s's last beat; 0 = never.
  uint64_t last_beat_ns(Side s) const;
  // True if side `peer` has never beaten or beat within peer_timeout.
  bool peer_alive(Side peer, std::chrono::milliseconds peer_timeout) const;

  // Empties the ring and forgets both heartbeats, for re-attaching after a
  // peer restart: call it on the surviving side's Ring while nobody uses the
  // ring (the caller guarantees that). The heartbeats go too because the dead
  // peer's stale beat would otherwise fail the next wait before the new peer
  // has had a chance to beat.
  void reset();

 private:
  Ring() = default;
  Ring(std::string name, void* base, size_t bytes);
  void swap(Ring& other) noexcept;
  detail::RingHeader& header() const;
  uint8_t* slot_at(uint64_t index) const;

  std::string name_;
  // The whole segment: [Header][slot 0]...[slot slots-1], each slot
  // `stride_` bytes = {seq, bytes} header, payload, padding to 64 bytes.
  uint8_t* base_ = nullptr;
  size_t mapped_ = 0;
  // Geometry copied out of the header once validated, so a peer scribbling
  // on the header cannot make this side index outside its mapping.
  uint32_t slots_ = 0;
  size_t stride_ = 0;
  size_t capacity_ = 0;
  // Messages this object has published / released; also the sequence number
  // of the next one. 64-bit, so slot positions never wrap in practice.
  uint64_t produced_ = 0;
  uint64_t consumed_ = 0;
  bool acquired_ = false;  // acquire() returned a slot not yet published
  bool peeked_ = false;    // peek() returned a slot not yet released
  bool unlinked_ = false;
};

}  // namespace tandem::core::shm
