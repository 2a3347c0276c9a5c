// The `tandem` binary on bad input: one line naming the problem on stderr,
// exit status 1, never a signal.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/gguf_file.h"
#include "core/gguf_writer.h"
#include "core/synthetic_model.h"
#include <nlohmann/json.hpp>
#include "tests/unit/test_support.h"

namespace tandem {
namespace {

using test::run_command;
using test::shell_quote;

std::string cli() { return TANDEM_CLI_PATH; }

class CliErrors : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "tandem_cli_errors_" + std::to_string(::getpid());
    std::filesystem::create_directories(dir_);
    model_ = dir_ + "/tiny.gguf";
    core::SyntheticModelSpec s;
    s.n_layer = 2;
    s.n_embd = 64;
    s.n_ff = 128;
    s.n_head = 2;
    s.n_head_kv = 1;
    core::write_synthetic_model(model_, s);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write_bytes(const std::string& name, const std::string& bytes) {
    const std::string p = dir_ + "/" + name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }

  // Copies the model into a new file, leaving out one tensor or changing the architecture.
  std::string rewrite(const std::string& name, const std::string& drop_tensor, const std::string& arch) {
    auto f = core::gguf::File::open(model_);
    core::gguf::Writer w;
    for (const auto& [k, v] : f->metadata()) {
      if (k == "general.architecture" && !arch.empty()) {
        w.set_string(k, arch);
      } else {
        w.set(k, v);
      }
    }
    for (const auto& t : f->tensors())
      if (t.name != drop_tensor) w.add_tensor(t.name, t.shape, t.type, t.data, t.size_bytes);
    const std::string p = dir_ + "/" + name;
    w.write(p);
    return p;
  }

