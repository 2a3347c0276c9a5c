// Quantization mixes: tensor-name parsing, the per-tensor type rules of
// llama-quantize, and the file sizes they add up to for published models.
// The sizes and the rule checks come from outside this code (published GGUF
// sizes, reading llama.cpp's llama-quant.cpp, a real file made by llama.cpp),
// so a wrong rule shows up as a wrong number, not as a restated branch.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/gguf_file.h"
#include "core/quant_mix.h"
#include "core/quant_types.h"
#include "tests/unit/test_support.h"

// Failures print "Q4_K" rather than the enum's bytes.
namespace tandem::core::quant {
void PrintTo(Type t, std::ostream* os) { *os << type_name(t); }
}  // namespace tandem::core::quant

namespace tandem::test {
namespace {

using core::MixModel;
using core::QuantMix;
using core::TensorRole;
using core::quant::Type;

// ---- a dense llama-architecture model, tensor by tensor --------------------

struct Dims {
  int32_t n_layer;
  int32_t n_head;
  int32_t n_head_kv;
  int64_t d_model;
  int64_t d_ff;
  int64_t vocab;
  bool tied_output;

  MixModel mix_model() const { return {n_layer, n_head, n_head_kv, tied_output}; }
  int64_t d_kv() const { return d_model / n_head * n_head_kv; }
};

// A 2-D weight: rows of row_len values (ggml ne[0]), `rows` of them.
struct Weight {
  TensorRole role;
  int32_t layer;
  int64_t row_len;
  int64_t rows;
};

std::vector<Weight> weights_of(const Dims& d) {
  std::vector<Weight> w;
  w.push_back({TensorRole::TokenEmbd, -1, d.d_model, d.vocab});
  if (!d.tied_output) w.push_back({TensorRole::Output, -1, d.d_model, d.vocab});
  for (int32_t il = 0; il < d.n_layer; ++il) {
    w.push_back({TensorRole::AttnQ, il, d.d_model, d.d_model});
    w.push_back({TensorRole::AttnK, il, d.d_model, d.d_kv()});
    w.push_back({TensorRole::AttnV, il, d.d_model, d.d_kv()});
    w.push_back({TensorRole::AttnOutput, il, d.d_model, d.d_model});
    w.push_back({TensorRole::FfnGate, il, d.d_model, d.d_ff});
    w.push_back({TensorRole::FfnUp, il, d.d_model, d.d_ff});
    w.push_back({TensorRole::FfnDown, il, d.d_ff, d.d_model});
  }
  return w;
}

// Tensor data bytes of the whole file (metadata and alignment padding are
// small enough to ignore at these sizes): the weights plus the F32 norms,
// two per layer and the final one.
double file_gib(QuantMix m, const Dims& d) {
  double bytes = 0;
  for (const Weight& w : weights_of(d)) {
    const Type t = core::tensor_type(m, w.role, w.layer, d.mix_model(), w.row_len);
    bytes += static_cast<double>(core::quant::row_bytes(t, w.row_len)) * static_cast<double>(w.rows);
  }
  bytes += static_cast<double>(2 * d.n_layer + 1) * static_cast<double>(d.d_model) * 4.0;
  return bytes / (1024.0 * 1024.0 * 1024.0);
}

constexpr Dims kLlama3_70B{80, 64, 8, 8192, 28672, 128256, false};
constexpr Dims kLlama3_8B{32, 32, 8, 4096, 14336, 128256, false};
constexpr Dims kSmolLM2_135M{30, 9, 3, 576, 1536, 49152, true};

// Llama-2-7B: multi-head attention (GQA ratio 1), 32 layers.
const MixModel kMha32{32, 32, 32, false};
const MixModel kLlama70{80, 64, 8, false};
const MixModel kLlama8{32, 32, 8, false};

Type type_of(QuantMix m, TensorRole role, int32_t layer, const MixModel& model, int64_t row_len = 4096) {
  return core::tensor_type(m, role, layer, model, row_len);
}

std::string name(Type t) { return std::string(core::quant::type_name(t)); }

// ---- names -------------------------------------------------------------------

TEST(QuantMix, RoleOfParsesBlockTensorsAndLayer) {
  const std::map<std::string, std::pair<TensorRole, int32_t>> cases = {
      {"token_embd.weight", {TensorRole::TokenEmbd, -1}},
      {"output.weight", {TensorRole::Output, -1}},
      {"blk.0.attn_q.weight", {TensorRole::AttnQ, 0}},
      {"blk.3.attn_v.weight", {TensorRole::AttnV, 3}},
      {"blk.17.attn_k.weight", {TensorRole::AttnK, 17}},
      {"blk.79.attn_output.weight", {TensorRole::AttnOutput, 79}},
      {"blk.5.ffn_gate.weight", {TensorRole::FfnGate, 5}},
      {"blk.5.ffn_up.weight", {TensorRole::FfnUp, 5}},
      {"blk.123.ffn_down.weight", {TensorRole::FfnDown, 123}},
  };
  for (const auto& [tensor, expected] : cases) {
    int32_t layer = -7;
    EXPECT_EQ(core::role_of(tensor, &layer), expected.first) << tensor;
    EXPECT_EQ(layer, expected.second) << tensor;
  }
}

TEST(QuantMix, RoleOfUnknownNamesAreOther) {
  const std::map<std::string, int32_t> cases = {
      {"blk.3.attn_norm.weight", 3},  // a norm: block index, but not a quantized role
      {"blk.3.attn_q.bias", 3},       // Qwen2 bias: 1-D, stays F32
      {"blk.3.ffn_down_exps.weight", 3},
      {"output_norm.weight", -1},
      {"rope_freqs.weight", -1},
      {"token_embd.weight.extra", -1},
      {"blk.x.attn_q.weight", -1},
      {"blk..attn_q.weight", -1},
      {"blk.-1.attn_q.weight", -1},
      {"blk.3", -1},
      {"", -1},
  };
  for (const auto& [tensor, layer_expected] : cases) {
    int32_t layer = -7;
    EXPECT_EQ(core::role_of(tensor, &layer), TensorRole::Other) << tensor;
    EXPECT_EQ(layer, layer_expected) << tensor;
  }
  EXPECT_EQ(core::role_of("blk.2.ffn_up.weight", nullptr), TensorRole::FfnUp);
}

TEST(QuantMix, MixNamesRoundTripCaseInsensitively) {
  const std::vector<QuantMix> mixes = core::all_mixes();
  EXPECT_EQ(mixes.size(), 29u);
  for (QuantMix m : mixes) {
    const std::string n(core::mix_name(m));
    EXPECT_EQ(core::mix_from_name(n), m) << n;
    std::string lower = n;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    EXPECT_EQ(core::mix_from_name(lower), m) << lower;
  }
  EXPECT_EQ(core::mix_name(QuantMix::Q4_K_M), "Q4_K_M");
  EXPECT_EQ(core::mix_from_name("iq2_xxs"), QuantMix::IQ2_XXS);
  EXPECT_FALSE(core::mix_from_name("Q4_K_X").has_value());
  EXPECT_FALSE(core::mix_from_name("Q4_K").has_value());  // a type, not a file type
  EXPECT_FALSE(core::mix_from_name("").has_value());
}

TEST(QuantMix, DefaultTypesIncludeTheOnesThatDoNotMatchTheName) {
  EXPECT_EQ(core::mix_default_type(QuantMix::Q4_K_M), Type::Q4_K);
  EXPECT_EQ(core::mix_default_type(QuantMix::Q3_K_L), Type::Q3_K);
  EXPECT_EQ(core::mix_default_type(QuantMix::Q2_K_S), Type::Q2_K);
  EXPECT_EQ(core::mix_default_type(QuantMix::IQ2_S), Type::IQ2_XS);
  EXPECT_EQ(core::mix_default_type(QuantMix::IQ2_M), Type::IQ2_S);
  EXPECT_EQ(core::mix_default_type(QuantMix::IQ3_XS), Type::IQ3_S);
  EXPECT_EQ(core::mix_default_type(QuantMix::IQ3_M), Type::IQ3_S);
  EXPECT_EQ(core::mix_default_type(QuantMix::BF16), Type::BF16);
}

// ---- sizes of published files ------------------------------------------------

struct Published {
  QuantMix mix;
  double gib;
};

void expect_sizes(const Dims& d, const std::vector<Published>& published, double tolerance) {
  for (const Published& p : published) {
    const double got = file_gib(p.mix, d);
    EXPECT_NEAR(got, p.gib, p.gib * tolerance) << core::mix_name(p.mix) << ": computed " << got << " GiB";
  }
}

// Published sizes include metadata (mostly the tokenizer, a few MiB) that we
// leave out, so the computed sizes land a little under them (by under 0.2%).
// At 0.5% a wrong ffn_down, output or token_embd rule fails; attn_v is too
// small a part of a GQA model to show in the total and has its own checks
// below.
TEST(QuantMix, Llama3_70BFileSizesMatchPublishedFiles) {
  expect_sizes(kLlama3_70B,
               {{QuantMix::Q4_K_M, 39.60},
                {QuantMix::Q3_K_M, 31.91},
                {QuantMix::IQ2_M, 22.46},
                {QuantMix::IQ2_XXS, 17.79},
                {QuantMix::F16, 131.43}},
               0.005);
}

TEST(QuantMix, Llama3_8BFileSizesMatchPublishedFiles) {
  // 4.92 GB and 8.54 GB as published, in GiB.
  expect_sizes(kLlama3_8B, {{QuantMix::Q4_K_M, 4.58}, {QuantMix::Q8_0, 7.95}}, 0.005);
}

TEST(QuantMix, MixesOrderBySizeAsTheirNamesPromise) {
  const std::vector<QuantMix> ladder = {QuantMix::IQ1_S,  QuantMix::IQ2_XXS, QuantMix::IQ2_M,  QuantMix::Q2_K,
                                        QuantMix::Q3_K_S, QuantMix::Q3_K_M,  QuantMix::Q3_K_L, QuantMix::Q4_K_S,
                                        QuantMix::Q4_K_M, QuantMix::Q5_K_S,  QuantMix::Q5_K_M, QuantMix::Q6_K,
                                        QuantMix::Q8_0,   QuantMix::F16};
  for (size_t i = 1; i < ladder.size(); ++i) {
    EXPECT_LT(file_gib(ladder[i - 1], kLlama3_70B), file_gib(ladder[i], kLlama3_70B))
        << core::mix_name(ladder[i - 1]) << " vs " << core::mix_name(ladder[i]);
  }
}

// ---- individual rules, as read in llama.cpp's llama_tensor_get_type ---------

TEST(QuantMix, Q4_K_M_AttnVGetsMoreBitsInSomeLayersAndQ5_KFor70B) {
  // use_more_bits for 32 layers: the first and last 4, and every third layer
  // from 6 on in between.
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::AttnV, 0, kLlama8), Type::Q6_K);
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::AttnV, 3, kLlama8), Type::Q6_K);
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::AttnV, 4, kLlama8), Type::Q4_K);
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::AttnV, 5, kLlama8), Type::Q4_K);
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::AttnV, 6, kLlama8), Type::Q6_K);
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::AttnV, 26, kLlama8), Type::Q4_K);
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::AttnV, 27, kLlama8), Type::Q6_K);
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::AttnV, 28, kLlama8), Type::Q6_K);
  // 80 layers: layers 0..9 are the first eighth; layer 10 would be Q4_K but
  // the 70B rule lifts it to Q5_K. Layer 12 is a "third" layer.
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::AttnV, 0, kLlama70), Type::Q6_K);
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::AttnV, 9, kLlama70), Type::Q6_K);
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::AttnV, 10, kLlama70), Type::Q5_K);
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::AttnV, 12, kLlama70), Type::Q6_K);
  // Other roles keep the base type; the output gets Q6_K, the untied
  // token embedding the base.
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::AttnQ, 10, kLlama70), Type::Q4_K);
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::FfnUp, 10, kLlama70), Type::Q4_K);
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::Output, -1, kLlama70), Type::Q6_K);
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::TokenEmbd, -1, kLlama70), Type::Q4_K);
}

