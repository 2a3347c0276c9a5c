// kill -9 of either worker mid-stream: the stream ends with UNAVAILABLE
// within 2 s, the coordinator stays up and reports NOT_SERVING, the
// supervisor restarts the worker, and new requests succeed again.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <thread>

#include "tests/integration/service_harness.h"
#include "tests/unit/test_support.h"

namespace tandem::test {
namespace {

namespace pb = tandem::v1;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class WorkerKill : public ::testing::TestWithParam<const char*> {};

TEST_P(WorkerKill, StreamEndsUnavailableAndTheSupervisorRestartsIt) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  const std::string victim = GetParam();
  Service svc(model, {"--gpu-layers", "10", "-c", "1024", "--max-sequences", "2"});
  auto stub = svc.stub();
  const auto before = generate(*stub, greedy_request("The capital of France is", 8));
  ASSERT_TRUE(before.status.ok());

  int64_t pid = 0;
  {
    grpc::ClientContext ctx;
    pb::ModelInfo info;
    ASSERT_TRUE(stub->GetModelInfo(&ctx, {}, &info).ok());
    for (const auto& s : info.stages())
      if (s.worker() == victim) pid = s.pid();
  }
  ASSERT_GT(pid, 0);

  auto req = greedy_request("Tell me a long story about a dragon.", 900);
  req.mutable_options()->set_ignore_eos(true);
  grpc::ClientContext ctx;
  auto reader = stub->Generate(&ctx, req);
  pb::GenerateResponse msg;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(reader->Read(&msg));
  ASSERT_EQ(::kill(static_cast<pid_t>(pid), SIGKILL), 0);
  const auto t_kill = Clock::now();
  while (reader->Read(&msg)) {
  }
  const grpc::Status s = reader->Finish();
  const double ended_after = std::chrono::duration<double>(Clock::now() - t_kill).count();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_LT(ended_after, 2.0);
  // The coordinator is still there and says it cannot serve (the restart
  // backs off 0.5 s first).
  EXPECT_TRUE(svc.process().alive());
  EXPECT_EQ(svc.health(), "NOT_SERVING");
  auto during = generate(*stub, greedy_request("Hello", 2));
  EXPECT_EQ(during.status.error_code(), grpc::StatusCode::UNAVAILABLE) << during.status.error_message();

  ASSERT_TRUE(svc.wait_serving(30s)) << svc.process().log();
  const auto after = generate(*stub, greedy_request("The capital of France is", 8));
  ASSERT_TRUE(after.status.ok()) << after.status.error_message();
  EXPECT_EQ(after.ids, before.ids);
  {
    grpc::ClientContext ictx;
    pb::ModelInfo info;
    ASSERT_TRUE(stub->GetModelInfo(&ictx, {}, &info).ok());
    for (const auto& st : info.stages()) {
      EXPECT_TRUE(st.up());
      if (st.worker() == victim) {
        EXPECT_NE(st.pid(), pid);
      }
    }
  }
  const std::string body = http_get(svc.metrics_url());
  EXPECT_EQ(metric(body, "tandem_worker_restarts_total{worker=\"" + victim + "\"}"), 1) << body;
  EXPECT_GE(metric(body, "tandem_requests_total{outcome=\"unavailable\"}").value_or(0), 1) << body;
  EXPECT_EQ(metric(body, "tandem_pipeline_up"), 1);
}

INSTANTIATE_TEST_SUITE_P(Workers, WorkerKill, ::testing::Values("gpu", "cpu"),
                         [](const auto& info) { return std::string(info.param); });

// Attach mode: workers started on their own (one container each in a pod).
TEST(AttachMode, CoordinatorDrivesWorkersStartedSeparately) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  AttachedWorkers workers("attach");
  const auto expected = reference_ids(model, "The capital of France is", 8, 256);
  std::vector<std::string> args = {"--gpu-layers", "10", "-c", "256"};
  for (const auto& a : workers.coordinator_args()) args.push_back(a);
  Service svc(model, args);
  auto stub = svc.stub();
  auto r = generate(*stub, greedy_request("The capital of France is", 8));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.ids, expected);
  // What Kubernetes' gRPC probes ask: each worker is ready ("" and
  // tandem.v1.Worker) once loaded and connected, and alive ("liveness").
  auto worker_health = [&](const std::string& role, const std::string& service) {
    return health_status(grpc::CreateChannel(workers.address(role), grpc::InsecureChannelCredentials()), service);
  };
  for (const std::string role : {"gpu", "cpu"}) {
    // Readiness is published by a 100 ms poll: give it a moment.
    for (int i = 0; i < 50 && worker_health(role, "") != "SERVING"; ++i) std::this_thread::sleep_for(20ms);
    EXPECT_EQ(worker_health(role, ""), "SERVING") << role;
    EXPECT_EQ(worker_health(role, "tandem.v1.Worker"), "SERVING") << role;
    EXPECT_EQ(worker_health(role, "liveness"), "SERVING") << role;
  }
  // A worker that dies is noticed (control plane probe) and, once an
  // orchestrator restarts it at the same address, the pipeline comes back.
  ::kill(workers.worker("cpu").pid(), SIGKILL);
  bool down = false;
  for (int i = 0; i < 100 && !down; ++i) {
    down = svc.health() == "NOT_SERVING";
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(down);
  // Down is not dead: the coordinator stays live, so a liveness probe does
  // not restart it while a worker comes back.
  EXPECT_EQ(svc.health("tandem.v1.Inference"), "NOT_SERVING");
  EXPECT_EQ(svc.health("liveness"), "SERVING");
  workers.restart("cpu");
  ASSERT_TRUE(svc.wait_serving(30s)) << svc.process().log();
  auto again = generate(*stub, greedy_request("The capital of France is", 8));
  ASSERT_TRUE(again.status.ok()) << again.status.error_message();
  EXPECT_EQ(again.ids, expected);
  // Attach mode counts the restart it found (a new incarnation), not one of its own.
  const std::string body = http_get(svc.metrics_url());
  EXPECT_EQ(metric(body, "tandem_worker_restarts_total{worker=\"cpu\"}"), 1) << body;
  EXPECT_EQ(metric(body, "tandem_worker_restarts_total{worker=\"gpu\"}"), 0) << body;
  // The model a dashboard selects by: the file's name and llama.cpp's file type.
  const std::string file = std::filesystem::path(model).filename().string();
  std::string series = "tandem_model_info{file=\"";
  series.append(file).append("\",model=\"").append(file.substr(0, file.size() - 5)).append("\",quant=\"Q4_1\"}");
  EXPECT_EQ(metric(body, series), 1) << body;
  svc.process().terminate();
}

}  // namespace
}  // namespace tandem::test
