// The CUDA stage against the CPU stage on synthetic models (random weights,
// written by our own tool, so this runs on any GPU machine without a model
// download): every weight type the GPU reads, both architectures, prefill
// (cuBLAS) and decode (GEMV), hidden rows compared with a normalized error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "core/gguf_file.h"
#include "core/synthetic_model.h"
#include "cpu_worker/cpu_stage.h"
#include "gpu_worker/cuda/cuda_stage.h"
#include "tests/gpu/gpu_test_support.h"

namespace tandem::test {
namespace {

using core::quant::Type;

struct Case {
  const char* arch;
  Type weights;
};

class CudaStageSynthetic : public ::testing::TestWithParam<Case> {};

TEST_P(CudaStageSynthetic, HiddenRowsMatchTheCpuStage) {
  TANDEM_REQUIRE_GPU();
  const Case c = GetParam();
  const std::string path = ::testing::TempDir() + "tandem_gpu_synth_" + std::to_string(::getpid()) + ".gguf";
  core::SyntheticModelSpec s;
  s.arch = c.arch;
  s.n_layer = 2;
  s.n_embd = 512;
  s.n_ff = 1024;
  s.n_head = 8;
  s.n_head_kv = 2;
  s.weight_type = c.weights;
  core::write_synthetic_model(path, s);
  std::shared_ptr<const core::gguf::File> file = core::gguf::File::open(path);
  cpu::EngineOptions eo;
  eo.threads = 2;
  eo.kv.n_ctx = 128;
  cpu::LlamaEngine embedder(file, {0, 0, true, false}, eo);
  cpu::CpuStage cpu_stage(file, {0, -1, false, true}, eo, "host");
  gpu::CudaStageOptions go;
  go.n_ctx = 128;
  go.max_batch_tokens = 32;
  gpu::CudaStage gpu_stage(file, {0, -1, false, true}, go);
  const int32_t d = s.n_embd;
  // A 20-token prefill (cuBLAS path), then 3 single-token decode steps (GEMV).
  std::vector<int32_t> toks(20);
  for (int i = 0; i < 20; ++i) toks[i] = (i * 37 + 11) % 256;
  auto run = [&](core::StageBackend& st, int32_t pos0, const std::vector<int32_t>& t) {
    std::vector<float> h(t.size() * d);
    embedder.embed(t, h.data());
    std::vector<core::StageRow> rows;
    for (size_t i = 0; i < t.size(); ++i) rows.push_back({0, pos0 + static_cast<int32_t>(i)});
    st.run_layers(h.data(), rows);
    return h;
  };
  EXPECT_LT(nmse_sqrt(run(gpu_stage, 0, toks), run(cpu_stage, 0, toks)), 5e-3) << "prefill";
  for (int step = 0; step < 3; ++step) {
    const std::vector<int32_t> one = {static_cast<int32_t>(40 + step)};
    EXPECT_LT(nmse_sqrt(run(gpu_stage, 20 + step, one), run(cpu_stage, 20 + step, one)), 5e-3) << "decode " << step;
  }
  std::filesystem::remove(path);
}

INSTANTIATE_TEST_SUITE_P(Types, CudaStageSynthetic,
                         ::testing::Values(Case{"llama", Type::Q4_0}, Case{"llama", Type::Q4_1}, Case{"llama", Type::Q5_0},
                                           Case{"llama", Type::Q5_1}, Case{"llama", Type::Q8_0}, Case{"llama", Type::Q2_K},
                                           Case{"llama", Type::Q3_K}, Case{"llama", Type::Q4_K}, Case{"llama", Type::Q5_K},
                                           Case{"llama", Type::Q6_K}, Case{"llama", Type::F16}, Case{"qwen2", Type::Q4_K}),
                         [](const auto& info) {
                           return std::string(info.param.arch) + "_" +
                                  std::string(core::quant::type_name(info.param.weights));
                         });

}  // namespace
}  // namespace tandem::test