  static void expect_clean_error(const test::CommandResult& r, const std::string& must_contain) {
    EXPECT_EQ(r.signal, 0) << "killed by signal; stderr: " << r.err;
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(r.err.rfind("tandem: error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "want one line: " << r.err;
    EXPECT_NE(r.err.find(must_contain), std::string::npos) << "stderr: " << r.err;
  }

  std::string dir_, model_;
};

TEST_F(CliErrors, SyntheticModelRuns) {
  auto r = run_command(cli() + " generate -m " + shell_quote(model_) + " -p hello -n 4 --temp 0 --json -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"output_ids\""), std::string::npos);
}

TEST_F(CliErrors, TruncatedAnywhere) {
  const std::string bytes = test::read_file(model_);
  ASSERT_GT(bytes.size(), 1000u);
  // Every byte of the header region, then points spread over the data.
  std::vector<size_t> cuts;
  for (size_t i = 0; i < 600; i += 7) cuts.push_back(i);
  for (size_t i = 600; i < bytes.size(); i += bytes.size() / 23) cuts.push_back(i);
  cuts.push_back(bytes.size() - 1);
  for (size_t cut : cuts) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    const std::string p = write_bytes("cut.gguf", bytes.substr(0, cut));
    auto r = run_command(cli() + " generate -m " + shell_quote(p) + " -p hi -n 1 -t 1");
    expect_clean_error(r, "cut.gguf");
  }
}

TEST_F(CliErrors, BadMagicAndVersion) {
  std::string bytes = test::read_file(model_);
  std::string bad = bytes;
  bad[0] = 'X';
  expect_clean_error(run_command(cli() + " inspect " + shell_quote(write_bytes("magic.gguf", bad))), "magic");
  bad = bytes;
  bad[4] = 7;  // version 7
  expect_clean_error(run_command(cli() + " inspect " + shell_quote(write_bytes("ver.gguf", bad))), "version");
}

TEST_F(CliErrors, UnknownArchitecture) {
  const std::string p = rewrite("arch.gguf", "", "gptx");
  expect_clean_error(run_command(cli() + " generate -m " + shell_quote(p) + " -p hi -n 1"), "unsupported architecture 'gptx'");
}

TEST_F(CliErrors, MissingTensor) {
  const std::string p = rewrite("missing.gguf", "blk.1.ffn_up.weight", "");
  expect_clean_error(run_command(cli() + " generate -m " + shell_quote(p) + " -p hi -n 1"), "blk.1.ffn_up.weight");
}

// A file whose alignment lets tensor data start at odd offsets: refused with
// a message, not read through misaligned pointers.
TEST_F(CliErrors, MisalignedTensorData) {
  auto f = core::gguf::File::open(model_);
  core::gguf::Writer w;
  w.set_alignment(1);
  for (const auto& [k, v] : f->metadata()) w.set(k, v);
  const int8_t one_byte = 0;
  w.add_tensor("padding.byte", {1}, core::quant::Type::I8, &one_byte, 1);  // shifts every later tensor by one byte
  for (const auto& t : f->tensors()) w.add_tensor(t.name, t.shape, t.type, t.data, t.size_bytes);
  const std::string p = dir_ + "/misaligned.gguf";
  w.write(p);
  expect_clean_error(run_command(cli() + " generate -m " + shell_quote(p) + " -p hi -n 1"), "not 4-byte aligned");
}

TEST_F(CliErrors, MissingFileAndBadOptions) {
  expect_clean_error(run_command(cli() + " inspect " + shell_quote(dir_ + "/nope.gguf")), "nope.gguf");
  expect_clean_error(run_command(cli() + " generate -m " + shell_quote(model_) + " -p hi --cache-type-k q9_9"), "q9_9");
  expect_clean_error(run_command(cli() + " generate -m " + shell_quote(model_) + " -p hi --temp -1"), "temperature");
  expect_clean_error(run_command(cli() + " detokenize -m " + shell_quote(model_) + " 999999"), "999999");
  expect_clean_error(run_command(cli() + " synth -o " + shell_quote(dir_ + "/s.gguf") + " --mix Q9_K_Z"), "Q9_K_Z");
  expect_clean_error(run_command(cli() + " synth -o " + shell_quote(dir_ + "/s.gguf") + " --preset llama-9-1t --type Q4_0"),
                     "llama-9-1t");
  expect_clean_error(run_command(cli() + " bench kernels --types Q4_0,Q7_7 --threads 1"), "Q7_7");
  expect_clean_error(run_command(cli() + " bench kernels --types Q4_K --cols 300 --threads 1"), "300");
  expect_clean_error(run_command(cli() + " bench kernels --types F32 --threads 1"), "F32");
  expect_clean_error(run_command(cli() + " bench model -m " + shell_quote(model_) + " --threads 1,x"), "'x'");
  expect_clean_error(run_command(cli() + " bench model -m " + shell_quote(model_) + " --prompt 900 --gen 200 --ctx 1024"),
                     "--ctx");
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/s.gguf"));
}

// `tandem synth` writes what it says: the preset's shapes and, for a mix,
// llama-quantize's per-tensor types (here a tiny preset, so it runs in CI);
// `tandem bench model` runs that file and reports sane numbers.
TEST_F(CliErrors, SynthMixAndBenchModel) {
  const std::string p = dir_ + "/mix.gguf";
  auto r = run_command(cli() + " synth -o " + shell_quote(p) + " --preset tiny --layers 3 --mix Q4_K_M --vocab 512");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto f = core::gguf::File::open(p);
  EXPECT_EQ(f->get_int("general.file_type").value_or(0), 15);  // LLAMA_FTYPE_MOSTLY_Q4_K_M
  EXPECT_EQ(f->tensor("token_embd.weight").shape[1], 512);
  EXPECT_EQ(f->tensor("output.weight").type, core::quant::Type::Q6_K);
  EXPECT_EQ(f->tensor("blk.0.attn_q.weight").type, core::quant::Type::Q4_K);
  // use_more_bits: the last eighth of the layers gets Q6_K for attn_v and ffn_down.
  EXPECT_EQ(f->tensor("blk.2.ffn_down.weight").type, core::quant::Type::Q6_K);
  EXPECT_EQ(f->tensor("blk.0.ffn_down.weight").type, core::quant::Type::Q4_K);
  r = run_command(cli() + " bench model -m " + shell_quote(p) + " --threads 1 --prompt 8 --gen 4 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["runs"].size(), 1u);
  EXPECT_GT(j["runs"][0]["decode_tokens_per_s"].get<double>(), 0.0);
  EXPECT_GT(j["runs"][0]["probe_gbps"].get<double>(), 0.0);
  uint64_t want = 0;
  for (const auto& t : f->tensors())
    if (t.name != "token_embd.weight") want += t.size_bytes;
  EXPECT_EQ(j["weight_bytes_per_token"].get<uint64_t>(), want);
}

}  // namespace
}  // namespace tandem