TEST(QuantMix, Q4_K_M_GivesHalfOfA32LayerModelsFfnDownQ6_K) {
  int q6 = 0;
  for (int32_t il = 0; il < 32; ++il) {
    const Type t = type_of(QuantMix::Q4_K_M, TensorRole::FfnDown, il, kLlama8, 14336);
    EXPECT_TRUE(t == Type::Q6_K || t == Type::Q4_K) << il << ": " << name(t);
    q6 += t == Type::Q6_K;
  }
  EXPECT_EQ(q6, 16);  // 4 first + 4 last + layers 6, 9, ..., 27
}

TEST(QuantMix, Q3_K_MRules) {
  // ffn_down: the first sixteenth Q5_K, the rest Q4_K (never the base Q3_K).
  EXPECT_EQ(type_of(QuantMix::Q3_K_M, TensorRole::FfnDown, 0, kLlama70), Type::Q5_K);
  EXPECT_EQ(type_of(QuantMix::Q3_K_M, TensorRole::FfnDown, 4, kLlama70), Type::Q5_K);
  EXPECT_EQ(type_of(QuantMix::Q3_K_M, TensorRole::FfnDown, 5, kLlama70), Type::Q4_K);
  EXPECT_EQ(type_of(QuantMix::Q3_K_M, TensorRole::FfnDown, 79, kLlama70), Type::Q4_K);
  // attn_v: Q5_K for the first two, Q4_K after (Q5_K again for 70B).
  EXPECT_EQ(type_of(QuantMix::Q3_K_M, TensorRole::AttnV, 1, kLlama8), Type::Q5_K);
  EXPECT_EQ(type_of(QuantMix::Q3_K_M, TensorRole::AttnV, 2, kLlama8), Type::Q4_K);
  EXPECT_EQ(type_of(QuantMix::Q3_K_M, TensorRole::AttnV, 2, kLlama70), Type::Q5_K);
  EXPECT_EQ(type_of(QuantMix::Q3_K_M, TensorRole::AttnOutput, 2, kLlama8), Type::Q4_K);
  EXPECT_EQ(type_of(QuantMix::Q3_K_M, TensorRole::AttnQ, 2, kLlama8), Type::Q3_K);
  EXPECT_EQ(type_of(QuantMix::Q3_K_M, TensorRole::Output, -1, kLlama8), Type::Q6_K);
}

