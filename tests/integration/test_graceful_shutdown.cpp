// SIGTERM drains: the coordinator stops taking calls (UNAVAILABLE) but lets
// the streams in flight run to their end, then exits 0 — what a Kubernetes
// rolling restart or `systemctl stop` asks of it.
#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include "tests/integration/service_harness.h"
#include "tests/unit/test_support.h"

namespace tandem::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(GracefulShutdown, SigtermLetsStreamsInFlightFinishAndRefusesNewCalls) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  Service svc(model, {"--gpu-layers", "10", "-c", "512", "--drain-timeout", "60"});
  auto stub = svc.stub();
  // Long enough to outlast the 2 s the coordinator used to give streams.
  auto req = greedy_request("Once upon a time", 160);
  req.mutable_options()->set_ignore_eos(true);
  const auto reference = generate(*stub, req);
  ASSERT_TRUE(reference.status.ok()) << reference.status.error_message();
  ASSERT_EQ(reference.ids.size(), 160u);

  StreamResult during;
  const auto t0 = Clock::now();
  std::thread client([&] { during = generate(*stub, req); });
  std::this_thread::sleep_for(300ms);  // the stream is admitted and decoding
  ASSERT_EQ(::kill(svc.process().pid(), SIGTERM), 0);
  std::this_thread::sleep_for(300ms);
  // A new connection after SIGTERM: refused, not queued.
  auto fresh = grpc::CreateChannel(svc.addr(), grpc::InsecureChannelCredentials());
  const auto refused = generate(*tandem::v1::Inference::NewStub(fresh), greedy_request("Hi", 4), 5s);
  client.join();
  const double stream_s = std::chrono::duration<double>(Clock::now() - t0).count();

  EXPECT_TRUE(during.status.ok()) << during.status.error_message();
  EXPECT_EQ(during.ids, reference.ids) << "the drained stream lost or changed tokens";
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.status.error_message();
  EXPECT_GT(stream_s, 0.6);
  const double exit_s = svc.process().terminate(30s);  // already exiting: this only waits
  EXPECT_GE(exit_s, 0) << "the coordinator did not exit after draining\n" << svc.process().log();
}

}  // namespace
}  // namespace tandem::test
