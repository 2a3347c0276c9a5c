// Faults injected into the real three-process service (issue 9): a worker
// frozen past the ring timeout (SIGSTOP), one that stays frozen, a corrupted
// slot header in a live ring, a full /dev/shm, and a model file the workers
// cannot read. Each must end the streams it touches with a clear status,
// keep the coordinator up, recover once the fault clears, and leave no
// shared-memory segment, KV slot or file descriptor behind.
// (kill -9 at random points of prefill and decode: test_worker_failure.cpp
// here, and 100 times under load in `make soak`.)
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/integration/service_harness.h"
#include "tests/unit/test_support.h"

namespace tandem::test {
namespace {

namespace fs = std::filesystem;
namespace pb = tandem::v1;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::vector<std::string> kSmall = {"--gpu-layers", "10", "-c", "1024", "--max-sequences", "2"};

int64_t stage_pid(pb::Inference::Stub& stub, const std::string& role) {
  grpc::ClientContext ctx;
  pb::ModelInfo info;
  if (!stub.GetModelInfo(&ctx, {}, &info).ok()) return 0;
  for (const auto& s : info.stages())
    if (s.worker() == role) return s.pid();
  return 0;
}

size_t count_entries(const std::string& dir, const std::string& prefix = "") {
  size_t n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().filename().string().rfind(prefix, 0) == 0) ++n;
  return n;
}

// What a fault could leak in the coordinator: descriptors, threads, and ring
// names it created (/dev/shm/tandem-<pid>-...).
struct Resources {
  size_t fds = 0, threads = 0, shm = 0;
};
Resources resources(pid_t coordinator) {
  const std::string proc = "/proc/" + std::to_string(coordinator);
  return {count_entries(proc + "/fd"), count_entries(proc + "/task"),
          count_entries("/dev/shm", "tandem-" + std::to_string(coordinator) + "-")};
}

// A stream that runs long enough to be caught mid-decode.
struct LongStream {
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<pb::GenerateResponse>> reader;
  explicit LongStream(pb::Inference::Stub& stub) {
    auto req = greedy_request("Tell me a long story about a dragon.", 900);
    req.mutable_options()->set_ignore_eos(true);
    reader = stub.Generate(&ctx, req);
    pb::GenerateResponse msg;
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(reader->Read(&msg));
  }
  // Reads to the end; the status and how long after `since` it came.
  std::pair<grpc::Status, double> finish(Clock::time_point since) {
    pb::GenerateResponse msg;
    while (reader->Read(&msg)) {
    }
    const grpc::Status s = reader->Finish();
    return {s, std::chrono::duration<double>(Clock::now() - since).count()};
  }
};

bool wait_for(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  const auto end = Clock::now() + timeout;
  while (Clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return cond();
}

// The greedy answer and the coordinator's resources before a fault.
std::pair<StreamResult, Resources> baseline(Service& svc, pb::Inference::Stub& stub) {
  return {generate(stub, greedy_request("The capital of France is", 8)), resources(svc.process().pid())};
}

// After recovery: the same greedy answer, no KV slot held, nothing leaked.
void expect_recovered(Service& svc, pb::Inference::Stub& stub, const StreamResult& before, const Resources& base) {
  ASSERT_TRUE(svc.wait_serving(60s)) << svc.process().log();
  const auto after = generate(stub, greedy_request("The capital of France is", 8));
  ASSERT_TRUE(after.status.ok()) << after.status.error_message();
  EXPECT_EQ(after.ids, before.ids);
  // The slot is freed just after the last message goes out.
  std::string body;
  EXPECT_TRUE(wait_for([&] {
    body = http_get(svc.metrics_url());
    return metric(body, "tandem_kv_slots_in_use") == 0;
  }, 3s)) << body;
  EXPECT_EQ(metric(body, "tandem_pipeline_up"), 1);
  const Resources now = resources(svc.process().pid());
  EXPECT_EQ(now.shm, 0u) << "ring names left in /dev/shm";
  // A reconnecting channel may hold one descriptor more for a moment, and
  // gRPC's pollers come and go with load.
  EXPECT_LE(now.fds, base.fds + 2) << "descriptors before the fault: " << base.fds;
  EXPECT_LE(now.threads, base.threads + 2) << "threads before the fault: " << base.threads;
  std::fprintf(stderr, "coordinator before/after the fault: %zu/%zu fds, %zu/%zu threads\n", base.fds, now.fds,
               base.threads, now.threads);
}

// The request refused while the fault lasts: UNAVAILABLE, saying why.
void expect_refused_saying(pb::Inference::Stub& stub, const std::string& says) {
  const auto r = generate(stub, greedy_request("Hello", 2));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE) << r.status.error_message();
  EXPECT_NE(r.status.error_message().find(says), std::string::npos) << r.status.error_message();
}

// A worker frozen for longer than the ring's peer timeout (1 s), then let go:
// the stream in flight ends UNAVAILABLE, the pipeline comes back with the
// same worker process (no restart needed), and nothing is left over.
TEST(FaultInjection, StalledWorkerPastTheRingTimeoutThenResumed) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  Service svc(model, kSmall);
  auto stub = svc.stub();
  const auto [before, base] = baseline(svc, *stub);
  ASSERT_TRUE(before.status.ok()) << before.status.error_message();
  const int64_t pid = stage_pid(*stub, "cpu");
  ASSERT_GT(pid, 0);