TEST(QuantMix, SeventyBillionRuleOnlyLiftsQ3_KAndQ4_KAttnV) {
  // Q3_K_S has no attn_v rule of its own: Q3_K for 8B, Q5_K for 70B.
  EXPECT_EQ(type_of(QuantMix::Q3_K_S, TensorRole::AttnV, 20, kLlama8), Type::Q3_K);
  EXPECT_EQ(type_of(QuantMix::Q3_K_S, TensorRole::AttnV, 40, kLlama70), Type::Q5_K);
  // Q2_K stays below the bump; the low-bit IQ rules skip it entirely.
  EXPECT_EQ(type_of(QuantMix::Q4_0, TensorRole::AttnV, 40, kLlama70), Type::Q4_0);
  EXPECT_EQ(type_of(QuantMix::IQ2_XXS, TensorRole::AttnV, 40, kLlama70), Type::Q4_K);
  EXPECT_EQ(type_of(QuantMix::Q2_K, TensorRole::AttnV, 40, kLlama70), Type::Q5_K);  // Q4_K (GQA 8), lifted
  // 79 layers is not a 70B model.
  EXPECT_EQ(type_of(QuantMix::Q3_K_S, TensorRole::AttnV, 40, MixModel{79, 64, 8}), Type::Q3_K);
}

