// The memory planner in the service: per-shard files (--gpu-model /
// --cpu-model, two quantizations of SmolLM2 made by `tandem quantize`), the
// refusal of files that are not the same model, and --gpu-layers auto
// backing off a layer when the GPU worker refuses its shard.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include "core/gguf_file.h"
#include "core/model_config.h"
#include "core/plan/memory_plan.h"
#include "core/synthetic_model.h"
#include "cpu_worker/llama_engine.h"
#include "tests/integration/service_harness.h"
#include "tests/unit/test_support.h"

namespace tandem::test {
namespace {

namespace plan = core::plan;
const char* kPrompt = "The capital of France is";
constexpr int kTokens = 16;
constexpr int kCtx = 256;

std::string scratch_dir() {
  const std::string d = testing::TempDir() + "tandem_plan_svc_" + std::to_string(::getpid());
  std::filesystem::create_directories(d);
  return d;
}

// A Q8_0 re-quantization of the model, made once per test binary run.
std::string q8_copy(const std::string& model) {
  const std::string out = scratch_dir() + "/smol_q8_0.gguf";
  if (!std::filesystem::exists(out)) {
    const std::string cmd = build_dir() + "/tandem quantize '" + model + "' '" + out + "' --type Q8_0 > /dev/null";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  return out;
}

std::vector<int32_t> prompt_ids(tandem::v1::Inference::Stub& stub) {
  grpc::ClientContext ctx;
  tandem::v1::TokenizeRequest req;
  req.set_text(kPrompt);
  req.set_add_bos(false);
  tandem::v1::TokenizeResponse resp;
  EXPECT_TRUE(stub.Tokenize(&ctx, req, &resp).ok());
  return {resp.ids().begin(), resp.ids().end()};
}

// Greedy decoding through two in-process shards from two files: the answer
// the three processes must give.
std::vector<int32_t> two_file_reference(const std::string& first_file, int split, const std::string& second_file,
                                        std::vector<int32_t> ids) {
  auto fa = std::shared_ptr<const core::gguf::File>(core::gguf::File::open(first_file));
  auto fb = std::shared_ptr<const core::gguf::File>(core::gguf::File::open(second_file));
  const core::ModelConfig cfg = core::config_from_gguf(*fa);
  cpu::EngineOptions eo;
  eo.threads = 1;
  eo.kv.n_ctx = kCtx;
  cpu::LlamaEngine a(fa, cpu::ShardSpec{0, split, true, false}, eo);
  cpu::LlamaEngine b(fb, cpu::ShardSpec{split, cfg.n_layer, false, true}, eo);
  std::vector<int32_t> out;
  std::vector<float> hidden, logits(cfg.n_vocab);
  int32_t pos = 0;
  for (int step = 0; step < kTokens; ++step) {
    const int32_t n = static_cast<int32_t>(ids.size());
    hidden.resize(static_cast<size_t>(n) * cfg.n_embd);  // [n × n_embd]
    a.embed(ids, hidden.data());
    a.run_layers(hidden.data(), n, 0, pos);
    b.run_layers(hidden.data(), n, 0, pos);
    b.head(hidden.data() + static_cast<size_t>(n - 1) * cfg.n_embd, 1, logits.data());
    pos += n;
    const int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(next);
    ids = {next};
  }
  return out;
}

tandem::v1::ModelInfo model_info(Service& svc) {
  auto stub = svc.stub();
  grpc::ClientContext ctx;
  tandem::v1::ModelInfo info;
  EXPECT_TRUE(stub->GetModelInfo(&ctx, {}, &info).ok());
  return info;
}

TEST(PlanService, MixedQuantFilesServeTheTwoFileAnswer) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  const std::string q8 = q8_copy(model);
  // The GPU worker holds the last 10 layers and the head from the Q8_0 file,
  // the CPU worker the first 20 from the Q4_1 file.
  Service svc(model, {"--gpu-model", q8, "--gpu-layers", "10", "-c", std::to_string(kCtx), "--max-sequences", "1"});
  auto stub = svc.stub();
  auto req = greedy_request(kPrompt, kTokens);
  req.set_no_bos(true);
  const auto r = generate(*stub, req);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message() << "\n" << svc.process().log();
  const auto expected = two_file_reference(model, 20, q8, prompt_ids(*stub));
  EXPECT_EQ(r.ids, expected) << svc.process().log();
  const auto info = model_info(svc);
  ASSERT_EQ(info.stages_size(), 2);
  for (const auto& st : info.stages()) {
    const std::string want = st.worker() == "gpu" ? q8 : model;
    EXPECT_EQ(std::filesystem::canonical(st.model_path()), std::filesystem::canonical(want)) << st.worker();
  }
  // Each worker logged its plan beside its real allocation.
  EXPECT_NE(svc.process().log().find("plan: weights"), std::string::npos) << svc.process().log();
}

TEST(PlanService, FilesOfDifferentModelsAreRefusedByName) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  const std::string other = scratch_dir() + "/other.gguf";
  core::SyntheticModelSpec spec;
  spec.n_layer = 30;
  core::write_synthetic_model(other, spec);
  Process p({build_dir() + "/tandem-coordinator", "-m", model, "--gpu-model", other, "--listen", "127.0.0.1:0",
             "--metrics", "127.0.0.1:0"});
  for (int i = 0; i < 600 && p.alive(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(p.alive());
  EXPECT_NE(p.log().find("not the same model"), std::string::npos) << p.log();
}

TEST(PlanService, AutoSplitBacksOffALayerWhenTheGpuWorkerRefuses) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  // The plan (8 GiB of VRAM) puts every layer and the head on the GPU; the
  // GPU worker's --memory-limit admits the head and only the last 12 layers
  // (plus half a layer of slack), so it refuses until the coordinator has
  // backed off to 12.
  const auto file = core::gguf::File::open(model);
  plan::PlanRequest r;
  r.shape = plan::shape_from_config(core::config_from_gguf(*file));
  r.gpu_source = plan::inventory_from_gguf(*file);
  r.run.ctx = kCtx, r.run.sequences = 1;
  const int32_t L = r.shape.n_layer;
  uint64_t limit = r.gpu_source.head_bytes() + r.gpu_source.global_bytes() + r.gpu_source.layer_bytes(L - 13) / 2;
  for (int32_t l = L - 12; l < L; ++l) limit += r.gpu_source.layer_bytes(l) + plan::kv_bytes_per_layer(r.shape, r.run);
  Service svc(model, {"--gpu-layers", "auto", "--vram", "8GiB", "--gpu-memory-limit", std::to_string(limit), "-c",
                      std::to_string(kCtx), "--max-sequences", "1"});
  const auto info = model_info(svc);
  ASSERT_EQ(info.stages_size(), 2);
  const auto& gpu = info.stages(1);
  ASSERT_EQ(gpu.worker(), "gpu");
  EXPECT_EQ(gpu.layer_end() - gpu.layer_begin(), 12) << svc.process().log();
  EXPECT_TRUE(gpu.head());
  EXPECT_EQ(info.stages(0).layer_end(), L - 12);
  EXPECT_NE(svc.process().log().find("backing off to 12"), std::string::npos) << svc.process().log();
  auto stub = svc.stub();
  const auto res = generate(*stub, greedy_request(kPrompt, 8));
  ASSERT_TRUE(res.status.ok()) << res.status.error_message();
  EXPECT_EQ(res.ids, reference_ids(model, kPrompt, 8, kCtx));
}

}  // namespace
}  // namespace tandem::test
