#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/shm_ring.h"

using tandem::core::Error;
using tandem::core::shm::PeerDead;
using tandem::core::shm::Ring;
using tandem::core::shm::RingAborted;
using tandem::core::shm::RingTimeout;
using tandem::core::shm::Side;
using tandem::core::shm::unique_name;
using tandem::core::shm::WaitOptions;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// Every name a test creates is unlinked in TearDown, pass or fail, so
// nothing is left in /dev/shm.
class ShmRing : public ::testing::Test {
 protected:
  std::string fresh(std::string_view tag) {
    names_.push_back(unique_name(tag));
    return names_.back();
  }
  void TearDown() override {
    for (const auto& n : names_) shm_unlink(n.c_str());
  }

 private:
  std::vector<std::string> names_;
};

WaitOptions waiting(std::chrono::milliseconds timeout, std::chrono::milliseconds peer_timeout = 1000ms) {
  WaitOptions w;
  w.timeout = timeout;
  w.peer_timeout = peer_timeout;
  return w;
}

// Message i of a stream: a size that sweeps 0..capacity and bytes that
// depend on both the message and the position, so a wrong slot, a stale
// slot or a shifted copy all show up.
size_t message_size(uint64_t i, size_t capacity) { return (i * 37) % (capacity + 1); }
uint8_t message_byte(uint64_t i, size_t pos) { return uint8_t(i * 131 + pos * 7 + 1); }

void produce(Ring& ring, uint64_t i, size_t size, const WaitOptions& w) {
  auto slot = ring.acquire(w);
  for (size_t p = 0; p < size; ++p) slot[p] = message_byte(i, p);
  ring.publish(size);
}

// Empty string if message i arrived intact, else what differs.
std::string consume(Ring& ring, uint64_t i, size_t size, const WaitOptions& w) {
  auto got = ring.peek(w);
  std::string bad;
  if (got.size() != size) {
    bad =
        "message " + std::to_string(i) + ": " + std::to_string(got.size()) + " bytes, expected " + std::to_string(size);
  } else {
    for (size_t p = 0; p < size && bad.empty(); ++p)
      if (got[p] != message_byte(i, p))
        bad = "message " + std::to_string(i) + ": byte " + std::to_string(p) + " differs";
  }
  ring.release();
  return bad;
}