TEST(QuantMix, GqaDecidesAttnVForLowBitMixes) {
  EXPECT_EQ(type_of(QuantMix::Q2_K, TensorRole::AttnV, 5, kMha32), Type::Q3_K);
  EXPECT_EQ(type_of(QuantMix::Q2_K, TensorRole::AttnV, 5, kLlama8), Type::Q4_K);
  EXPECT_EQ(type_of(QuantMix::Q2_K_S, TensorRole::AttnV, 5, kMha32), Type::Q2_K);
  EXPECT_EQ(type_of(QuantMix::IQ2_XS, TensorRole::AttnV, 5, kMha32), Type::Q2_K);
  EXPECT_EQ(type_of(QuantMix::IQ2_M, TensorRole::AttnV, 5, kMha32), Type::IQ3_S);
  EXPECT_EQ(type_of(QuantMix::IQ2_M, TensorRole::AttnV, 5, kLlama8), Type::Q4_K);
  EXPECT_EQ(type_of(QuantMix::IQ4_XS, TensorRole::AttnV, 5, kMha32), Type::IQ4_XS);
  EXPECT_EQ(type_of(QuantMix::IQ4_XS, TensorRole::AttnV, 5, kLlama8), Type::Q5_K);
  // GQA ratio 3 (SmolLM2: 9 heads over 3) is below the threshold of 4.
  EXPECT_EQ(type_of(QuantMix::IQ3_S, TensorRole::AttnV, 5, MixModel{30, 9, 3, true}, 576), Type::IQ4_NL);
  EXPECT_EQ(type_of(QuantMix::IQ3_S, TensorRole::AttnV, 5, kLlama8), Type::Q4_K);
}

