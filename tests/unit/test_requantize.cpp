// Re-quantizing a GGUF file (core/requantize.h, `tandem quantize`): the
// output keeps the input's metadata and tensor table, converts exactly the
// matrices, stays within the target type's rounding of the input's values,
// follows the mix rules tensor by tensor, and a failure leaves no file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "core/error.h"
#include "core/gguf_file.h"
#include "core/quant_mix.h"
#include "core/quant_types.h"
#include "core/requantize.h"
#include "core/synthetic_model.h"
#include "tests/unit/gguf_value_equal.h"
#include "tests/unit/test_support.h"

namespace tandem::test {
namespace {

namespace fs = std::filesystem;
using core::QuantMix;
using core::gguf::File;
using core::gguf::TensorInfo;
using core::gguf::Value;
using core::quant::Type;

std::string name_of(Type t) { return std::string(core::quant::type_name(t)); }

// The whole tensor in f32: [n_elements], rows of shape[0] one after another.
std::vector<float> dequantize(const TensorInfo& t) {
  std::vector<float> out(static_cast<size_t>(t.n_elements()));
  core::quant::traits(t.type).to_float(t.data, out.data(), t.n_elements());
  return out;
}

bool same_bytes(const TensorInfo& a, const TensorInfo& b) {
  return a.size_bytes == b.size_bytes && std::memcmp(a.data, b.data, a.size_bytes) == 0;
}

class Requantize : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "tandem_requantize_" + std::to_string(::getpid());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string model(const std::string& name, const core::SyntheticModelSpec& spec) {
    const std::string p = dir_ + "/" + name;
    core::write_synthetic_model(p, spec);
    return p;
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  // Neither the output nor the writer's temporary file is there.
  static void expect_no_output(const std::string& out) {
    EXPECT_FALSE(fs::exists(out)) << out;
    EXPECT_FALSE(fs::exists(out + ".tmp")) << out << ".tmp";
  }

