// The memory planner (core/plan): weight bytes of real files, KV bytes per
// type, the sizes of published Llama-3-70B files from the presets, the split
// search, the speed formula, and the same-model check for per-shard files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/gguf_file.h"
#include "core/model_compat.h"
#include "core/plan/advice.h"
#include "core/plan/memory_plan.h"
#include "core/requantize.h"
#include "core/synthetic_model.h"
#include "cpu_worker/cpu_stage.h"
#include "tests/unit/test_support.h"

namespace tandem::test {
namespace {

namespace plan = core::plan;
using core::QuantMix;
using core::quant::Type;

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

class TempDir {
 public:
  TempDir() : path_(testing::TempDir() + "tandem_plan_" + std::to_string(::getpid())) {
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

uint64_t file_tensor_bytes(const core::gguf::File& f) {
  uint64_t b = 0;
  for (const auto& t : f.tensors()) b += t.size_bytes;
  return b;
}

// The CPU worker's own count of a shard's bytes (cpu_worker/cpu_stage.cpp)
// against the plan's, for every split of the file.
void expect_stage_weights_match_worker(const std::string& path) {
  auto file = std::shared_ptr<const core::gguf::File>(core::gguf::File::open(path));
  plan::PlanRequest r;
  r.shape = plan::shape_from_config(core::config_from_gguf(*file));
  r.gpu_source = plan::inventory_from_gguf(*file);
  r.cpu_source = r.gpu_source;
  EXPECT_EQ(r.gpu_source.total_bytes(), file_tensor_bytes(*file));
  const int32_t L = r.shape.n_layer;
  for (int32_t n_gpu : {0, 1, L / 2, L}) {
    for (bool head_on_gpu : {true, false}) {
      const plan::StageBytes c = plan::cpu_stage_bytes(r, n_gpu, head_on_gpu);
      const plan::StageBytes g = plan::gpu_stage_bytes(r, n_gpu, head_on_gpu);
      const cpu::ShardSpec cs{c.layer_begin, c.layer_end, false, c.head};
      const cpu::ShardSpec gs{g.layer_begin, g.layer_end, false, g.head};
      EXPECT_EQ(c.weights, cpu::shard_weight_bytes(*file, cs)) << path << " n_gpu " << n_gpu;
      EXPECT_EQ(g.weights, cpu::shard_weight_bytes(*file, gs)) << path << " n_gpu " << n_gpu;
      // The two stages and the coordinator's embedding hold every tensor once
      // (rope_freqs, 1-D and tiny, is loaded by both stages).
      EXPECT_EQ(c.weights + g.weights + r.cpu_source.embedding_bytes() - r.cpu_source.global_bytes(),
                file_tensor_bytes(*file) + (r.shape.tied_output ? r.cpu_source.embedding_bytes() : 0));
    }
  }
}

TEST(MemoryPlan, WeightBytesOfRealFilesEqualTheirTensorSizes) {
  TempDir dir;
  core::SyntheticModelSpec spec;
  spec.mix = QuantMix::Q4_K_M;
  spec.n_layer = 3;
  spec.n_vocab = 300;
  core::write_synthetic_model(dir.file("synth.gguf"), spec);
  expect_stage_weights_match_worker(dir.file("synth.gguf"));
  const std::string smol = model_path_or_empty();
  if (smol.empty()) GTEST_SKIP() << "SmolLM2 not in the model cache (make model); synthetic file checked";
  expect_stage_weights_match_worker(smol);
}

TEST(MemoryPlan, MixInventoryNamesTypesAndBytesEqualAFileWrittenWithThatMix) {
  TempDir dir;
  for (QuantMix mix : {QuantMix::Q4_K_M, QuantMix::Q3_K_M, QuantMix::Q8_0}) {
    core::SyntheticModelSpec spec;
    spec.mix = mix;
    spec.n_layer = 2;
    spec.n_vocab = 300;
    core::write_synthetic_model(dir.file("m.gguf"), spec);
    const auto file = core::gguf::File::open(dir.file("m.gguf"));
    const plan::Inventory from_file = plan::inventory_from_gguf(*file);
    const plan::Inventory from_mix =
        plan::inventory_from_mix(plan::shape_from_config(core::config_from_gguf(*file)), mix);
    ASSERT_EQ(from_mix.tensors.size(), from_file.tensors.size()) << core::mix_name(mix);
    for (const plan::PlannedTensor& t : from_file.tensors) {
      bool found = false;
      for (const plan::PlannedTensor& u : from_mix.tensors)
        if (u.name == t.name) {
          found = true;
          EXPECT_EQ(u.type, t.type) << t.name;
          EXPECT_EQ(u.bytes, t.bytes) << t.name;
          EXPECT_EQ(u.layer, t.layer) << t.name;
        }
      EXPECT_TRUE(found) << t.name << " missing from the mix inventory";
    }
  }
}

TEST(MemoryPlan, KvBytesFollowTheBlockSizesOfEachType) {
  // Bytes per 32 values of each cache type (ggml block layouts).
  const std::vector<std::pair<Type, uint64_t>> per32 = {{Type::F32, 128}, {Type::F16, 64}, {Type::BF16, 64},
                                                        {Type::Q8_0, 34}, {Type::Q4_0, 18}, {Type::Q4_1, 20},
                                                        {Type::Q5_0, 22}, {Type::Q5_1, 24}};
  const plan::ModelShape s = *plan::find_preset("llama-3-70b");  // 8 KV heads of 128: GQA 8
  for (const auto& [k, kb] : per32)
    for (const auto& [v, vb] : per32) {
      const uint64_t want = 8ull * (128 / 32) * (kb + vb);
      EXPECT_EQ(plan::kv_bytes_per_token(s, k, v), want);
      plan::RunShape run;
      run.ctx = 4096, run.sequences = 3, run.kv_k = k, run.kv_v = v;
      EXPECT_EQ(plan::kv_bytes_per_layer(s, run), want * 4096 * 3);
    }
  // Llama-3-70B, f16 K and V, 80 layers: 320 KiB per token (the figure quoted everywhere).
  EXPECT_EQ(plan::kv_bytes_per_token(s, Type::F16, Type::F16) * 80, 320ull * 1024);
}

TEST(MemoryPlan, KvBytesEqualWhatTheCpuWorkerAllocates) {
  TempDir dir;
  core::SyntheticModelSpec spec;
  spec.n_layer = 3;
  core::write_synthetic_model(dir.file("kv.gguf"), spec);
  auto file = std::shared_ptr<const core::gguf::File>(core::gguf::File::open(dir.file("kv.gguf")));
  const plan::ModelShape s = plan::shape_from_config(core::config_from_gguf(*file));
  for (Type t : {Type::F16, Type::Q8_0, Type::Q4_0}) {
    cpu::EngineOptions eo;
    eo.kv.k_type = t, eo.kv.v_type = Type::F16, eo.kv.n_ctx = 96, eo.kv.n_seq = 2;
    cpu::CpuStage stage(file, cpu::ShardSpec{1, 3, false, false}, eo, "test");
    plan::RunShape run;
    run.ctx = 96, run.sequences = 2, run.kv_k = t, run.kv_v = Type::F16;
    EXPECT_EQ(stage.memory().kv_bytes, 2 * plan::kv_bytes_per_layer(s, run)) << core::quant::type_name(t);
  }
}

// Published file sizes (bartowski's Meta-Llama-3-70B-Instruct GGUFs, GiB)
// from the preset alone, within the 3%.
TEST(MemoryPlan, Llama3_70BPresetLandsOnPublishedFileSizes) {
  const plan::ModelShape& s = *plan::find_preset("llama-3-70b");
  for (const auto& [mix, gib] : std::vector<std::pair<QuantMix, double>>{{QuantMix::Q4_K_M, 39.60},
                                                                           {QuantMix::Q3_K_M, 31.91},
                                                                           {QuantMix::IQ2_M, 22.46},
                                                                           {QuantMix::IQ2_XXS, 17.79},
                                                                           {QuantMix::F16, 131.43}}) {
    const double got = static_cast<double>(plan::inventory_from_mix(s, mix).total_bytes()) / kGiB;
    EXPECT_NEAR(got, gib, gib * 0.03) << core::mix_name(mix) << ": " << got << " GiB";
  }
  EXPECT_NEAR(static_cast<double>(s.params()) / 1e9, 70.55, 0.01);  // "70.6B" on the model card
}

TEST(MemoryPlan, EveryPresetPlansAtEveryComparisonQuant) {
  for (const plan::ModelShape& s : plan::presets())
    for (const plan::QuantChoice& c : plan::comparison_choices()) {
      const plan::Inventory inv = c.mix ? plan::inventory_from_mix(s, *c.mix) : plan::inventory_from_bpw(s, c.bpw);
      EXPECT_GT(inv.total_bytes(), static_cast<uint64_t>(s.params() / 8)) << s.name << " " << c.label;
    }
}

plan::PlanRequest preset_request(const std::string& preset, QuantMix mix) {
  plan::PlanRequest r;
  r.shape = *plan::find_preset(preset);
  r.gpu_source = plan::inventory_from_mix(r.shape, mix);
  r.cpu_source = r.gpu_source;
  r.run.ctx = 4096;
  r.run.kv_k = r.run.kv_v = Type::Q8_0;
  r.ram = 0;
  return r;
}

TEST(MemoryPlan, ABudgetThatFitsExactlyNLayersYieldsN) {
  for (bool head : {true, false}) {
    plan::PlanRequest r = preset_request("llama-3-70b", QuantMix::Q4_K_M);
    r.head = head ? plan::HeadPlace::Gpu : plan::HeadPlace::Cpu;
    for (int32_t n : {1, 17, 44, 79, 80}) {
      r.vram = 1;  // any nonzero value: the CUDA overhead and reserve count
      r.vram = plan::gpu_stage_bytes(r, n, head).total();
      plan::MemoryPlan p = plan::plan_memory(r);
      EXPECT_EQ(p.n_gpu_layers, n) << "head " << head;
      EXPECT_TRUE(p.fits_vram);
      EXPECT_EQ(p.gpu.total(), r.vram);
      r.vram -= 1;  // one byte less: one layer less
      p = plan::plan_memory(r);
      EXPECT_EQ(p.n_gpu_layers, n - 1) << "head " << head;
    }
  }
}

TEST(MemoryPlan, BudgetByHandForOneQ8Layer) {
  // Shape small enough to add up by hand: 2 layers, d 64, ffn 128, 2 heads of
  // 32, 1 KV head, vocab 100, every matrix Q8_0 (34 bytes per 32 values).
  plan::ModelShape s;
  s.name = "hand", s.n_layer = 2, s.n_embd = 64, s.n_ff = 128, s.n_head = 2, s.n_head_kv = 1, s.head_dim = 32;
  s.n_vocab = 100;
  plan::PlanRequest r;
  r.shape = s;
  r.gpu_source = plan::inventory_from_mix(s, QuantMix::Q8_0);
  r.cpu_source = r.gpu_source;
  const uint64_t q8 = 34;  // bytes per 32 values
  // q 64x64, k 64x32, v 64x32, o 64x64, gate/up 64x128, down 128x64, 2 norms of 64 f32.
  const uint64_t layer = (64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 128) / 32 * q8 + 2 * 64 * 4;
  EXPECT_EQ(r.gpu_source.layer_bytes(0), layer);
  EXPECT_EQ(r.gpu_source.layer_bytes(1), layer);
  // output 100 rows of 64: Q8_0 at this size (Q6_K needs rows of 256), plus output_norm.
  EXPECT_EQ(r.gpu_source.head_bytes(), 100 * 64 / 32 * q8 + 64 * 4);
  r.run.ctx = 64, r.run.sequences = 1, r.run.batch = 4;
  r.run.kv_k = r.run.kv_v = Type::F16;
  r.vram = 1ull << 30;  // a card: its fixed costs count
  r.cuda_overhead = 1000, r.vram_reserve = 24;
  const plan::StageBytes one = plan::gpu_stage_bytes(r, 1, false);
  EXPECT_EQ(one.weights, layer);
  EXPECT_EQ(one.kv, 64ull * (32 * 2) * 2);  // 64 positions × (K + V) × 32 f16
  EXPECT_EQ(one.fixed, 1024u);
}

TEST(MemoryPlan, HeadGoesToTheCpuWhenItAloneDoesNotFitTheCard) {
  plan::PlanRequest r = preset_request("llama-3-70b", QuantMix::Q4_K_M);
  r.head = plan::HeadPlace::Auto;
  r.vram = 1;  // a card, so its fixed costs count in the figure below
  r.vram = plan::gpu_stage_bytes(r, 0, true).total() - 1;
  plan::MemoryPlan p = plan::plan_memory(r);
  EXPECT_FALSE(p.head_on_gpu);
  EXPECT_TRUE(p.cpu.head);
  EXPECT_EQ(p.cpu.layer_end, 80);
  r.vram += 1;
  p = plan::plan_memory(r);
  EXPECT_TRUE(p.head_on_gpu);
  EXPECT_EQ(p.n_gpu_layers, 0);
}

TEST(MemoryPlan, NoCardMeansEverythingInRamAndRamShortfallIsNamed) {
  plan::PlanRequest r = preset_request("llama-3-70b", QuantMix::Q4_K_M);
  r.vram = 0;
  r.ram = 8ull << 30;
  const plan::MemoryPlan p = plan::plan_memory(r);
  EXPECT_EQ(p.n_gpu_layers, 0);
  EXPECT_FALSE(p.head_on_gpu);
  EXPECT_TRUE(p.fits_vram);
  EXPECT_FALSE(p.fits_ram);
  EXPECT_NE(p.why.find("RAM needs"), std::string::npos) << p.why;
  r.gpu_layers = 81;
  EXPECT_THROW(plan::plan_memory(r), core::Error);
}

TEST(MemoryPlan, DecodeSpeedIsBytesOverBandwidthPlusOverhead) {
  plan::PlanRequest r = preset_request("llama-3-8b", QuantMix::Q4_K_M);
  r.vram = 0;
  const plan::MemoryPlan cpu_only = plan::plan_memory(r);
  plan::SpeedInputs in;
  in.cpu_gbps = 20, in.cpu_efficiency = 0.5, in.cpu_gflops = 100, in.step_overhead_ms = 2;
  const plan::SpeedEstimate e = plan::predict_speed(r, cpu_only, in);
  const double step = static_cast<double>(cpu_only.cpu.weights) / 10e9 + 0.002;
  EXPECT_NEAR(e.decode_tps, 1.0 / step, 1e-9 / step);
  EXPECT_LT(e.decode_tps_full, e.decode_tps);  // reading a full KV cache costs time
  // Half the layers on a card 10x faster: faster than all on the CPU.
  r.vram = 64ull << 30, r.gpu_layers = 16;
  const plan::MemoryPlan split = plan::plan_memory(r);
  EXPECT_GT(plan::predict_speed(r, split, in).decode_tps, e.decode_tps);
  in.cpu_gbps = 0;
  EXPECT_THROW(plan::predict_speed(r, split, in), core::Error);
}

TEST(MemoryPlan, ParseBytesReadsUnitsAndRejectsNonsense) {
  EXPECT_EQ(plan::parse_bytes("24GiB"), 24ull << 30);
  EXPECT_EQ(plan::parse_bytes("24 gib"), 24ull << 30);
  EXPECT_EQ(plan::parse_bytes("64GB"), 64000000000ull);
  EXPECT_EQ(plan::parse_bytes("512MiB"), 512ull << 20);
  EXPECT_EQ(plan::parse_bytes("1.5TiB"), 3ull << 39);
  EXPECT_EQ(plan::parse_bytes("1234"), 1234u);
  for (const char* bad : {"", "GiB", "24XB", "-1GiB", "1.2.3G", "twelve"}) EXPECT_THROW(plan::parse_bytes(bad), core::Error) << bad;
}

TEST(MemoryPlan, RecommendationsComeFromTheComparisonRows) {
  plan::PlanRequest r = preset_request("llama-3-70b", QuantMix::Q4_K_M);
  r.vram = 24ull << 30, r.ram = 64ull << 30;
  plan::SpeedInputs in;
  in.cpu_gbps = 60, in.cpu_gflops = 800;
  auto all = [](const std::string&) { return true; };
  const auto rows = plan::compare_quantizations(r, in, plan::comparison_choices(), all);
  ASSERT_EQ(rows.size(), 7u);
  EXPECT_FALSE(rows[0].plan.fits_vram && rows[0].plan.fits_ram);  // F16: 131 GiB in 88
  const auto recs = plan::recommend(r, in, rows, 1.0, all);
  ASSERT_EQ(recs.size(), 3u);
  ASSERT_TRUE(recs[0].row);
  EXPECT_TRUE(recs[0].row->plan.fully_on_gpu());
  EXPECT_LT(recs[0].row->size, 24ull << 30);
  ASSERT_TRUE(recs[1].row);
  EXPECT_FALSE(recs[1].row->plan.fully_on_gpu());
  EXPECT_EQ(recs[2].model, "llama-3-8b");
  ASSERT_TRUE(recs[2].row);
  EXPECT_TRUE(recs[2].row->plan.fully_on_gpu());
}

TEST(ModelCompat, RequantizedFileIsTheSameModelAndAnotherShapeIsNot) {
  TempDir dir;
  core::SyntheticModelSpec a;
  a.n_layer = 2;
  core::write_synthetic_model(dir.file("a.gguf"), a);
  core::RequantizeOptions ro;
  ro.type = Type::Q8_0;
  core::requantize_gguf(dir.file("a.gguf"), dir.file("a8.gguf"), ro);
  core::SyntheticModelSpec b = a;
  b.n_ff = 768;
  core::write_synthetic_model(dir.file("b.gguf"), b);
  const auto fa = core::gguf::File::open(dir.file("a.gguf"));
  const auto fa8 = core::gguf::File::open(dir.file("a8.gguf"));
  const auto fb = core::gguf::File::open(dir.file("b.gguf"));
  EXPECT_NO_THROW(core::check_same_model(*fa, *fa8));
  try {
    core::check_same_model(*fa, *fb);
    ADD_FAILURE() << "different n_ff accepted";
  } catch (const core::Error& e) {
    EXPECT_NE(std::string(e.what()).find("n_ff 512 vs 768"), std::string::npos) << e.what();
  }
  core::SyntheticModelSpec c = a;
  c.n_vocab = 300;  // same shapes otherwise, a longer vocabulary
  core::write_synthetic_model(dir.file("c.gguf"), c);
  const auto fc = core::gguf::File::open(dir.file("c.gguf"));
  EXPECT_THROW(core::check_same_model(*fa, *fc), core::Error);
}

// `tandem plan` end to end: the JSON agrees with the library's plan, a plan
// that does not fit exits 3 naming the shortfall, bad input exits 1.
TEST(PlanCli, JsonSplitFitsTheCardAndMatchesTheLibrary) {
  const auto r = run_command(std::string(TANDEM_CLI_PATH) +
                             " plan --preset llama-3-70b --quant Q4_K_M --vram 24GiB --ram 64GiB --ctx 4096 --kv q8_0"
                             " --cpu-bw 50 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  plan::PlanRequest req = preset_request("llama-3-70b", QuantMix::Q4_K_M);
  req.vram = 24ull << 30, req.ram = 64ull << 30;
  const plan::MemoryPlan p = plan::plan_memory(req);
  EXPECT_EQ(j["split"]["gpu_layers"].get<int>(), p.n_gpu_layers);
  EXPECT_GT(p.n_gpu_layers, 30);
  EXPECT_LT(p.n_gpu_layers, 80);
  EXPECT_LE(j["gpu"]["total_bytes"].get<uint64_t>(), 24ull << 30);
  EXPECT_EQ(j["gpu"]["total_bytes"].get<uint64_t>(), p.gpu.total());
  EXPECT_EQ(j["weights_bytes"]["gpu_source"].get<uint64_t>(), req.gpu_source.total_bytes());
  EXPECT_EQ(j["comparison"].size(), 7u);
  EXPECT_EQ(j["recommendations"].size(), 3u);
  // Every GGUF mix is served (the i-quants on both workers); EXL2 is not a format Tandem reads.
  for (const auto& row : j["comparison"])
    EXPECT_EQ(row["served_by_tandem"].get<bool>(), row["quant"] != "EXL2 2.40bpw") << row["quant"];
}

TEST(PlanCli, APlanThatDoesNotFitExitsThreeAndSaysWhatIsShort) {
  const auto r = run_command(std::string(TANDEM_CLI_PATH) +
                             " plan --preset llama-3-70b --quant F16 --vram 24GiB --ram 64GiB --cpu-bw 50 --no-compare");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.out.find("DOES NOT FIT: RAM needs"), std::string::npos) << r.out;
}

TEST(PlanCli, BadInputIsOneLineAndExitOne) {
  for (const char* args : {"--preset llama-3-70b --quant Q9_X", "--preset nope --quant Q4_K_M",
                           "--preset llama-3-70b --quant Q4_K_M --vram lots", "--preset llama-3-70b",
                           "--preset llama-3-70b --quant Q4_K_M --kv q7", "--preset custom --quant Q4_K_M --n-layer 4",
                           "-m /nonexistent.gguf"}) {
    const auto r = run_command(std::string(TANDEM_CLI_PATH) + " plan --cpu-bw 10 " + args);
    EXPECT_EQ(r.exit_code, 1) << args << ": " << r.err;
    EXPECT_EQ(r.err.rfind("tandem: error: ", 0), 0u) << args << ": " << r.err;
  }
}

}  // namespace
}  // namespace tandem::test