  LongStream stream(*stub);
  ASSERT_EQ(::kill(static_cast<pid_t>(pid), SIGSTOP), 0);
  const auto t_stop = Clock::now();
  const auto [status, after_s] = stream.finish(t_stop);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_NE(status.error_message().find("cpu worker"), std::string::npos) << status.error_message();
  EXPECT_LT(after_s, 3.0);
  EXPECT_TRUE(svc.process().alive());
  EXPECT_EQ(svc.health(), "NOT_SERVING");
  expect_refused_saying(*stub, "cpu worker");
  std::this_thread::sleep_for(2s);  // well past the ring timeout
  ASSERT_EQ(::kill(static_cast<pid_t>(pid), SIGCONT), 0);

  expect_recovered(svc, *stub, before, base);
  EXPECT_EQ(stage_pid(*stub, "cpu"), pid) << "resumed, not replaced";
  const std::string body = http_get(svc.metrics_url());
  EXPECT_EQ(metric(body, "tandem_worker_restarts_total{worker=\"cpu\"}"), 0) << body;
}

// A worker that stays frozen while idle: noticed without any request (its
// control plane is silent), killed after --worker-hang-timeout, restarted.
TEST(FaultInjection, FrozenWorkerIsNoticedIdleAndReplaced) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  std::vector<std::string> args = kSmall;
  args.insert(args.end(), {"--worker-hang-timeout", "3"});
  Service svc(model, args);
  auto stub = svc.stub();
  const auto [before, base] = baseline(svc, *stub);
  ASSERT_TRUE(before.status.ok()) << before.status.error_message();
  const int64_t pid = stage_pid(*stub, "gpu");
  ASSERT_GT(pid, 0);

  ASSERT_EQ(::kill(static_cast<pid_t>(pid), SIGSTOP), 0);
  const auto t_stop = Clock::now();
  ASSERT_TRUE(wait_for([&] { return svc.health() == "NOT_SERVING"; }, 15s)) << svc.process().log();
  const double noticed_s = std::chrono::duration<double>(Clock::now() - t_stop).count();
  EXPECT_LT(noticed_s, 8.0);
  EXPECT_TRUE(svc.process().alive());
  expect_refused_saying(*stub, "gpu worker");

  expect_recovered(svc, *stub, before, base);
  EXPECT_NE(stage_pid(*stub, "gpu"), pid) << "the frozen process was replaced";
  EXPECT_NE(svc.process().log().find("--worker-hang-timeout"), std::string::npos) << svc.process().log();
  const std::string body = http_get(svc.metrics_url());
  EXPECT_EQ(metric(body, "tandem_worker_restarts_total{worker=\"gpu\"}"), 1) << body;
}