// what() of the E that f throws; a test failure if it throws nothing (any
// other exception propagates and fails the test too).
template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception";
  return {};
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// A forked child that is killed and reaped however the test ends.
struct Child {
  pid_t pid = -1;
  template <class F>
  explicit Child(F body) {
    pid = fork();
    if (pid == 0) {
      int rc = 0;
      try {
        body();
      } catch (...) {
        rc = 2;
      }
      _exit(rc);  // no gtest teardown, no atexit handlers in the child
    }
  }
  ~Child() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
  int exit_status() {
    int status = 0;
    waitpid(pid, &status, 0);
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
};

TEST_F(ShmRing, RoundTripKeepsSizesAndBytes) {
  const std::string name = fresh("roundtrip");
  Ring producer = Ring::create(name, 3, 100);
  Ring consumer = Ring::open(name);  // a second mapping: bytes must travel through the segment
  EXPECT_EQ(consumer.name(), name);
  EXPECT_EQ(consumer.slots(), 3u);
  EXPECT_EQ(consumer.slot_capacity(), 100u);

  const auto w = waiting(2s);
  const size_t sizes[] = {1, 100, 0, 37, 64};
  // Three in flight at once (a full ring), then one at a time.
  for (uint64_t i = 0; i < 3; ++i) produce(producer, i, sizes[i], w);
  for (uint64_t i = 0; i < 3; ++i) EXPECT_EQ(consume(consumer, i, sizes[i], w), "");
  for (uint64_t i = 3; i < 5; ++i) {
    produce(producer, i, sizes[i], w);
    EXPECT_EQ(consume(consumer, i, sizes[i], w), "");
  }
}

TEST_F(ShmRing, WrapsAroundWithConcurrentProducerThread) {
  const std::string name = fresh("wrap");
  constexpr uint64_t kMessages = 10000;
  constexpr size_t kCapacity = 256;
  Ring producer = Ring::create(name, 3, kCapacity);  // 3: not a power of two
  Ring consumer = Ring::open(name);
  const auto w = waiting(5s);

  std::string producer_error;
  std::thread thread([&] {
    try {
      for (uint64_t i = 0; i < kMessages; ++i) produce(producer, i, message_size(i, kCapacity), w);
    } catch (const std::exception& e) {
      producer_error = e.what();
    }
  });
  std::string first_bad;
  try {  // an escaping exception would destroy a joinable thread
    for (uint64_t i = 0; i < kMessages && first_bad.empty(); ++i)
      first_bad = consume(consumer, i, message_size(i, kCapacity), w);
  } catch (const std::exception& e) {
    first_bad = e.what();
  }
  thread.join();
  EXPECT_EQ(first_bad, "");
  EXPECT_EQ(producer_error, "");
}

TEST_F(ShmRing, ModeIs0600EvenUnderRestrictiveUmask) {
  const std::string name = fresh("mode");
  const mode_t old = umask(0277);  // would leave 0400 without the explicit fchmod
  Ring ring = Ring::create(name, 1, 16);
  umask(old);
  const int fd = shm_open(name.c_str(), O_RDONLY, 0);
  ASSERT_GE(fd, 0);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  close(fd);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(ShmRing, UnlinkRemovesNameButKeepsMapping) {
  const std::string name = fresh("unlink");
  Ring ring = Ring::create(name, 2, 32);
  EXPECT_NO_THROW(Ring::open(name));
  ring.unlink();
  const std::string msg = error_of<Error>([&] { Ring::open(name); });
  EXPECT_NE(msg.find("'" + name + "' does not exist"), std::string::npos) << msg;
  EXPECT_NO_THROW(ring.unlink());

  const auto w = waiting(1s);
  produce(ring, 0, 20, w);
  EXPECT_EQ(consume(ring, 0, 20, w), "");
}

TEST_F(ShmRing, OpenOfMissingNameSaysItDoesNotExist) {
  const std::string name = fresh("missing");
  const std::string msg = error_of<Error>([&] { Ring::open(name); });
  EXPECT_EQ(msg.rfind("shared-memory ring '" + name + "' does not exist (", 0), 0u) << msg;
}

TEST_F(ShmRing, OpenRejectsForeignSegments) {
  auto plain = [&](const std::string& name, size_t bytes) {
    const int fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    ASSERT_GE(fd, 0);
    const std::vector<uint8_t> garbage(bytes, 0xAB);
    ASSERT_EQ(write(fd, garbage.data(), bytes), ssize_t(bytes));
    close(fd);
  };
  const std::string garbage = fresh("garbage");
  plain(garbage, 4096);
  std::string msg = error_of<Error>([&] { Ring::open(garbage); });
  EXPECT_NE(msg.find("'" + garbage + "' is not a Tandem ring"), std::string::npos) << msg;

  const std::string tiny = fresh("tiny");
  plain(tiny, 10);
  msg = error_of<Error>([&] { Ring::open(tiny); });
  EXPECT_NE(msg.find("'" + tiny + "' is not a Tandem ring: 10 bytes"), std::string::npos) << msg;

  // A real ring whose file no longer matches its geometry.
  const std::string resized = fresh("resized");
  Ring ring = Ring::create(resized, 2, 100);
  const int fd = shm_open(resized.c_str(), O_RDWR, 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 64 * 1024), 0);
  close(fd);
  msg = error_of<Error>([&] { Ring::open(resized); });
  EXPECT_NE(msg.find("'" + resized + "' has a bad header"), std::string::npos) << msg;
}

TEST_F(ShmRing, CreateRejectsBadGeometryAndLeavesNoName) {
  const std::string name = fresh("geometry");
  auto rejected = [&](uint32_t slots, size_t capacity) {
    const std::string msg = error_of<Error>([&] { Ring::create(name, slots, capacity); });
    EXPECT_NE(msg.find(name), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::to_string(slots) + " slots of " + std::to_string(capacity) + " bytes"), std::string::npos)
        << msg;
    EXPECT_THROW(Ring::open(name), Error) << "a failed create left '" << name << "' behind";
  };
  rejected(0, 64);
  rejected(4, 0);
  rejected(std::numeric_limits<uint32_t>::max(), std::numeric_limits<size_t>::max() - 8);  // size overflows
  rejected(1u << 30, size_t{1} << 30);  // 1 EiB: fits in off_t, fits no machine

