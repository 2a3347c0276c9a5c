// Many streams at once: each gets exactly its single-request greedy output
// (a request's tokens never depend on what else is running); cancellation
// frees the slot within a step; the queue limit answers RESOURCE_EXHAUSTED.
#include <gtest/gtest.h>

#include <thread>

#include "tests/integration/service_harness.h"
#include "tests/unit/test_support.h"

namespace tandem::test {
namespace {

namespace pb = tandem::v1;
using namespace std::chrono_literals;

const std::vector<std::string> kPrompts = {
    "The capital of France is",        "Write a haiku about the sea:",   "def fibonacci(n):",
    "Water boils at",                  "List three fruits: apple,",      "In 1969, astronauts",
    "The quick brown fox",             "My favourite programming language is"};

TEST(Concurrency, EightStreamsEachGetTheirSingleRequestOutput) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  // A small batch budget forces prompts to be split across steps and mixed
  // with other requests' decode rows.
  Service svc(model, {"--gpu-layers", "10", "-c", "256", "--max-sequences", "8", "--max-batch-tokens", "12"});
  constexpr int kTokens = 16;
  std::vector<std::vector<int32_t>> alone(kPrompts.size());
  {
    auto stub = svc.stub();
    for (size_t i = 0; i < kPrompts.size(); ++i) {
      auto r = generate(*stub, greedy_request(kPrompts[i], kTokens));
      ASSERT_TRUE(r.status.ok()) << r.status.error_message();
      alone[i] = r.ids;
    }
  }
  std::vector<StreamResult> together(kPrompts.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < kPrompts.size(); ++i)
    clients.emplace_back([&, i] {
      auto stub = svc.stub();
      together[i] = generate(*stub, greedy_request(kPrompts[i], kTokens));
    });
  for (auto& t : clients) t.join();
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    SCOPED_TRACE(kPrompts[i]);
    ASSERT_TRUE(together[i].status.ok()) << together[i].status.error_message();
    EXPECT_EQ(together[i].ids, alone[i]);
  }
  // The steps really mixed requests: some batch carried more than one row.
  const std::string body = http_get(svc.metrics_url());
  const auto le1 = metric(body, "tandem_batch_rows_bucket{le=\"1\"}").value_or(0);
  const auto all = metric(body, "tandem_batch_rows_count").value_or(0);
  EXPECT_GT(all, le1) << body;
}

TEST(Concurrency, CancelStopsWithinAStepAndFreesTheSlot) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  Service svc(model, {"--gpu-layers", "10", "-c", "1024", "--max-sequences", "2"});
  auto stub = svc.stub();
  auto req = greedy_request("Tell me a long story about a dragon.", 900);
  req.mutable_options()->set_ignore_eos(true);
  grpc::ClientContext ctx;
  auto reader = stub->Generate(&ctx, req);
  pb::GenerateResponse msg;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(reader->Read(&msg));
  EXPECT_EQ(metric(http_get(svc.metrics_url()), "tandem_kv_slots_in_use"), 1);
  ctx.TryCancel();
  while (reader->Read(&msg)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  std::string body;
  for (int i = 0; i < 100; ++i) {
    body = http_get(svc.metrics_url());
    if (metric(body, "tandem_kv_slots_in_use") == 0) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(metric(body, "tandem_kv_slots_in_use"), 0) << body;
  EXPECT_EQ(metric(body, "tandem_requests_total{outcome=\"cancelled\"}"), 1) << body;
  // Nothing is generated for it any more.
  const auto generated = metric(body, "tandem_generated_tokens_total").value_or(-1);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(metric(http_get(svc.metrics_url()), "tandem_generated_tokens_total"), generated);
  EXPECT_LT(generated, 900);
}

TEST(Concurrency, BeyondTheQueueLimitIsResourceExhausted) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  Service svc(model, {"--gpu-layers", "10", "-c", "1024", "--max-sequences", "1", "--max-queue", "1"});
  auto long_req = greedy_request("Count from one to one thousand:", 900);
  long_req.mutable_options()->set_ignore_eos(true);
  auto stub = svc.stub();
  grpc::ClientContext running_ctx, queued_ctx;
  auto running = stub->Generate(&running_ctx, long_req);
  pb::GenerateResponse msg;
  ASSERT_TRUE(running->Read(&msg));  // holds the only slot
  auto queued = stub->Generate(&queued_ctx, long_req);
  std::string body;
  for (int i = 0; i < 200; ++i) {
    body = http_get(svc.metrics_url());
    if (metric(body, "tandem_requests_waiting") == 1) break;
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(metric(body, "tandem_requests_waiting"), 1) << body;
  auto third = generate(*stub, greedy_request("Hello", 2));
  EXPECT_EQ(third.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << third.status.error_message();
  EXPECT_NE(third.status.error_message().find("queue"), std::string::npos);
  running_ctx.TryCancel();
  queued_ctx.TryCancel();
  while (running->Read(&msg)) {
  }
  while (queued->Read(&msg)) {
  }
  (void)running->Finish();
  (void)queued->Finish();
}

}  // namespace
}  // namespace tandem::test
