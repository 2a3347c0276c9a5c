// A short soak through `tandem client bench`: more concurrent streams than KV
// slots (so requests queue), a quarter of them cancelled part-way, every
// stream checked against the prompt's greedy output run alone; afterwards
// the coordinator's counters add up and nothing is left holding a slot.
#include <gtest/gtest.h>
#include <stdio.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "tests/integration/service_harness.h"
#include "tests/unit/test_support.h"

namespace tandem::test {
namespace {

double sum_series(const std::string& body, const std::string& name) {
  double total = 0;
  size_t pos = 0;
  while ((pos = body.find("\n" + name, pos)) != std::string::npos) {
    const size_t eol = body.find('\n', pos + 1);
    const std::string line = body.substr(pos + 1, eol - pos - 1);
    const char next = line.size() > name.size() ? line[name.size()] : ' ';
    if (next == '{' || next == ' ') total += std::stod(line.substr(line.rfind(' ') + 1));
    pos = eol;
  }
  return total;
}

TEST(LoadSoak, ConcurrentStreamsWithCancelsLoseNoTokenAndCountersAddUp) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  Service svc(model, {"--gpu-layers", "10", "-c", "1024", "--max-sequences", "4"});
  const std::string cmd = build_dir() + "/tandem client bench --addr " + svc.addr() +
                          " -c 6 -d 8 --min-tokens 4 --max-tokens 24 --cancel-rate 0.25 --verify --json";
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = ::pclose(p);
  ASSERT_TRUE(WIFEXITED(st)) << out;
  EXPECT_EQ(WEXITSTATUS(st), 0) << out;
  const auto j = nlohmann::json::parse(out);
  const int requests = j["requests"].get<int>();
  EXPECT_GE(requests, 6) << out;
  EXPECT_GT(j["outcomes"].value("ok", 0), 0) << out;
  EXPECT_EQ(j["verify"]["mismatches"].get<int>(), 0) << out;
  EXPECT_EQ(j["verify"]["checked"].get<int>(), requests) << out;

  // Requests in = requests out: the bench's load plus its reference run of
  // each built-in prompt, every one finished with some outcome.
  const int references = 8;
  std::string body;
  for (int i = 0; i < 100; ++i) {  // a cancelled stream's outcome is counted when the server notices
    body = http_get(svc.metrics_url());
    if (sum_series(body, "tandem_requests_total") >= requests + references) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(sum_series(body, "tandem_requests_total"), requests + references) << body;
  EXPECT_EQ(metric(body, "tandem_requests_running"), 0) << body;
  EXPECT_EQ(metric(body, "tandem_requests_waiting"), 0) << body;
  EXPECT_EQ(metric(body, "tandem_kv_slots_in_use"), 0) << body;
  EXPECT_EQ(svc.health(), "SERVING");
}

}  // namespace
}  // namespace tandem::test
