// SmolLM2-135M-Instruct re-quantized to i-quant file types (IQ4_NL, IQ4_XS,
// IQ3_S, IQ3_XXS), against llama.cpp: the bytes of every tensor, greedy
// tokens and perplexity. Golden: tests/data/smollm2_iquant_golden.json, made
// by tests/data/make_smollm2_iquant_golden.py (llama-cpp-python).
//
// The fixture files live in the model cache. `make fixtures` (part of `make
// test`) writes SmolLM2-135M-Instruct.IQ4_NL.gguf and .IQ4_XS.gguf with
// `tandem quantize --mix T`; the IQ3 ones only llama.cpp makes
// (make_smollm2_iquant_golden.py caches them as SmolLM2-135M-Instruct.<T>.llamacpp.gguf),
// so their tests skip without them.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <optional>

#include "core/gguf_file.h"
#include "core/perplexity.h"
#include "core/quant_mix.h"
#include "core/requantize.h"
#include "core/tokenizer.h"
#include "cpu_worker/llama_engine.h"
#include "tests/unit/engine_golden_support.h"
#include "tests/unit/test_support.h"

namespace tandem {
namespace {

using nlohmann::json;
namespace q = core::quant;

const json& golden() {
  static const json g = [] {
    const std::string p = test::source_dir() + "/tests/data/smollm2_iquant_golden.json";
    const std::string s = test::read_file(p);
    if (s.empty()) throw std::runtime_error("golden file missing: " + p);
    return json::parse(s);
  }();
  return g;
}

const json& golden_file(const std::string& ftype) {
  for (const json& f : golden()["files"])
    if (f["ftype"] == ftype) return f;
  throw std::runtime_error("no golden for " + ftype);
}

std::string crc32_hex(const uint8_t* p, uint64_t n) {
  uLong c = crc32(0L, Z_NULL, 0);
  while (n > 0) {
    const auto chunk = static_cast<uInt>(std::min<uint64_t>(n, 1u << 30));
    c = crc32(c, p, chunk);
    p += chunk;
    n -= chunk;
  }
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08lx", static_cast<unsigned long>(c));
  return buf;
}

// Types Tandem quantizes itself (`make fixtures` writes their files).
bool tandem_makes(const std::string& ftype) { return ftype == "IQ4_NL" || ftype == "IQ4_XS"; }

// SmolLM2-135M-Instruct.<T>.gguf (`make fixtures`), else the file llama.cpp
// wrote, SmolLM2-135M-Instruct.<T>.llamacpp.gguf (the golden script's cache).
std::string fixture_path(const std::string& ftype) {
  const std::string model = test::model_path_or_empty();
  if (model.empty()) return "";
  const std::string stem =
      std::filesystem::path(model).parent_path().string().append("/SmolLM2-135M-Instruct.").append(ftype);
  for (const std::string& p : {stem + ".gguf", stem + ".llamacpp.gguf"})
    if (std::filesystem::exists(p)) return p;
  return "";
}

#define TANDEM_FIXTURE_OR_SKIP(var, ftype)                                                                    \
  const std::string var = fixture_path(ftype);                                                              \
  if (var.empty()) {                                                                                        \
    if (tandem_makes(ftype) && test::model_required())                                                      \
      FAIL() << "fixture SmolLM2-135M-Instruct." << (ftype) << ".gguf missing: run `make fixtures`";        \
    GTEST_SKIP() << "SmolLM2-135M-Instruct." << (ftype)                                                     \
                 << ".gguf is not in the model cache (made by `make fixtures` for IQ4_NL/IQ4_XS, by "        \
                    "tests/data/make_smollm2_iquant_golden.py with llama-cpp-python for the others)";        \
  }

// The quantizers and mix rules against llama.cpp's file, without the cache:
// every tensor's type as llama-quantize chose it, and the bytes of the first
// block's matrices and of the last ffn_down, quantized here from the Q4_1 source.
TEST(SmolLM2IQuantFiles, QuantizerWritesLlamaCppsBytes) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  const auto src = std::shared_ptr<core::gguf::File>(core::gguf::File::open(model));
  const core::MixModel mm = core::mix_model_of(*src);
  for (const std::string ftype : {"IQ4_NL", "IQ4_XS"}) {
    SCOPED_TRACE(ftype);
    const std::optional<core::QuantMix> mix_opt = core::mix_from_name(ftype);
    ASSERT_TRUE(mix_opt.has_value()) << "no quantization mix named " << ftype;
    const core::QuantMix mix = *mix_opt;
    int checked_bytes = 0;
    for (const json& t : golden_file(ftype)["tensors"]) {
      const std::string name = t["name"];
      const core::gguf::TensorInfo& in = src->tensor(name);
      const std::optional<q::Type> want_opt = q::type_from_name(t["type"].get<std::string>());
      ASSERT_TRUE(want_opt.has_value()) << name << ": unknown type " << t["type"] << " in the golden";
      const q::Type want = *want_opt;
      if (in.shape.size() < 2) {  // norms stay as they are
        EXPECT_EQ(in.type, want) << name;
        continue;
      }
      int32_t layer = -1;
      const core::TensorRole role = core::role_of(name, &layer);
      EXPECT_EQ(core::tensor_type(mix, role, layer, mm, in.shape[0]), want) << name << ": mix rule";
      if (name.rfind("blk.0.", 0) != 0 && name != "blk.29.ffn_down.weight") continue;
      const int64_t n = in.shape[0], rows = in.rows();
      std::vector<float> row(static_cast<size_t>(n));
      std::vector<uint8_t> out(q::row_bytes(want, n) * static_cast<size_t>(rows));  // [rows][row bytes]
      for (int64_t r = 0; r < rows; ++r) {
        q::traits(in.type).to_float(in.data + q::row_bytes(in.type, n) * static_cast<size_t>(r), row.data(), n);
        q::traits(want).from_float(row.data(), out.data() + q::row_bytes(want, n) * static_cast<size_t>(r), n);
      }
      EXPECT_EQ(crc32_hex(out.data(), out.size()), t["crc32"].get<std::string>()) << name << " (" << t["type"] << ")";
      ++checked_bytes;
    }
    EXPECT_GE(checked_bytes, 8);
  }
}

class SmolLM2IQuant : public testing::TestWithParam<std::string> {};

// The cached fixture is llama.cpp's file, tensor for tensor (for IQ4_NL and
// IQ4_XS this checks the whole `tandem quantize` output).
TEST_P(SmolLM2IQuant, FixtureTensorsEqualLlamaCpps) {
  TANDEM_FIXTURE_OR_SKIP(path, GetParam());
  const auto f = std::shared_ptr<core::gguf::File>(core::gguf::File::open(path));
  const json& g = golden_file(GetParam());
  ASSERT_EQ(f->tensors().size(), g["tensors"].size());
  for (const json& t : g["tensors"]) {
    const core::gguf::TensorInfo& got = f->tensor(t["name"].get<std::string>());
    EXPECT_EQ(q::type_name(got.type), t["type"].get<std::string>()) << got.name;
    EXPECT_EQ(crc32_hex(got.data, got.size_bytes), t["crc32"].get<std::string>()) << got.name;
  }
}

using test::argmax;

// The goldens' cache: llama.cpp's flash attention over q8_0.
test::LoadedModel load(const std::string& path, int ctx) { return test::load_model(path, ctx, q::Type::Q8_0); }

// Greedy decode: 64 tokens of our own argmax, fed back, for each prompt; they
// must be llama.cpp's tokens exactly. This holds because every matmul here
// takes llama.cpp's float steps (cpu_worker/simd_dot_kquants.cpp): IQ4_NL
// and Q4_K as its repacked kernels, Q3_K, Q5_K, IQ3_S and IQ4_XS as its
// vec_dot for decode and as its tiled kernels for prompts of 8 or more
// tokens, Q4_K per pair of sub-blocks four tokens at a time (its gemm). The
// logits are then bit-identical to llama.cpp's at every step (measured on
// all four files); with any of those float orders changed they move by up
// to ~2 logits on these files and the tokens part within a few steps.
TEST_P(SmolLM2IQuant, GreedyTokensAreLlamaCpps) {
  TANDEM_FIXTURE_OR_SKIP(path, GetParam());
  const json& g = golden_file(GetParam());
  test::LoadedModel l = load(path, 1024);
  ASSERT_GE(g["cases"].size(), 4u);
  for (const json& c : g["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const auto ids = l.tok->encode(c["prompt"].get<std::string>(), false, c["chat"].get<bool>());
    ASSERT_EQ(ids, c["prompt_ids"].get<std::vector<int32_t>>()) << "prompt tokenization differs from llama.cpp";
    const auto want = c["output_ids"].get<std::vector<int32_t>>();
    ASSERT_GE(want.size(), 64u);
    std::vector<float> logits;
    l.eng->forward(ids, 0, 0, false, logits);
    int32_t pos = static_cast<int32_t>(ids.size());
    std::vector<int32_t> got;
    for (size_t i = 0; i < want.size(); ++i) {
      got.push_back(argmax(logits));
      const int32_t one[1] = {got.back()};
      l.eng->forward(one, 0, pos++, false, logits);
    }
    EXPECT_EQ(got, want) << "greedy tokens differ from llama.cpp's";
  }
}

// llama-perplexity's method on the first two chunks of the shipped text
// (the whole text, 47 chunks, takes ~5 min per file here: measured into
// docs/PERFORMANCE.md, "I-quant quality"). The logits being llama.cpp's,
// only the summation of the log-probabilities may differ.
TEST_P(SmolLM2IQuant, PerplexityOfTwoChunksIsLlamaCpps) {
  TANDEM_FIXTURE_OR_SKIP(path, GetParam());
  const json& run = golden_file(GetParam())["perplexity_q8_0"];
  const int n_ctx = 512, chunks = 2;
  const double want = run["ppl_after_chunk"][chunks - 1].get<double>();
  test::LoadedModel l = load(path, n_ctx);
  const std::string text = test::read_file(test::source_dir() + "/tests/data/kjv_genesis_1-25.txt");
  const auto tokens = l.tok->encode(text, l.tok->add_bos_default(), false);
  ASSERT_EQ(static_cast<int64_t>(tokens.size()), run["tokens"].get<int64_t>()) << "tokenization differs from llama.cpp";
  const double ppl = test::chunked_perplexity(l, tokens, n_ctx, chunks);
  EXPECT_NEAR(ppl, want, want * 1e-6) << "perplexity after " << chunks << " chunks";
  std::printf("[ iq ppl ] %s: %.6f after %d chunks (llama.cpp %.6f, %+.2e relative)\n", GetParam().c_str(), ppl, chunks,
              want, ppl / want - 1);
}

INSTANTIATE_TEST_SUITE_P(Files, SmolLM2IQuant, testing::Values("IQ4_NL", "IQ4_XS", "IQ3_S", "IQ3_XXS"),
                         [](const testing::TestParamInfo<std::string>& i) { return i.param; });

}  // namespace
}  // namespace tandem