// A slot header overwritten while its message waits in the ring between the
// workers: the consumer refuses the slot ("corrupt slot"), the stream ends
// UNAVAILABLE, and fresh rings bring the pipeline back.
TEST(FaultInjection, CorruptSlotHeaderEndsTheStreamAndFreshRingsRecover) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  Service svc(model, kSmall);
  auto stub = svc.stub();
  const auto [before, base] = baseline(svc, *stub);
  ASSERT_TRUE(before.status.ok()) << before.status.error_message();
  // The last stage (the one with the output head) reads the ring "mid".
  std::string last_role;
  {
    grpc::ClientContext ctx;
    pb::ModelInfo info;
    ASSERT_TRUE(stub->GetModelInfo(&ctx, {}, &info).ok());
    for (const auto& st : info.stages())
      if (st.head()) last_role = st.worker();
  }
  const auto consumer = static_cast<pid_t>(stage_pid(*stub, last_role));
  ASSERT_GT(consumer, 0);

  // The ring's names are unlinked once mapped; the consumer's mapping is
  // reachable through /proc/PID/map_files.
  std::string range;
  {
    std::ifstream maps("/proc/" + std::to_string(consumer) + "/maps");
    for (std::string line; std::getline(maps, line);)
      if (line.find("-mid (deleted)") != std::string::npos) range = line.substr(0, line.find(' '));
  }
  ASSERT_FALSE(range.empty()) << "no ring 'mid' in the " << last_role << " worker's mappings";
  const int fd = ::open(("/proc/" + std::to_string(consumer) + "/map_files/" + range).c_str(), O_RDWR);
  if (fd < 0) GTEST_SKIP() << "cannot open /proc/PID/map_files here (" << std::strerror(errno) << ")";
  const size_t bytes = std::stoull(range.substr(range.find('-') + 1), nullptr, 16) - std::stoull(range, nullptr, 16);
  auto* seg = static_cast<uint8_t*>(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  ::close(fd);
  ASSERT_NE(seg, MAP_FAILED);
  // core/shm_ring.cpp: slots u32 @12, stride u64 @16, head u32 @64,
  // tail u32 @128; slot i at 256 + i * stride starts {seq u64, bytes u64}.
  auto u32 = [&](size_t off) { return reinterpret_cast<std::atomic<uint32_t>*>(seg + off)->load(); };
  const uint32_t slots = u32(12);
  uint64_t stride = 0;
  std::memcpy(&stride, seg + 16, 8);

  LongStream stream(*stub);
  // Freeze the consumer while it waits for input, let the producer queue a
  // message behind it, and overwrite that slot's sequence number; the
  // producer will not touch a filled slot, so the damage is there when the
  // consumer resumes. Decode runs one batch at a time, so a freeze while the
  // consumer computes queues nothing: then thaw and try again. Each try
  // stays far inside the 1 s heartbeat timeout.
  bool queued = false;
  auto t_fault = Clock::now();
  for (int attempt = 0; attempt < 50 && !queued; ++attempt) {
    ASSERT_EQ(::kill(consumer, SIGSTOP), 0);
    t_fault = Clock::now();
    queued = wait_for([&] { return u32(64) != u32(128); }, 150ms);
    if (queued) {
      const uint64_t bad = 0xdeadbeefdeadbeefull;
      std::memcpy(seg + 256 + (u32(128) % slots) * stride, &bad, 8);
    }
    ::kill(consumer, SIGCONT);
    if (!queued) std::this_thread::sleep_for(std::chrono::milliseconds(20 + 7 * attempt % 30));
  }
  ASSERT_TRUE(queued) << "the frozen consumer never had a message queued (50 tries); head " << u32(64) << " tail "
                      << u32(128) << " slots " << slots << " stride " << stride << " range " << range;
  ::munmap(seg, bytes);
  const auto [status, after_s] = stream.finish(t_fault);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_LT(after_s, 3.0);
  EXPECT_TRUE(svc.process().alive());
  EXPECT_NE(svc.process().log().find("corrupt slot"), std::string::npos) << svc.process().log();

  expect_recovered(svc, *stub, before, base);
  EXPECT_EQ(stage_pid(*stub, last_role), consumer) << "the worker dropped the rings, it did not die";
}

// Writes `s` to a /proc file (uid_map and friends).
bool write_proc(const std::string& path, const std::string& s) {
  std::ofstream f(path);
  f << s;
  f.close();
  return static_cast<bool>(f);
}

// A private /dev/shm of `size` for this process and its children: a new user
// and mount namespace (this test runs alone in its process, single-threaded
// until here). False when the kernel or a container forbids it.
bool private_dev_shm(const std::string& size, std::string& why) {
  const uid_t uid = ::geteuid();
  const gid_t gid = ::getegid();
  if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
    why = std::string("unshare(CLONE_NEWUSER | CLONE_NEWNS): ") + std::strerror(errno);
    return false;
  }
  if (!write_proc("/proc/self/setgroups", "deny") || !write_proc("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1") ||
      !write_proc("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1")) {
    why = "cannot write the namespace's uid/gid map";
    return false;
  }
  if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
      ::mount("tandem-test-shm", "/dev/shm", "tmpfs", 0, ("size=" + size + ",mode=1777").c_str()) != 0) {
    why = std::string("mounting a tmpfs on /dev/shm: ") + std::strerror(errno);
    return false;
  }
  return true;
}

