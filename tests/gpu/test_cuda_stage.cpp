// The CUDA stage end to end on SmolLM2: greedy tokens against the CPU stage
// (prefill through cuBLAS, decode through the quantized GEMV kernels), and a
// shard that does not fit refused with the shortfall named.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "core/gguf_file.h"
#include "core/model_config.h"
#include "core/plan/memory_plan.h"
#include "core/tokenizer.h"
#include "cpu_worker/cpu_stage.h"
#include "gpu_worker/cuda/cuda_stage.h"
#include "tests/gpu/gpu_test_support.h"
#include "tests/unit/test_support.h"

namespace tandem::test {
namespace {

int32_t argmax(const float* x, int32_t n) { return static_cast<int32_t>(std::max_element(x, x + n) - x); }

// Greedy decode of `steps` tokens through one stage that owns every layer and the head.
std::vector<int32_t> greedy(core::StageBackend& stage, cpu::LlamaEngine& embedder, const std::vector<int32_t>& prompt,
                            int steps, std::vector<float>* first_logits) {
  const int32_t d = stage.config().n_embd, nv = stage.config().n_vocab;
  std::vector<int32_t> out;
  std::vector<float> hidden(prompt.size() * d), logits(nv);
  embedder.embed(prompt, hidden.data());
  std::vector<core::StageRow> rows;
  for (size_t i = 0; i < prompt.size(); ++i) rows.push_back({0, static_cast<int32_t>(i)});
  stage.run_layers(hidden.data(), rows);
  stage.head(hidden.data() + (prompt.size() - 1) * d, 1, logits.data());
  if (first_logits) *first_logits = logits;
  int32_t pos = static_cast<int32_t>(prompt.size());
  for (int s = 0; s < steps; ++s) {
    const int32_t id = argmax(logits.data(), nv);
    out.push_back(id);
    embedder.embed(std::span<const int32_t>(&id, 1), hidden.data());
    const core::StageRow row{0, pos++};
    stage.run_layers(hidden.data(), std::span<const core::StageRow>(&row, 1));
    stage.head(hidden.data(), 1, logits.data());
  }
  return out;
}

class CudaStageTest : public ::testing::TestWithParam<const char*> {};

TEST_P(CudaStageTest, GreedyTokensMatchTheCpuStage) {
  TANDEM_REQUIRE_GPU();
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  const auto kv = *core::quant::type_from_name(GetParam());
  std::shared_ptr<const core::gguf::File> file = core::gguf::File::open(model);
  core::Tokenizer tok(core::vocab_from_gguf(*file));
  const auto prompt = tok.encode("The history of the printing press begins in", true, false);
  ASSERT_GT(prompt.size(), 8u) << "the prompt must take the cuBLAS prefill path";
  cpu::EngineOptions eo;
  eo.threads = 2;
  eo.kv.n_ctx = 256;
  eo.kv.k_type = kv;
  eo.kv.v_type = kv;
  cpu::LlamaEngine embedder(file, {0, 0, true, false}, eo);
  cpu::CpuStage cpu_stage(file, {0, -1, false, true}, eo, "host");
  gpu::CudaStageOptions go;
  go.k_type = kv;
  go.v_type = kv;
  go.n_ctx = 256;
  go.max_batch_tokens = 64;
  gpu::CudaStage gpu_stage(file, {0, -1, false, true}, go);
  std::vector<float> lc, lg;
  const int steps = 32;
  const auto want = greedy(cpu_stage, embedder, prompt, steps, &lc);
  const auto got = greedy(gpu_stage, embedder, prompt, steps, &lg);
  EXPECT_LT(nmse_sqrt(lg, lc), 2e-2) << "first-step logits differ beyond fp16/f32 summation-order noise";
  size_t same = 0;
  while (same < want.size() && want[same] == got[same]) ++same;
  std::printf("[ cuda e2e ] kv %s: %zu/%d greedy tokens equal the CPU path%s\n", GetParam(), same, steps,
              same == want.size() ? "" : " (then fp16 prefill / summation order diverge)");
  EXPECT_GE(same, 8u);
  const core::StageMemory m = gpu_stage.memory();
  EXPECT_EQ(m.memory, "vram");
  EXPECT_GT(m.weight_bytes, 0u);
  EXPECT_GT(m.kv_bytes, 0u);
  EXPECT_GT(m.scratch_bytes, 0u);
  // `tandem plan` predicts exactly these allocations (core/plan).
  core::plan::PlanRequest r;
  r.shape = core::plan::shape_from_config(core::config_from_gguf(*file));
  r.gpu_source = core::plan::inventory_from_gguf(*file);
  r.run.ctx = go.n_ctx, r.run.sequences = go.n_seq, r.run.batch = go.max_batch_tokens;
  r.run.kv_k = r.run.kv_v = kv;
  const core::plan::StageBytes planned = core::plan::gpu_stage_bytes(r, r.shape.n_layer, true);
  EXPECT_EQ(planned.weights, m.weight_bytes);
  EXPECT_EQ(planned.kv, m.kv_bytes);
  EXPECT_EQ(planned.scratch, m.scratch_bytes);
}

INSTANTIATE_TEST_SUITE_P(KvTypes, CudaStageTest, ::testing::Values("f16", "q8_0", "q4_0"));

TEST(CudaStageMemory, AShardThatDoesNotFitIsRefusedWithTheShortfall) {
  TANDEM_REQUIRE_GPU();
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  std::shared_ptr<const core::gguf::File> file = core::gguf::File::open(model);
  gpu::CudaStageOptions go;
  go.n_ctx = 1 << 22;  // 4M positions × 64 sequences of f16 KV: far beyond any card
  go.n_seq = 64;
  try {
    gpu::CudaStage s(file, {0, -1, false, true}, go);
    FAIL() << "a shard needing terabytes was accepted";
  } catch (const core::Error& e) {
    EXPECT_NE(std::string(e.what()).find("short by"), std::string::npos) << e.what();
  }
}

TEST(CudaStageMemory, UnsupportedKvTypeIsAnError) {
  TANDEM_REQUIRE_GPU();
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  std::shared_ptr<const core::gguf::File> file = core::gguf::File::open(model);
  gpu::CudaStageOptions go;
  go.k_type = core::quant::Type::Q5_1;
  EXPECT_THROW(gpu::CudaStage(file, {0, -1, false, true}, go), core::Error);
}

}  // namespace
}  // namespace tandem::test
