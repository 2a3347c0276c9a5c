// Greedy tokens through the three-process pipeline equal the single-process
// engine's, whatever the split; the workers touch only their own layers.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/gguf_file.h"
#include "cpu_worker/cpu_stage.h"
#include "tests/integration/service_harness.h"
#include "tests/unit/test_support.h"

namespace tandem::test {
namespace {

const char* kPrompt = "The three primary colors are";
constexpr int kTokens = 24;
constexpr int kCtx = 512;

struct Split {
  int gpu_layers;
  const char* head;
  const char* wire;
};

class PipelineGreedy : public ::testing::TestWithParam<Split> {};

TEST_P(PipelineGreedy, MatchesSingleProcessEngine) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  const Split s = GetParam();
  const auto expected = reference_ids(model, kPrompt, kTokens, kCtx);
  ASSERT_EQ(expected.size(), static_cast<size_t>(kTokens));
  Service svc(model, {"--gpu-layers", std::to_string(s.gpu_layers), "--head", s.head, "--wire-type", s.wire, "-c",
                      std::to_string(kCtx), "--max-sequences", "2"});
  auto stub = svc.stub();
  auto r = generate(*stub, greedy_request(kPrompt, kTokens));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message() << "\n" << svc.process().log();
  EXPECT_EQ(r.ids, expected) << svc.process().log();
  EXPECT_EQ(r.final_info.generated_tokens(), kTokens);
  EXPECT_EQ(r.final_info.finish_reason(), tandem::v1::FINISH_REASON_LENGTH);
  EXPECT_GT(r.final_info.timings().decode_tokens_per_second(), 0);
}

INSTANTIATE_TEST_SUITE_P(Splits, PipelineGreedy,
                         ::testing::Values(Split{0, "gpu", "f32"}, Split{10, "gpu", "f32"}, Split{30, "gpu", "f32"},
                                           Split{10, "cpu", "f32"}),
                         [](const auto& info) {
                           return "gpu" + std::to_string(info.param.gpu_layers) + "_head_" + info.param.head;
                         });

// f16 on the wire rounds the hidden rows between stages: the text may drift
// from the f32 run late, but the pipeline must run and agree at the start.
TEST(PipelineWire, F16RunsAndAgreesOnTheFirstTokens) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  const auto expected = reference_ids(model, kPrompt, 4, kCtx);
  Service svc(model, {"--gpu-layers", "10", "--wire-type", "f16", "-c", std::to_string(kCtx)});
  auto stub = svc.stub();
  auto r = generate(*stub, greedy_request(kPrompt, 4));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_EQ(r.ids.size(), 4u);
  EXPECT_EQ(r.ids[0], expected[0]);
}

// Each worker maps the whole GGUF but faults in only its shard's tensors.
TEST(PipelineMemory, WorkersTouchOnlyTheirLayers) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  Service svc(model, {"--gpu-layers", "10", "-c", "256"});
  auto stub = svc.stub();
  ASSERT_TRUE(generate(*stub, greedy_request(kPrompt, 4)).status.ok());
  grpc::ClientContext ctx;
  tandem::v1::ModelInfo info;
  ASSERT_TRUE(stub->GetModelInfo(&ctx, {}, &info).ok());
  ASSERT_EQ(info.stages_size(), 2);
  auto file = core::gguf::File::open(model);
  for (const auto& st : info.stages()) {
    SCOPED_TRACE(st.worker());
    const uint64_t shard = cpu::shard_weight_bytes(*file, {st.layer_begin(), st.layer_end(), false, st.head()});
    // Resident pages of the mapping: the shard plus the header and fault-around slack.
    EXPECT_GE(st.weight_bytes(), shard * 9 / 10);
    EXPECT_LE(st.weight_bytes(), shard + (4u << 20));
    EXPECT_LT(st.weight_bytes(), file->file_size() * 8 / 10);
    EXPECT_TRUE(st.up());
    EXPECT_GT(st.pid(), 0);
    // Every worker serves its own /metrics.
    const std::string body = http_get(st.metrics_url());
    EXPECT_TRUE(metric(body, "tandem_worker_tokens_total{worker=\"" + st.worker() + "\"}").value_or(0) > 0) << body;
    EXPECT_EQ(metric(body, "tandem_worker_layer_range{worker=\"" + st.worker() + "\",bound=\"end\"}"), st.layer_end());
  }
}

TEST(PipelineShm, NoRingNamesLeftBehind) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  auto names_of = [](pid_t pid) {
    std::vector<std::string> v;
    const std::string prefix = "tandem-" + std::to_string(pid) + "-";
    for (const auto& e : std::filesystem::directory_iterator("/dev/shm"))
      if (e.path().filename().string().rfind(prefix, 0) == 0) v.push_back(e.path().filename().string());
    return v;
  };
  pid_t pid;
  {
    Service svc(model, {"--gpu-layers", "10", "-c", "256"});
    pid = svc.process().pid();
    auto stub = svc.stub();
    ASSERT_TRUE(generate(*stub, greedy_request(kPrompt, 2)).status.ok());
    // Unlinked as soon as both workers mapped them.
    EXPECT_TRUE(names_of(pid).empty());
    EXPECT_GE(svc.process().terminate(), 0) << "coordinator did not exit on SIGTERM";
  }
  EXPECT_TRUE(names_of(pid).empty());
}

// --mlock and --huge-pages reach the workers the coordinator starts, and each
// worker reports what took in its memory gauge.
TEST(PipelineResidency, WorkersReportLockedWeights) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  Service svc(model, {"--gpu-layers", "10", "-c", "256", "--mlock", "--huge-pages"});
  auto stub = svc.stub();
  grpc::ClientContext ctx;
  tandem::v1::ModelInfo info;
  ASSERT_TRUE(stub->GetModelInfo(&ctx, {}, &info).ok());
  for (const auto& st : info.stages()) {
    SCOPED_TRACE(st.worker());
    const std::string body = http_get(st.metrics_url());
    const std::string series = "tandem_worker_memory_bytes{worker=\"" + st.worker() + "\",kind=";
    const auto locked = metric(body, series + "\"locked\",memory=\"ram\"}");
    ASSERT_TRUE(locked.has_value()) << body;
    EXPECT_TRUE(metric(body, series + "\"huge_pages\",memory=\"ram\"}")) << body;
    if (*locked == 0) {
      // Refused (no CAP_IPC_LOCK, small `ulimit -l`): the worker said why.
      EXPECT_NE(svc.process().log().find("mlock of"), std::string::npos) << svc.process().log();
    } else {
      // The shard's matrices: most of what it holds, never the whole file.
      EXPECT_GE(*locked, static_cast<double>(st.weight_bytes()) / 2) << body;
    }
  }
}

}  // namespace
}  // namespace tandem::test