  std::string dir_;
};

TEST_F(Requantize, TypeConvertsMatricesAndKeepsEverythingElse) {
  core::SyntheticModelSpec spec;  // Q4_0 layer matrices, Q8_0 tied embedding, F32 norms
  const std::string in_path = model("in.gguf", spec);
  const std::string out_path = path("out.gguf");
  core::RequantizeOptions o;
  o.type = Type::Q8_0;
  o.threads = 3;  // more than one worker on the larger matrices
  const core::RequantizeReport rep = core::requantize_gguf(in_path, out_path, o);

  const auto in = File::open(in_path);
  const auto out = File::open(out_path);
  EXPECT_EQ(rep.bytes_in, in->file_size());
  EXPECT_EQ(rep.bytes_out, out->file_size());

  // Metadata: same keys in the same order, same values but the file type.
  ASSERT_EQ(in->metadata().size(), out->metadata().size());
  for (size_t i = 0; i < in->metadata().size(); ++i) {
    const auto& [k_in, v_in] = in->metadata()[i];
    const auto& [k_out, v_out] = out->metadata()[i];
    EXPECT_EQ(k_in, k_out);
    if (k_in != "general.file_type") {
      EXPECT_TRUE(same_gguf_value(v_in, v_out)) << k_in;
    }
  }
  EXPECT_EQ(out->get_int("general.file_type").value_or(-1), 7);  // LLAMA_FTYPE_MOSTLY_Q8_0

  ASSERT_EQ(in->tensors().size(), out->tensors().size());
  int converted = 0, kept = 0;
  for (size_t i = 0; i < in->tensors().size(); ++i) {
    const TensorInfo& a = in->tensors()[i];
    const TensorInfo& b = out->tensors()[i];
    ASSERT_EQ(a.name, b.name);
    EXPECT_EQ(a.shape, b.shape) << a.name;
    if (a.shape.size() < 2) {
      EXPECT_EQ(name_of(b.type), name_of(a.type)) << a.name;
      EXPECT_TRUE(same_bytes(a, b)) << a.name << " changed";
      ++kept;
      continue;
    }
    EXPECT_EQ(name_of(b.type), "Q8_0") << a.name;
    if (a.type == b.type) {  // the Q8_0 embedding: copied, not re-rounded
      EXPECT_TRUE(same_bytes(a, b)) << a.name << " changed";
      ++kept;
      continue;
    }
    ++converted;
    // Q8_0 rounds each value of a 32-block to a multiple of d = max|x|/127,
    // so it moves by at most d/2; d itself is stored as f16 (relative error
    // 2^-11), which moves a value of up to 127 steps by 127 * d * 2^-11 more.
    const std::vector<float> x = dequantize(a);
    const std::vector<float> y = dequantize(b);
    ASSERT_EQ(x.size(), y.size());
    for (size_t b0 = 0; b0 < x.size(); b0 += 32) {
      float amax = 0.0f;
      for (size_t j = b0; j < b0 + 32; ++j) amax = std::max(amax, std::fabs(x[j]));
      const float d = amax / 127.0f;
      const float bound = d * (0.5f + 127.0f / 2048.0f) + 1e-6f;
      for (size_t j = b0; j < b0 + 32; ++j) {
        ASSERT_LE(std::fabs(x[j] - y[j]), bound) << a.name << " value " << j;
      }
    }
  }
  EXPECT_EQ(rep.converted, converted);
  EXPECT_EQ(rep.kept, kept);
  EXPECT_GT(converted, 0);
}

// Every tensor of `out_path` has the type the mix rules give it for `spec`'s
// shapes; 1-D tensors stay F32.
void expect_mix_types(const std::string& out_path, const core::SyntheticModelSpec& spec, QuantMix mix) {
  const auto out = File::open(out_path);
  EXPECT_EQ(out->get_int("general.file_type").value_or(-1), static_cast<int64_t>(core::mix_file_type(mix)));
  const bool tied = out->find_tensor("output.weight") == nullptr;
  const core::MixModel mm{spec.n_layer, spec.n_head, spec.n_head_kv, tied};
  for (const TensorInfo& t : out->tensors()) {
    if (t.shape.size() < 2) {
      EXPECT_EQ(name_of(t.type), "F32") << t.name;
      continue;
    }
    int32_t layer = -1;
    const core::TensorRole role = core::role_of(t.name, &layer);
    EXPECT_EQ(name_of(t.type), name_of(core::tensor_type(mix, role, layer, mm, t.shape[0]))) << t.name;
  }
}

TEST_F(Requantize, MixGivesEachTensorItsRuleType) {
  core::SyntheticModelSpec spec;
  spec.n_embd = 256;  // rows divide into 256-value K-quant blocks
  spec.n_ff = 512;
  const std::string in_path = model("in.gguf", spec);
  const std::string out_path = path("q4km.gguf");
  core::RequantizeOptions o;
  o.mix = QuantMix::Q4_K_M;
  core::requantize_gguf(in_path, out_path, o);
  expect_mix_types(out_path, spec, QuantMix::Q4_K_M);
  // Tied output: the embedding doubles as the head and gets its Q6_K.
  const auto out = File::open(out_path);
  EXPECT_EQ(name_of(out->tensor("token_embd.weight").type), "Q6_K");
}

TEST_F(Requantize, MixFallsBackOnRowsThatAreNotWholeKBlocks) {
  core::SyntheticModelSpec spec;
  spec.n_embd = 96;  // 3 Q4_0 blocks per row, not a whole 256-value block
  spec.n_ff = 192;
  const std::string in_path = model("in96.gguf", spec);
  const std::string out_path = path("q4km96.gguf");
  core::RequantizeOptions o;
  o.mix = QuantMix::Q4_K_M;
  core::requantize_gguf(in_path, out_path, o);
  expect_mix_types(out_path, spec, QuantMix::Q4_K_M);
}

TEST_F(Requantize, SamePathIsRefusedAndTheInputStaysIntact) {
  const std::string in_path = model("in.gguf", {});
  const std::string before = read_file(in_path);
  core::RequantizeOptions o;
  o.type = Type::Q8_0;
  EXPECT_THROW(core::requantize_gguf(in_path, in_path, o), core::Error);
  // The same file under another spelling.
  EXPECT_THROW(core::requantize_gguf(in_path, dir_ + "/./in.gguf", o), core::Error);
  EXPECT_EQ(read_file(in_path), before);
  EXPECT_FALSE(fs::exists(in_path + ".tmp"));
}

TEST_F(Requantize, MissingInputThrowsAndWritesNothing) {
  const std::string out_path = path("out.gguf");
  core::RequantizeOptions o;
  o.type = Type::Q8_0;
  EXPECT_THROW(core::requantize_gguf(path("no-such-model.gguf"), out_path, o), core::Error);
  expect_no_output(out_path);
}

TEST_F(Requantize, RowsNotDividingIntoTheTargetBlockThrowNamingTheTensor) {
  core::SyntheticModelSpec spec;
  spec.n_embd = 96;  // Q4_K needs rows of a multiple of 256
  spec.n_ff = 192;
  const std::string in_path = model("in96.gguf", spec);
  const std::string out_path = path("q4k.gguf");
  core::RequantizeOptions o;
  o.type = Type::Q4_K;
  try {
    core::requantize_gguf(in_path, out_path, o);
    ADD_FAILURE() << "no error for 96-value rows in Q4_K";
  } catch (const core::Error& e) {
    EXPECT_NE(std::string(e.what()).find(".weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Q4_K"), std::string::npos) << e.what();
  }
  expect_no_output(out_path);
}

TEST_F(Requantize, NeedsExactlyOneTarget) {
  const std::string in_path = model("in.gguf", {});
  const std::string out_path = path("out.gguf");
  EXPECT_THROW(core::requantize_gguf(in_path, out_path, {}), core::Error);
  core::RequantizeOptions both;
  both.type = Type::Q8_0;
  both.mix = QuantMix::Q8_0;
  EXPECT_THROW(core::requantize_gguf(in_path, out_path, both), core::Error);
  expect_no_output(out_path);
}

TEST_F(Requantize, CliPrintsOneSummaryLine) {
  const std::string in_path = model("in.gguf", {});
  const std::string out_path = path("out.gguf");
  const std::string cli = shell_quote(TANDEM_CLI_PATH);
  const CommandResult ok =
      run_command(cli + " quantize " + shell_quote(in_path) + " " + shell_quote(out_path) + " --type q8_0 --threads 2");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out.rfind(out_path + ": ", 0), 0u) << ok.out;
  EXPECT_NE(ok.out.find(" tensors converted, "), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find(" MiB -> "), std::string::npos) << ok.out;
  EXPECT_EQ(std::count(ok.out.begin(), ok.out.end(), '\n'), 1) << ok.out;

  const CommandResult neither = run_command(cli + " quantize " + shell_quote(in_path) + " " + shell_quote(path("x.gguf")));
  EXPECT_EQ(neither.exit_code, 1) << neither.err;
  EXPECT_NE(neither.err.find("exactly one of --type"), std::string::npos) << neither.err;
  expect_no_output(path("x.gguf"));
}

}  // namespace
}  // namespace tandem::test