TEST(QuantMix, LowBitIqMixesProtectEmbeddingsOutputAndEarlyFfnDown) {
  EXPECT_EQ(type_of(QuantMix::IQ2_XXS, TensorRole::TokenEmbd, -1, kLlama70), Type::Q2_K);
  EXPECT_EQ(type_of(QuantMix::IQ2_M, TensorRole::TokenEmbd, -1, kLlama70), Type::IQ3_S);
  EXPECT_EQ(type_of(QuantMix::IQ2_XXS, TensorRole::Output, -1, kLlama70), Type::Q5_K);
  EXPECT_EQ(type_of(QuantMix::IQ3_XXS, TensorRole::Output, -1, kLlama70), Type::Q5_K);
  EXPECT_EQ(type_of(QuantMix::IQ3_XS, TensorRole::Output, -1, kLlama70), Type::Q6_K);
  EXPECT_EQ(type_of(QuantMix::IQ2_XXS, TensorRole::FfnDown, 9, kLlama70, 28672), Type::Q2_K);
  EXPECT_EQ(type_of(QuantMix::IQ2_XXS, TensorRole::FfnDown, 10, kLlama70, 28672), Type::IQ2_XXS);
  EXPECT_EQ(type_of(QuantMix::IQ2_M, TensorRole::FfnDown, 9, kLlama70, 28672), Type::IQ3_S);
  EXPECT_EQ(type_of(QuantMix::IQ2_M, TensorRole::FfnDown, 10, kLlama70, 28672), Type::IQ2_S);
  EXPECT_EQ(type_of(QuantMix::IQ1_M, TensorRole::AttnOutput, 10, kLlama70), Type::IQ2_XXS);
  EXPECT_EQ(type_of(QuantMix::IQ2_S, TensorRole::AttnOutput, 10, kLlama70), Type::IQ3_S);
  EXPECT_EQ(type_of(QuantMix::IQ2_XS, TensorRole::AttnOutput, 10, kLlama70), Type::IQ2_XS);
}

