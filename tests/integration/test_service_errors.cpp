// Bad requests get the right gRPC status and a message naming the field;
// reflection and health answer; logprobs are consistent.
#include <gtest/gtest.h>

#include <thread>

#include "tests/integration/service_harness.h"
#include "tests/unit/test_support.h"

namespace tandem::test {
namespace {

namespace pb = tandem::v1;
using namespace std::chrono_literals;

class ServiceErrors : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string model = model_path_or_empty();
    if (model.empty()) return;
    svc_ = new Service(model, {"--gpu-layers", "10", "-c", "64", "--max-sequences", "2"});
  }
  static void TearDownTestSuite() {
    delete svc_;
    svc_ = nullptr;
  }
  void SetUp() override {
    if (!svc_) {
      if (model_required()) FAIL() << "default model missing: run `make model` first";
      GTEST_SKIP() << "default model not in the cache (run `make model`)";
    }
  }
  static void expect_invalid(const StreamResult& r, const std::string& field) {
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << r.status.error_message();
    EXPECT_NE(r.status.error_message().find(field), std::string::npos) << r.status.error_message();
  }
  static Service* svc_;
};
Service* ServiceErrors::svc_ = nullptr;

TEST_F(ServiceErrors, EmptyPrompt) {
  auto stub = svc_->stub();
  expect_invalid(generate(*stub, greedy_request("", 4)), "prompt");
}

TEST_F(ServiceErrors, PromptLongerThanTheContext) {
  auto stub = svc_->stub();
  std::string long_prompt;
  for (int i = 0; i < 100; ++i) long_prompt += "word ";
  expect_invalid(generate(*stub, greedy_request(long_prompt, 4)), "context");
}

TEST_F(ServiceErrors, BadOptionsNameTheField) {
  auto stub = svc_->stub();
  auto req = greedy_request("Hello", 4);
  req.mutable_options()->set_max_tokens(-5);
  expect_invalid(generate(*stub, req), "options.max_tokens");
  req = greedy_request("Hello", 4);
  req.mutable_options()->mutable_sampling()->set_top_p(2.0f);
  expect_invalid(generate(*stub, req), "options.sampling");
  req = greedy_request("Hello", 4);
  req.mutable_options()->set_logprobs(50);
  expect_invalid(generate(*stub, req), "options.logprobs");
  req = greedy_request("Hello", 4);
  req.mutable_options()->add_stop("");
  expect_invalid(generate(*stub, req), "options.stop[0]");
}

TEST_F(ServiceErrors, ChatRequestsNameTheField) {
  auto stub = svc_->stub();
  auto chat = [&](const pb::ChatRequest& req) {
    StreamResult r;
    grpc::ClientContext ctx;
    auto reader = stub->Chat(&ctx, req);
    pb::GenerateResponse msg;
    while (reader->Read(&msg)) {
      for (const auto& t : msg.tokens()) r.ids.push_back(t.token_id());
    }
    r.status = reader->Finish();
    return r;
  };
  pb::ChatRequest req;
  expect_invalid(chat(req), "messages");
  auto* m = req.add_messages();
  m->set_role("robot");
  m->set_content("hi");
  expect_invalid(chat(req), "messages[0].role");
  m->set_role("user");
  req.set_chat_template("nope");
  expect_invalid(chat(req), "chat_template");
  req.set_chat_template("");
  req.mutable_options()->set_max_tokens(3);
  auto ok = chat(req);
  EXPECT_TRUE(ok.status.ok()) << ok.status.error_message();
}

TEST_F(ServiceErrors, DetokenizeOutOfVocabulary) {
  auto stub = svc_->stub();
  pb::DetokenizeRequest req;
  req.add_ids(1);
  req.add_ids(10'000'000);
  pb::DetokenizeResponse resp;
  grpc::ClientContext ctx;
  auto s = stub->Detokenize(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("ids[1]"), std::string::npos) << s.error_message();
}

TEST_F(ServiceErrors, TokenizeRoundTrip) {
  auto stub = svc_->stub();
  pb::TokenizeRequest req;
  req.set_text("Hello world");
  pb::TokenizeResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub->Tokenize(&ctx, req, &resp).ok());
  ASSERT_GT(resp.ids_size(), 0);
  pb::DetokenizeRequest d;
  *d.mutable_ids() = resp.ids();
  pb::DetokenizeResponse text;
  grpc::ClientContext ctx2;
  ASSERT_TRUE(stub->Detokenize(&ctx2, d, &text).ok());
  EXPECT_EQ(text.text(), "Hello world");
}

TEST_F(ServiceErrors, DeadlineExceeded) {
  auto stub = svc_->stub();
  auto req = greedy_request("Once upon a time", 40);
  req.mutable_options()->set_ignore_eos(true);
  auto r = generate(*stub, req, 150ms);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << r.status.error_message();
  // The server saw it too: the request ends as deadline_exceeded and frees its slot.
  std::string body;
  for (int i = 0; i < 100; ++i) {
    body = http_get(svc_->metrics_url());
    if (metric(body, "tandem_requests_total{outcome=\"deadline_exceeded\"}").value_or(0) >= 1 &&
        metric(body, "tandem_kv_slots_in_use") == 0)
      break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_GE(metric(body, "tandem_requests_total{outcome=\"deadline_exceeded\"}").value_or(0), 1) << body;
  EXPECT_EQ(metric(body, "tandem_kv_slots_in_use"), 0) << body;
}

TEST_F(ServiceErrors, LogprobsAreConsistent) {
  auto stub = svc_->stub();
  auto req = greedy_request("The sky is", 5);
  req.mutable_options()->set_logprobs(3);
  auto r = generate(*stub, req);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_EQ(r.tokens.size(), 5u);
  for (const auto& t : r.tokens) {
    ASSERT_TRUE(t.has_chosen());
    ASSERT_EQ(t.top_size(), 3);
    EXPECT_LE(t.chosen().logprob(), 0.0f);
    EXPECT_GE(t.top(0).logprob(), t.top(1).logprob());
    EXPECT_GE(t.top(1).logprob(), t.top(2).logprob());
    // Greedy picks the best alternative, with the same log-probability.
    EXPECT_EQ(t.top(0).token_id(), t.token_id());
    EXPECT_NEAR(t.top(0).logprob(), t.chosen().logprob(), 1e-4);
  }
}

TEST_F(ServiceErrors, ReflectionListsServicesAndHealthAnswers) {
  auto run = [](const std::string& args) { return run_command(build_dir() + "/tandem client " + args); };
  auto list = run("services --addr " + svc_->addr());
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find("tandem.v1.Inference"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("grpc.health.v1.Health"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("grpc.reflection.v1alpha.ServerReflection"), std::string::npos) << list.out;
  auto health = run("health --addr " + svc_->addr());
  EXPECT_EQ(health.exit_code, 0) << health.err;
  EXPECT_EQ(health.out, "SERVING\n");
  auto inference = run("health --service tandem.v1.Inference --addr " + svc_->addr());
  EXPECT_EQ(inference.out, "SERVING\n");
  auto gen = run("generate --json --temp 0 -n 3 --addr " + svc_->addr() + " Hello");
  EXPECT_EQ(gen.exit_code, 0) << gen.err;
  EXPECT_NE(gen.out.find("\"generated_tokens\":3"), std::string::npos) << gen.out;
}

}  // namespace
}  // namespace tandem::test
