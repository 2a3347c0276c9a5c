// SIGTERM drains: the coordinator stops taking calls (UNAVAILABLE) but lets
// the streams in flight run to their end, then exits 0 — what a Kubernetes
// rolling restart or `systemctl stop` asks of it.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <thread>

#include "tests/integration/service_harness.h"
#include "tests/unit/test_support.h"

namespace tandem::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Tokens enough for a stream of about `seconds` at the speed this machine
// just showed, so that it outlasts the 2 s the coordinator once gave streams.
int tokens_for(tandem::v1::Inference::Stub& stub, double seconds) {
  auto probe = greedy_request("Once upon a time", 48);
  probe.mutable_options()->set_ignore_eos(true);
  const auto t0 = Clock::now();
  const auto r = generate(stub, probe);
  const double tps = 48 / std::chrono::duration<double>(Clock::now() - t0).count();
  return r.status.ok() ? std::clamp(static_cast<int>(tps * seconds), 96, 1500) : 160;
}

// A greedy request of about 5 s here (ignore_eos: exactly that many tokens).
tandem::v1::GenerateRequest long_request(tandem::v1::Inference::Stub& stub) {
  auto req = greedy_request("Once upon a time", tokens_for(stub, 5.0));
  req.mutable_options()->set_ignore_eos(true);
  return req;
}

TEST(GracefulShutdown, SigtermLetsStreamsInFlightFinishAndRefusesNewCalls) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  Service svc(model, {"--gpu-layers", "10", "-c", "2048", "--drain-timeout", "60"});
  auto stub = svc.stub();
  const auto req = long_request(*stub);
  const auto reference = generate(*stub, req);
  ASSERT_TRUE(reference.status.ok()) << reference.status.error_message();

  StreamResult during;
  Clock::time_point stream_end;
  std::thread client([&] {
    during = generate(*stub, req);
    stream_end = Clock::now();
  });
  std::this_thread::sleep_for(500ms);  // admitted and decoding
  ASSERT_EQ(::kill(svc.process().pid(), SIGTERM), 0);
  const auto killed = Clock::now();
  // The coordinator has begun to drain once its health stops saying SERVING.
  for (int i = 0; i < 200 && svc.health() == "SERVING"; ++i) std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(100ms);
  // A new connection after SIGTERM: refused, not queued.
  auto fresh = grpc::CreateChannel(svc.addr(), grpc::InsecureChannelCredentials());
  const auto refused = generate(*tandem::v1::Inference::NewStub(fresh), greedy_request("Hi", 4), 5s);
  client.join();

  EXPECT_TRUE(during.status.ok()) << during.status.error_message();
  EXPECT_EQ(during.ids, reference.ids) << "the drained stream lost or changed tokens";
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.status.error_message();
  // The stream really was in flight at SIGTERM and outlived the old 2 s.
  EXPECT_GT(std::chrono::duration<double>(stream_end - killed).count(), 2.0);
  const double exit_s = svc.process().terminate(30s);  // already exiting: this only waits
  EXPECT_GE(exit_s, 0) << "the coordinator did not exit after draining\n" << svc.process().log();
}

// Kubernetes stops a pod by sending SIGTERM to all its containers at once:
// the workers must keep serving the coordinator's drain, then exit.
TEST(GracefulShutdown, PodWideSigtermInAttachModeStillFinishesTheStream) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  AttachedWorkers workers("drain");
  std::vector<std::string> args = {"--gpu-layers", "10", "-c", "2048", "--drain-timeout", "60"};
  for (const auto& a : workers.coordinator_args()) args.push_back(a);
  Service svc(model, args);
  auto stub = svc.stub();
  const auto req = long_request(*stub);
  const auto reference = generate(*stub, req);
  ASSERT_TRUE(reference.status.ok()) << reference.status.error_message();

  StreamResult during;
  std::thread client([&] { during = generate(*stub, req); });
  std::this_thread::sleep_for(500ms);
  Process& gpu = workers.worker("gpu");
  Process& cpu = workers.worker("cpu");
  for (pid_t p : {svc.process().pid(), gpu.pid(), cpu.pid()}) ::kill(p, SIGTERM);
  client.join();
  EXPECT_TRUE(during.status.ok()) << during.status.error_message() << "\n" << cpu.log();
  EXPECT_EQ(during.ids, reference.ids);
  // All three leave on their own once the coordinator is gone (no SIGKILL).
  EXPECT_GE(svc.process().terminate(30s), 0);
  EXPECT_GE(gpu.terminate(30s), 0) << gpu.log();
  EXPECT_GE(cpu.terminate(30s), 0) << cpu.log();
}

}  // namespace
}  // namespace tandem::test