  // An existing name is refused, and the failed create must not remove it.
  Ring first = Ring::create(name, 1, 8);
  const std::string msg = error_of<Error>([&] { Ring::create(name, 1, 8); });
  EXPECT_NE(msg.find(name), std::string::npos) << msg;
  EXPECT_NO_THROW(Ring::open(name));
}

TEST_F(ShmRing, PublishRejectsMoreThanCapacity) {
  const std::string name = fresh("oversize");
  Ring ring = Ring::create(name, 2, 64);
  EXPECT_THROW(ring.publish(1), Error);  // nothing acquired yet
  ring.acquire(waiting(1s));
  const std::string msg = error_of<Error>([&] { ring.publish(65); });
  EXPECT_NE(msg.find(name), std::string::npos) << msg;
  EXPECT_NE(msg.find("65 bytes into a slot of 64 bytes"), std::string::npos) << msg;
  // The slot is still ours and takes a message that fits.
  ring.publish(64);
  EXPECT_EQ(ring.peek(waiting(1s)).size(), 64u);
}

TEST_F(ShmRing, PeekOnEmptyRingTimesOut) {
  const std::string name = fresh("empty");
  Ring ring = Ring::create(name, 2, 16);
  const auto t0 = Clock::now();
  const std::string msg = error_of<RingTimeout>([&] { ring.peek(waiting(100ms)); });
  const double took = seconds_since(t0);
  EXPECT_GE(took, 0.095);
  EXPECT_LT(took, 0.6);
  EXPECT_NE(msg.find(name), std::string::npos) << msg;
  EXPECT_NE(msg.find("100 ms waiting for a filled slot"), std::string::npos) << msg;
}

TEST_F(ShmRing, AcquireOnFullRingTimesOut) {
  const std::string name = fresh("full");
  Ring ring = Ring::create(name, 2, 16);
  produce(ring, 0, 1, waiting(1s));
  produce(ring, 1, 1, waiting(1s));
  const auto t0 = Clock::now();
  const std::string msg = error_of<RingTimeout>([&] { ring.acquire(waiting(100ms)); });
  EXPECT_LT(seconds_since(t0), 0.6);
  EXPECT_NE(msg.find("waiting for a free slot"), std::string::npos) << msg;
  // Releasing one makes room again.
  EXPECT_EQ(consume(ring, 0, 1, waiting(1s)), "");
  EXPECT_EQ(ring.acquire(waiting(100ms)).size(), 16u);
}

TEST_F(ShmRing, KeepWaitingFalseAbortsPromptly) {
  const std::string name = fresh("abort");
  Ring ring = Ring::create(name, 2, 16);
  WaitOptions w = waiting(10s);
  int polls = 0;
  w.keep_waiting = [&] { return ++polls < 4; };
  const auto t0 = Clock::now();
  const std::string msg = error_of<RingAborted>([&] { ring.peek(w); });
  // Three full 50 ms slices before the fourth poll says stop.
  EXPECT_EQ(polls, 4);
  EXPECT_LT(seconds_since(t0), 0.5);
  EXPECT_NE(msg.find(name), std::string::npos) << msg;
}