// /dev/shm full when a worker restart needs fresh rings: the stream in flight
// ends UNAVAILABLE, requests are refused saying the rings cannot be made,
// no half-made ring is left behind, and the service comes back once space
// is freed.
TEST(FaultInjection, FullDevShmRefusesClearlyAndRecoversWhenFreed) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  std::string why;
  if (!private_dev_shm("64m", why)) GTEST_SKIP() << "needs a private /dev/shm: " << why;
  Service svc(model, kSmall);
  auto stub = svc.stub();
  const auto [before, base] = baseline(svc, *stub);
  ASSERT_TRUE(before.status.ok()) << before.status.error_message();

  // Leave 3 MiB: room for the first ring of a new incarnation (2 slots of
  // 512 rows × 576 floats, about 2.4 MB) but not for the second.
  struct statvfs st {};
  ASSERT_EQ(::statvfs("/dev/shm", &st), 0);
  const uint64_t free_bytes = uint64_t(st.f_bavail) * st.f_frsize;
  ASSERT_GT(free_bytes, 8u << 20);
  const std::string filler = "/dev/shm/filler";
  const int fd = ::open(filler.c_str(), O_CREAT | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::posix_fallocate(fd, 0, static_cast<off_t>(free_bytes - (3u << 20))), 0);
  ::close(fd);

  const int64_t pid = stage_pid(*stub, "cpu");
  LongStream stream(*stub);
  ASSERT_EQ(::kill(static_cast<pid_t>(pid), SIGKILL), 0);
  const auto [status, after_s] = stream.finish(Clock::now());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_LT(after_s, 2.0);

  // The restarted worker loads; making the rings fails, again and again.
  ASSERT_TRUE(wait_for([&] { return svc.process().log().find("No space left on device") != std::string::npos; }, 30s))
      << svc.process().log();
  EXPECT_TRUE(svc.process().alive());
  EXPECT_EQ(svc.health(), "NOT_SERVING");
  expect_refused_saying(*stub, "No space left on device");
  std::this_thread::sleep_for(1500ms);  // another failed attempt or two
  EXPECT_EQ(count_entries("/dev/shm", "tandem-"), 0u) << "a ring made before the failing one was left behind";

  ASSERT_EQ(::unlink(filler.c_str()), 0);
  expect_recovered(svc, *stub, before, base);
}

// The model file unreadable by the workers (a volume mounted with the wrong
// owner, as in a pod whose worker containers run as another user): the
// coordinator stays up and says why it cannot serve; chmod brings it back.
// A coordinator that cannot read its own model exits at once, naming it.
TEST(FaultInjection, UnreadableModelAtStartIsNamedAndRecoversOnChmod) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  const std::string dir = ::testing::TempDir() + "tandem-unreadable-" + std::to_string(::getpid());
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read |
                           fs::perms::others_exec);
  const std::string copy = dir + "/model.gguf";
  fs::copy_file(model, copy, fs::copy_options::overwrite_existing);
  // Whoever is denied the file runs under `denied`, the one allowed under
  // `allowed`. Root reads any file: as root the denied side runs in a user
  // namespace in which the copy's owner (another uid) is unmapped, so no
  // override applies. Otherwise the copy is mode 000 and the allowed side
  // is root of a user namespace that maps this user, which overrides it.
  if (!fs::exists("/usr/bin/unshare")) GTEST_SKIP() << "needs /usr/bin/unshare (util-linux)";
  const auto probe = run_command("/usr/bin/unshare --user --map-root-user true");
  if (probe.exit_code != 0) GTEST_SKIP() << "user namespaces are not allowed here: " << probe.err;
  const std::vector<std::string> userns = {"/usr/bin/unshare", "--user", "--map-root-user", "--"};
  std::vector<std::string> denied, allowed;
  if (::geteuid() == 0) {
    ASSERT_EQ(::chown(copy.c_str(), 12345, 12345), 0);
    ASSERT_EQ(::chmod(copy.c_str(), 0600), 0);
    denied = userns;
  } else {
    ASSERT_EQ(::chmod(copy.c_str(), 0), 0);
    allowed = userns;
  }

  {
    // The coordinator itself cannot read it: non-zero exit naming the file.
    std::string cmd;
    for (const auto& a : denied) cmd += a + " ";
    cmd += shell_quote(build_dir() + "/tandem-coordinator") + " -m " + shell_quote(copy) +
           " --listen 127.0.0.1:0 --metrics 127.0.0.1:0";
    const auto r = run_command(cmd);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find(copy), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << r.err;
  }

  // The coordinator reads the copy; the workers cannot.
  AttachedWorkers workers("unreadable", denied);
  std::vector<std::string> args = workers.coordinator_args();
  args.insert(args.end(), {"--gpu-layers", "10", "-c", "1024", "--max-sequences", "2"});
  Service svc(copy, args, /*wait_for_serving=*/false, allowed);
  auto stub = svc.stub();
  ASSERT_TRUE(wait_for([&] { return svc.process().log().find("Permission denied") != std::string::npos; }, 30s))
      << svc.process().log();
  EXPECT_TRUE(svc.process().alive());
  EXPECT_EQ(svc.health(), "NOT_SERVING");
  expect_refused_saying(*stub, "Permission denied");

  ASSERT_EQ(::chmod(copy.c_str(), 0644), 0);
  ASSERT_TRUE(svc.wait_serving(60s)) << svc.process().log();
  const auto r = generate(*stub, greedy_request("The capital of France is", 8));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.ids, reference_ids(model, "The capital of France is", 8, 1024));
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
}  // namespace tandem::test
