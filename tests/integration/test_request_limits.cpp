// The server's request limits: each refusal names the field, the limit and
// its flag (INVALID_ARGUMENT), an oversized message is RESOURCE_EXHAUSTED,
// and a request within them still runs.
#include <gtest/gtest.h>

#include "tests/integration/service_harness.h"
#include "tests/unit/test_support.h"

namespace tandem::test {
namespace {

void expect_refused(const StreamResult& r, grpc::StatusCode code, const std::string& says) {
  EXPECT_EQ(r.status.error_code(), code) << r.status.error_message();
  EXPECT_NE(r.status.error_message().find(says), std::string::npos) << r.status.error_message();
}

TEST(RequestLimits, RefusedByNameAndTheServiceKeepsServing) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  Service svc(model, {"--gpu-layers", "10", "-c", "256", "--max-prompt-tokens", "16", "--max-new-tokens", "8",
                      "--max-stop-strings", "2", "--max-message-bytes", "65536"});
  auto stub = svc.stub();

  std::string long_prompt;
  for (int i = 0; i < 40; ++i) long_prompt.append("word ");
  expect_refused(generate(*stub, greedy_request(long_prompt, 4)), grpc::StatusCode::INVALID_ARGUMENT,
                 "--max-prompt-tokens");
  expect_refused(generate(*stub, greedy_request("Hello", 9)), grpc::StatusCode::INVALID_ARGUMENT,
                 "options.max_tokens 9 is above this server's limit of 8");
  auto stops = greedy_request("Hello", 4);
  for (const char* s : {"a", "b", "c"}) stops.mutable_options()->add_stop(s);
  expect_refused(generate(*stub, stops), grpc::StatusCode::INVALID_ARGUMENT, "options.stop has 3 strings; at most 2");
  auto long_stop = greedy_request("Hello", 4);
  long_stop.mutable_options()->add_stop(std::string(300, 'x'));
  expect_refused(generate(*stub, long_stop), grpc::StatusCode::INVALID_ARGUMENT, "options.stop[0] is 300 bytes");
  // Bigger than --max-message-bytes: gRPC refuses it before our handler runs.
  expect_refused(generate(*stub, greedy_request(std::string(100000, 'a'), 4)), grpc::StatusCode::RESOURCE_EXHAUSTED,
                 "");

  // Within the limits; -1 ("until the context is full") is capped to 8.
  auto ok = greedy_request("The capital of France is", -1);
  ok.mutable_options()->set_ignore_eos(true);
  const auto r = generate(*stub, ok);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.ids.size(), 8u);
  // Unset (0) means "the default": 128 capped to the limit, not a refusal.
  auto unset = greedy_request("The capital of France is", 0);
  unset.mutable_options()->set_ignore_eos(true);
  const auto d = generate(*stub, unset);
  ASSERT_TRUE(d.status.ok()) << d.status.error_message();
  EXPECT_EQ(d.ids.size(), 8u);
  EXPECT_EQ(svc.health(), "SERVING");
}

}  // namespace
}  // namespace tandem::test