TEST_F(ShmRing, StaleProducerHeartbeatIsPeerDead) {
  const std::string name = fresh("stale");
  Ring producer = Ring::create(name, 2, 16);
  Ring consumer = Ring::open(name);
  producer.beat(Side::Producer);
  const auto t0 = Clock::now();
  const std::string msg = error_of<PeerDead>([&] { consumer.peek(waiting(10s, 100ms)); });
  const double took = seconds_since(t0);
  EXPECT_GE(took, 0.09);
  EXPECT_LT(took, 0.6);
  EXPECT_NE(msg.find("producer heartbeat"), std::string::npos) << msg;
  EXPECT_NE(msg.find(name), std::string::npos) << msg;
}

TEST_F(ShmRing, StaleConsumerHeartbeatFailsAcquire) {
  const std::string name = fresh("stale-consumer");
  Ring producer = Ring::create(name, 1, 16);
  Ring consumer = Ring::open(name);
  produce(producer, 0, 4, waiting(1s));  // ring now full
  consumer.beat(Side::Consumer);
  const auto t0 = Clock::now();
  const std::string msg = error_of<PeerDead>([&] { producer.acquire(waiting(10s, 100ms)); });
  EXPECT_LT(seconds_since(t0), 0.6);
  EXPECT_NE(msg.find("consumer heartbeat"), std::string::npos) << msg;
}

TEST_F(ShmRing, PeerThatNeverBeatIsOnlyTimedOut) {
  const std::string name = fresh("never");
  Ring ring = Ring::create(name, 1, 16);
  EXPECT_EQ(ring.last_beat_ns(Side::Producer), 0u);
  EXPECT_TRUE(ring.peer_alive(Side::Producer, 0ms));
  EXPECT_THROW(ring.peek(waiting(150ms, 10ms)), RingTimeout);
}

TEST_F(ShmRing, HeartbeatIsSharedAndAges) {
  const std::string name = fresh("beat");
  Ring a = Ring::create(name, 1, 16);
  Ring b = Ring::open(name);
  timespec before{};
  clock_gettime(CLOCK_MONOTONIC, &before);
  a.beat(Side::Consumer);
  const uint64_t seen = b.last_beat_ns(Side::Consumer);
  EXPECT_GE(seen, uint64_t(before.tv_sec) * 1'000'000'000u + uint64_t(before.tv_nsec));
  EXPECT_EQ(b.last_beat_ns(Side::Producer), 0u);
  EXPECT_TRUE(b.peer_alive(Side::Consumer, 1000ms));
  std::this_thread::sleep_for(30ms);
  EXPECT_FALSE(b.peer_alive(Side::Consumer, 10ms));
  EXPECT_THROW(a.beat(static_cast<Side>(7)), Error);
}

TEST_F(ShmRing, CorruptSlotHeaderIsReported) {
  const std::string name = fresh("corrupt");
  Ring producer = Ring::create(name, 2, 32);
  Ring consumer = Ring::open(name);
  auto payload = producer.acquire(waiting(1s));
  producer.publish(8);
  // White box: the slot header {seq, bytes} is the 16 bytes before the payload.
  uint8_t* slot = payload.data() - 16;
  const uint64_t wrong_seq = 5, too_many = 33, good_seq = 0;
  std::memcpy(slot, &wrong_seq, 8);
  std::string msg = error_of<Error>([&] { consumer.peek(waiting(1s)); });
  EXPECT_NE(msg.find("corrupt slot"), std::string::npos) << msg;
  EXPECT_NE(msg.find("sequence number 5, expected 0"), std::string::npos) << msg;
  std::memcpy(slot, &good_seq, 8);
  std::memcpy(slot + 8, &too_many, 8);
  msg = error_of<Error>([&] { consumer.peek(waiting(1s)); });
  EXPECT_NE(msg.find("corrupt slot"), std::string::npos) << msg;
  EXPECT_NE(msg.find("33 bytes, capacity 32"), std::string::npos) << msg;
}

TEST_F(ShmRing, ReattachNeedsResetAndThenWorks) {
  const std::string name = fresh("reattach");
  Ring survivor = Ring::create(name, 2, 16);
  produce(survivor, 0, 3, waiting(1s));
  survivor.beat(Side::Consumer);
  survivor.beat(Side::Producer);

  // A restarted producer counts from 0 while the ring says 1 was published.
  Ring restarted = Ring::open(name);
  const std::string msg = error_of<Error>([&] { restarted.acquire(waiting(1s)); });
  EXPECT_NE(msg.find("head is 1"), std::string::npos) << msg;

  survivor.reset();
  EXPECT_EQ(survivor.last_beat_ns(Side::Producer), 0u);
  EXPECT_THROW(survivor.peek(waiting(50ms)), RingTimeout);  // the old message is gone
  produce(restarted, 0, 5, waiting(1s));
  EXPECT_EQ(consume(survivor, 0, 5, waiting(1s)), "");
}

TEST_F(ShmRing, MoveTransfersTheMapping) {
  const std::string name = fresh("move");
  Ring a = Ring::create(name, 2, 16);
  Ring b(std::move(a));
  EXPECT_THROW(a.acquire(waiting(10ms)), Error);  // NOLINT(bugprone-use-after-move): that is the point
  Ring c = Ring::create(fresh("move2"), 1, 8);
  c = std::move(b);
  EXPECT_EQ(c.name(), name);
  produce(c, 0, 16, waiting(1s));
  EXPECT_EQ(consume(c, 0, 16, waiting(1s)), "");
}

TEST_F(ShmRing, UniqueNamesAreDistinctAndValid) {
  const std::string a = unique_name("a/b c");
  const std::string b = unique_name("a/b c");
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind("/tandem-" + std::to_string(getpid()) + "-", 0), 0u) << a;
  EXPECT_EQ(a.substr(a.size() - 6), "-a_b_c") << a;
  EXPECT_EQ(a.find('/', 1), std::string::npos) << a;
  EXPECT_LE(unique_name(std::string(300, 'x')).size(), 100u);
}