TEST(QuantMix, Iq3MixesShiftBitsBetweenTensors) {
  EXPECT_EQ(type_of(QuantMix::IQ3_XS, TensorRole::AttnQ, 0, kLlama8), Type::IQ3_XXS);
  EXPECT_EQ(type_of(QuantMix::IQ3_XS, TensorRole::AttnK, 0, kLlama8), Type::IQ3_XXS);
  EXPECT_EQ(type_of(QuantMix::IQ3_XS, TensorRole::FfnGate, 3, kLlama8), Type::IQ3_S);  // first eighth
  EXPECT_EQ(type_of(QuantMix::IQ3_XS, TensorRole::FfnUp, 4, kLlama8), Type::IQ3_XXS);  // middle
  EXPECT_EQ(type_of(QuantMix::IQ3_XS, TensorRole::FfnUp, 28, kLlama8), Type::IQ3_S);   // last eighth
  EXPECT_EQ(type_of(QuantMix::IQ3_XXS, TensorRole::AttnQ, 0, kLlama8), Type::IQ2_S);
  EXPECT_EQ(type_of(QuantMix::IQ3_XXS, TensorRole::TokenEmbd, -1, kLlama8), Type::IQ3_S);
  EXPECT_EQ(type_of(QuantMix::IQ3_XXS, TensorRole::AttnV, 0, kMha32), Type::IQ3_S);
  EXPECT_EQ(type_of(QuantMix::IQ3_XXS, TensorRole::FfnDown, 3, kLlama8, 14336), Type::Q4_K);
  EXPECT_EQ(type_of(QuantMix::IQ3_XXS, TensorRole::FfnDown, 4, kLlama8, 14336), Type::Q3_K);
  EXPECT_EQ(type_of(QuantMix::IQ3_M, TensorRole::AttnV, 0, kMha32), Type::Q4_K);
  EXPECT_EQ(type_of(QuantMix::IQ3_M, TensorRole::AttnOutput, 0, kMha32), Type::Q4_K);
}

TEST(QuantMix, LegacyAndWideMixesOnlyChangeTheOutput) {
  for (QuantMix m : {QuantMix::Q4_0, QuantMix::Q4_1, QuantMix::Q5_0, QuantMix::Q5_1}) {
    EXPECT_EQ(type_of(m, TensorRole::Output, -1, kLlama8), Type::Q6_K) << core::mix_name(m);
    for (TensorRole r : {TensorRole::AttnV, TensorRole::FfnDown, TensorRole::AttnOutput, TensorRole::FfnUp}) {
      EXPECT_EQ(type_of(m, r, 0, kLlama8), core::mix_default_type(m)) << core::mix_name(m);
    }
  }
  EXPECT_EQ(type_of(QuantMix::Q8_0, TensorRole::Output, -1, kLlama8), Type::Q8_0);
  EXPECT_EQ(type_of(QuantMix::Q6_K, TensorRole::Output, -1, kLlama8), Type::Q6_K);
  EXPECT_EQ(type_of(QuantMix::F16, TensorRole::Output, -1, kLlama8), Type::F16);
  EXPECT_EQ(type_of(QuantMix::BF16, TensorRole::TokenEmbd, -1, kLlama8, 577), Type::BF16);
}

TEST(QuantMix, TiedTokenEmbeddingTakesTheOutputType) {
  MixModel tied = kLlama8;
  tied.tied_output = true;
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::TokenEmbd, -1, tied), Type::Q6_K);
  EXPECT_EQ(type_of(QuantMix::IQ2_XXS, TensorRole::TokenEmbd, -1, tied), Type::Q5_K);
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::TokenEmbd, -1, kLlama8), Type::Q4_K);
}

// ---- rows that do not divide into blocks ----------------------------------------

TEST(QuantMix, Rows576FallBackToSmallerBlocksLikeSmolLM2) {
  const MixModel smol = kSmolLM2_135M.mix_model();
  // 576 = 18 x 32 but not a multiple of 256.
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::AttnQ, 10, smol, 576), Type::Q5_0);  // Q4_K
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::AttnV, 0, smol, 576), Type::Q8_0);   // Q6_K
  EXPECT_EQ(type_of(QuantMix::Q5_K_S, TensorRole::AttnQ, 10, smol, 576), Type::Q5_1);  // Q5_K
  EXPECT_EQ(type_of(QuantMix::IQ2_XXS, TensorRole::AttnQ, 10, smol, 576), Type::IQ4_NL);
  EXPECT_EQ(type_of(QuantMix::IQ4_XS, TensorRole::AttnQ, 10, smol, 576), Type::IQ4_NL);
  EXPECT_EQ(type_of(QuantMix::Q2_K, TensorRole::FfnUp, 10, smol, 576), Type::Q4_0);
  EXPECT_EQ(type_of(QuantMix::Q3_K_S, TensorRole::FfnUp, 10, smol, 576), Type::Q4_0);
  // ffn_down rows are 1536 = 6 x 256: no fallback, the rule stands.
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::FfnDown, 0, smol, 1536), Type::Q6_K);
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::FfnDown, 4, smol, 1536), Type::Q4_K);
  // The (tied) output goes straight to Q8_0 when the base type does not fit,
  // and via Q6_K's fallback when it does (Q4_0: 32-value blocks).
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::TokenEmbd, -1, smol, 576), Type::Q8_0);
  EXPECT_EQ(type_of(QuantMix::IQ2_XXS, TensorRole::Output, -1, smol, 576), Type::Q8_0);
  EXPECT_EQ(type_of(QuantMix::Q4_0, TensorRole::TokenEmbd, -1, smol, 576), Type::Q8_0);
}

