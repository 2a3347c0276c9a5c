// The CUDA stage against the CPU stage on synthetic models (random weights,
// written by our own tool, so this runs on any GPU machine without a model
// download): every weight type the GPU reads, both architectures, prefill
// (cuBLAS) and decode (GEMV), hidden rows compared with a normalized error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
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

// Decode through captured CUDA graphs must give bit-identical rows to direct
// launches (same kernels, same order), over steps whose positions and
// sequence mix change; the test also prints what the graphs save per step.
TEST(CudaStageGraphs, ReplayEqualsDirectLaunches) {
  TANDEM_REQUIRE_GPU();
  const std::string path = ::testing::TempDir() + "tandem_gpu_graphs_" + std::to_string(::getpid()) + ".gguf";
  core::SyntheticModelSpec s;
  s.n_layer = 8;
  s.n_embd = 1024;
  s.n_ff = 2816;
  s.n_head = 16;
  s.n_head_kv = 4;
  s.weight_type = Type::Q4_K;
  core::write_synthetic_model(path, s);
  std::shared_ptr<const core::gguf::File> file = core::gguf::File::open(path);
  cpu::EngineOptions eo;
  eo.threads = 2;
  cpu::LlamaEngine embedder(file, {0, 0, true, false}, eo);
  gpu::CudaStageOptions go;
  go.n_ctx = 256;
  go.n_seq = 2;
  go.max_batch_tokens = 32;
  gpu::CudaStageOptions gd = go;
  gd.graphs = false;
  gpu::CudaStage plain(file, {0, -1, false, false}, gd);
  gpu::CudaStage graphed(file, {0, -1, false, false}, go);
  const int32_t d = s.n_embd;
  auto run = [&](core::StageBackend& st, const std::vector<core::StageRow>& rows, const std::vector<int32_t>& toks) {
    std::vector<float> h(toks.size() * d);
    embedder.embed(toks, h.data());
    st.run_layers(h.data(), rows);
    return h;
  };
  // Prefill 12 tokens in each of two sequences (cuBLAS path, no graphs).
  std::vector<core::StageRow> pre;
  std::vector<int32_t> pre_toks;
  for (int32_t q = 0; q < 2; ++q)
    for (int32_t i = 0; i < 12; ++i) {
      pre.push_back({q, i});
      pre_toks.push_back((q * 53 + i * 31 + 7) % 256);
    }
  ASSERT_EQ(run(plain, pre, pre_toks), run(graphed, pre, pre_toks));
  // Decode: alternately one row (sequence 0) and two rows (both sequences),
  // so each row count's graph is replayed at many positions.
  int32_t next[2] = {12, 12};
  for (int step = 0; step < 16; ++step) {
    std::vector<core::StageRow> rows;
    std::vector<int32_t> toks;
    for (int32_t q = 0; q < (step % 2 == 0 ? 1 : 2); ++q) {
      rows.push_back({q, next[q]++});
      toks.push_back((step * 17 + q * 5 + 3) % 256);
    }
    ASSERT_EQ(run(plain, rows, toks), run(graphed, rows, toks)) << "decode step " << step;
  }
  // What the graph saves per single-row step (printed, not asserted).
  auto time_steps = [&](gpu::CudaStage& st, int32_t seq) {
    std::vector<float> h(d, 0.01f);
    const int reps = 50;
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) {
      const core::StageRow row{seq, 40 + r};
      st.run_layers(h.data(), {&row, 1});
    }
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / reps;
  };
  const double us_plain = time_steps(plain, 1), us_graph = time_steps(graphed, 1);
  std::printf("[ cuda graphs ] 8-layer d=1024 Q4_K decode step: %.1f us direct, %.1f us graph\n", us_plain, us_graph);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace tandem::test