TEST_F(ShmRing, ForkedProducerStreamsToParent) {
  const std::string name = fresh("fork");
  constexpr uint64_t kMessages = 2000;
  constexpr size_t kCapacity = 1000;
  Ring consumer = Ring::create(name, 4, kCapacity);
  Child child([&] {
    Ring producer = Ring::open(name);  // by name, as a real peer would
    for (uint64_t i = 0; i < kMessages; ++i) {
      producer.beat(Side::Producer);
      produce(producer, i, message_size(i, kCapacity), waiting(5s));
    }
  });
  ASSERT_GT(child.pid, 0);
  std::string first_bad;
  for (uint64_t i = 0; i < kMessages && first_bad.empty(); ++i)
    first_bad = consume(consumer, i, message_size(i, kCapacity), waiting(5s));
  EXPECT_EQ(first_bad, "");
  EXPECT_EQ(child.exit_status(), 0);
}

TEST_F(ShmRing, KilledProducerProcessIsPeerDead) {
  const std::string name = fresh("killed");
  Ring consumer = Ring::create(name, 4, 64);
  Child child([&] {
    Ring producer = Ring::open(name);
    producer.beat(Side::Producer);
    for (uint64_t i = 0; i < 3; ++i) produce(producer, i, 10, waiting(5s));
    // Keep beating until killed; give up on our own if the parent is gone.
    for (int n = 0; n < 1000; ++n) {
      producer.beat(Side::Producer);
      std::this_thread::sleep_for(10ms);
    }
  });
  ASSERT_GT(child.pid, 0);
  const auto w = waiting(5s, 250ms);
  for (uint64_t i = 0; i < 3; ++i) ASSERT_EQ(consume(consumer, i, 10, w), "");
  // Alive and beating from another process: an empty ring only times out.
  EXPECT_THROW(consumer.peek(waiting(300ms, 250ms)), RingTimeout);

  kill(child.pid, SIGKILL);
  const auto t0 = Clock::now();
  const std::string msg = error_of<PeerDead>([&] { consumer.peek(w); });
  EXPECT_LT(seconds_since(t0), 1.0);
  EXPECT_NE(msg.find("producer heartbeat"), std::string::npos) << msg;
}

}  // namespace