TEST(QuantMix, RowsNotAMultipleOf32FallBackToF16OrAreRefused) {
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::AttnQ, 0, kLlama8, 100), Type::F16);
  EXPECT_EQ(type_of(QuantMix::IQ2_XXS, TensorRole::FfnUp, 5, kLlama8, 100), Type::F16);
  // No fallback exists for 32-value types: llama-quantize stops.
  EXPECT_THROW(type_of(QuantMix::Q8_0, TensorRole::AttnQ, 0, kLlama8, 100), core::Error);
  EXPECT_THROW(type_of(QuantMix::Q4_0, TensorRole::AttnQ, 0, kLlama8, 100), core::Error);
  EXPECT_THROW(type_of(QuantMix::IQ4_NL, TensorRole::AttnQ, 0, kLlama8, 100), core::Error);
  EXPECT_THROW(type_of(QuantMix::Q4_K_M, TensorRole::Output, -1, kLlama8, 100), core::Error);  // Q8_0
  // Unquantized files take any row.
  EXPECT_EQ(type_of(QuantMix::F16, TensorRole::AttnQ, 0, kLlama8, 100), Type::F16);
}

TEST(QuantMix, RejectsBadArguments) {
  EXPECT_THROW(type_of(QuantMix::Q4_K_M, TensorRole::AttnV, 32, kLlama8), core::Error);
  EXPECT_THROW(type_of(QuantMix::Q4_K_M, TensorRole::FfnDown, -1, kLlama8), core::Error);
  EXPECT_THROW(type_of(QuantMix::Q4_K_M, TensorRole::AttnQ, 0, kLlama8, 0), core::Error);
  EXPECT_THROW(type_of(QuantMix::Q4_K_M, TensorRole::AttnQ, 0, MixModel{0, 32, 8}), core::Error);
  EXPECT_THROW(core::mix_name(static_cast<QuantMix>(99)), core::Error);
  // Non-layer roles ignore the layer.
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::Output, 7, kLlama8), Type::Q6_K);
  EXPECT_EQ(type_of(QuantMix::Q4_K_M, TensorRole::Other, -1, kLlama8), Type::Q4_K);
}

// ---- a file llama.cpp made -----------------------------------------------------

// The default model was quantized to Q4_1 by llama-quantize: every 2-D
// tensor's type must be what the rules say (the tied token_embd.weight is the
// interesting one: Q8_0 through the output rule and Q6_K's row fallback).
TEST(QuantMix, DefaultModelFileMatchesTheRules) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(path);
  const auto file = core::gguf::File::open(path);
  const MixModel model{static_cast<int32_t>(file->get_int("llama.block_count").value()),
                       static_cast<int32_t>(file->get_int("llama.attention.head_count").value()),
                       static_cast<int32_t>(file->get_int("llama.attention.head_count_kv").value()),
                       file->find_tensor("output.weight") == nullptr};
  ASSERT_TRUE(model.tied_output);
  int checked = 0;
  for (const core::gguf::TensorInfo& t : file->tensors()) {
    if (t.shape.size() < 2) {
      EXPECT_EQ(t.type, Type::F32) << t.name;
      continue;
    }
    int32_t layer = -1;
    const TensorRole role = core::role_of(t.name, &layer);
    EXPECT_EQ(name(core::tensor_type(QuantMix::Q4_1, role, layer, model, t.shape[0])), name(t.type)) << t.name;
    ++checked;
  }
  EXPECT_EQ(checked, 1 + 7 * model.n_layer);
}

}  // namespace
}  // namespace tandem::test
