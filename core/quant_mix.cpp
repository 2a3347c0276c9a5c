#include "core/quant_mix.h"

#include <array>
#include <cctype>
#include <charconv>
#include <string>

#include "core/error.h"

namespace tandem::core {

namespace {

using quant::Type;

struct MixInfo {
  QuantMix mix;
  std::string_view name;
  Type base;         // llama_ftype_get_default_type
  uint32_t ftype;    // llama_ftype, stored as general.file_type
};

// In enum order, so the table doubles as the list for all_mixes(). Note the
// base types that do not match the name: IQ2_S builds on IQ2_XS, IQ2_M on
// IQ2_S, IQ3_XS and IQ3_M on IQ3_S.
constexpr std::array<MixInfo, 29> kMixes{{
    {QuantMix::F16, "F16", Type::F16, 1},          {QuantMix::BF16, "BF16", Type::BF16, 32},
    {QuantMix::Q8_0, "Q8_0", Type::Q8_0, 7},       {QuantMix::Q4_0, "Q4_0", Type::Q4_0, 2},
    {QuantMix::Q4_1, "Q4_1", Type::Q4_1, 3},       {QuantMix::Q5_0, "Q5_0", Type::Q5_0, 8},
    {QuantMix::Q5_1, "Q5_1", Type::Q5_1, 9},       {QuantMix::Q6_K, "Q6_K", Type::Q6_K, 18},
    {QuantMix::Q2_K, "Q2_K", Type::Q2_K, 10},       {QuantMix::Q2_K_S, "Q2_K_S", Type::Q2_K, 21},
    {QuantMix::Q3_K_S, "Q3_K_S", Type::Q3_K, 11},   {QuantMix::Q3_K_M, "Q3_K_M", Type::Q3_K, 12},
    {QuantMix::Q3_K_L, "Q3_K_L", Type::Q3_K, 13},   {QuantMix::Q4_K_S, "Q4_K_S", Type::Q4_K, 14},
    {QuantMix::Q4_K_M, "Q4_K_M", Type::Q4_K, 15},   {QuantMix::Q5_K_S, "Q5_K_S", Type::Q5_K, 16},
    {QuantMix::Q5_K_M, "Q5_K_M", Type::Q5_K, 17},   {QuantMix::IQ2_XXS, "IQ2_XXS", Type::IQ2_XXS, 19},
    {QuantMix::IQ2_XS, "IQ2_XS", Type::IQ2_XS, 20}, {QuantMix::IQ2_S, "IQ2_S", Type::IQ2_XS, 28},
    {QuantMix::IQ2_M, "IQ2_M", Type::IQ2_S, 29},    {QuantMix::IQ3_XXS, "IQ3_XXS", Type::IQ3_XXS, 23},
    {QuantMix::IQ3_XS, "IQ3_XS", Type::IQ3_S, 22},  {QuantMix::IQ3_S, "IQ3_S", Type::IQ3_S, 26},
    {QuantMix::IQ3_M, "IQ3_M", Type::IQ3_S, 27},    {QuantMix::IQ1_S, "IQ1_S", Type::IQ1_S, 24},
    {QuantMix::IQ1_M, "IQ1_M", Type::IQ1_M, 31},    {QuantMix::IQ4_NL, "IQ4_NL", Type::IQ4_NL, 25},
    {QuantMix::IQ4_XS, "IQ4_XS", Type::IQ4_XS, 30},
}};

const MixInfo& info(QuantMix m) {
  const auto i = static_cast<size_t>(m);
  if (i >= kMixes.size() || kMixes[i].mix != m) throw Error("unknown quantization mix");
  return kMixes[i];
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(a[i])) != std::toupper(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

// ---- what the rules look at ------------------------------------------------

struct Layer {
  int32_t i;  // this layer
  int32_t n;  // layers in the model
  bool in_first_eighth() const { return i < n / 8; }
  bool in_first_sixteenth() const { return i < n / 16; }
  bool in_middle() const { return i >= n / 8 && i < 7 * n / 8; }
  // llama.cpp's use_more_bits: the first and last eighth of the layers, plus
  // every third layer in between.
  bool gets_more_bits() const { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }
};

// llama.cpp's n_gqa(): integer division, 0 without KV heads.
int32_t gqa_ratio(const MixModel& model) { return model.n_head_kv == 0 ? 0 : model.n_head / model.n_head_kv; }

// llama.cpp's LLM_TYPE_70B for the llama architecture (and Qwen2's 72B).
bool is_70b(const MixModel& model) { return model.n_layer == 80; }

// IQ1/IQ2 mixes share one block of rules that takes precedence over all the
// others for attn_v, ffn_down and attn_output.
bool is_low_bit_iq(QuantMix m) {
  switch (m) {
    case QuantMix::IQ1_S:
    case QuantMix::IQ1_M:
    case QuantMix::IQ2_XXS:
    case QuantMix::IQ2_XS:
    case QuantMix::IQ2_S:
    case QuantMix::IQ2_M:
      return true;
    default:
      return false;
  }
}

// Within that block, the two larger IQ2 mixes protect tensors with IQ3_S
// where the smaller ones use Q2_K.
Type low_bit_iq_upgrade(QuantMix m) { return m == QuantMix::IQ2_S || m == QuantMix::IQ2_M ? Type::IQ3_S : Type::Q2_K; }

// ---- per-role rules (llama_tensor_get_type_impl) ---------------------------

// The output projection, and token_embd when it doubles as the output.
Type output_type(QuantMix m, Type base, int64_t row_len) {
  if (row_len % quant::traits(base).block_size != 0) return Type::Q8_0;
  if (is_low_bit_iq(m) || m == QuantMix::IQ3_XXS) return Type::Q5_K;
  return base == Type::Q8_0 ? Type::Q8_0 : Type::Q6_K;
}

Type token_embd_type(QuantMix m, Type base) {
  switch (m) {
    case QuantMix::IQ1_S:
    case QuantMix::IQ1_M:
    case QuantMix::IQ2_XXS:
    case QuantMix::IQ2_XS:
      return Type::Q2_K;
    case QuantMix::IQ2_S:
    case QuantMix::IQ2_M:
    case QuantMix::IQ3_XXS:
      return Type::IQ3_S;
    default:
      return base;
  }
}

// attn_v before the 70B bump.
Type attn_v_rule(QuantMix m, Type base, Layer layer, bool gqa4) {
  // The low-bit IQ rules answer first.
  if (is_low_bit_iq(m)) return gqa4 ? Type::Q4_K : low_bit_iq_upgrade(m);
  switch (m) {
    case QuantMix::Q2_K:
      return gqa4 ? Type::Q4_K : Type::Q3_K;
    case QuantMix::Q2_K_S:
    case QuantMix::IQ3_XS:
    case QuantMix::IQ3_S:
      return gqa4 ? Type::Q4_K : base;
    case QuantMix::IQ3_XXS:  // without an imatrix; with one, IQ3_XXS stays when GQA < 4
      return gqa4 ? Type::Q4_K : Type::IQ3_S;
    case QuantMix::IQ3_M:
      return Type::Q4_K;
    case QuantMix::Q3_K_M:
      return layer.i < 2 ? Type::Q5_K : Type::Q4_K;
    case QuantMix::Q3_K_L:
      return Type::Q5_K;
    case QuantMix::IQ4_NL:
    case QuantMix::IQ4_XS:
      return gqa4 ? Type::Q5_K : base;
    case QuantMix::Q4_K_M:
    case QuantMix::Q5_K_M:
      return layer.gets_more_bits() ? Type::Q6_K : base;
    case QuantMix::Q4_K_S:
      return layer.i < 4 ? Type::Q5_K : base;
    default:
      return base;
  }
}

Type attn_v_type(QuantMix m, Type base, Layer layer, const MixModel& model) {
  const Type t = attn_v_rule(m, base, layer, gqa_ratio(model) >= 4);
  // 70B: attn_v is 8x smaller than attn_q (8 query heads per KV head), so
  // more bits there cost almost nothing. The low-bit IQ mixes skip this.
  if (is_70b(model) && !is_low_bit_iq(m) && (t == Type::Q3_K || t == Type::Q4_K)) return Type::Q5_K;
  return t;
}

// attn_q and attn_k follow the same rules.
Type attn_qk_type(QuantMix m, Type base) {
  if (m == QuantMix::IQ3_XS) return Type::IQ3_XXS;
  if (m == QuantMix::IQ3_XXS) return Type::IQ2_S;
  return base;
}

Type attn_output_type(QuantMix m, Type base) {
  switch (m) {
    case QuantMix::IQ1_S:
    case QuantMix::IQ1_M:
      return Type::IQ2_XXS;
    case QuantMix::IQ2_S:
    case QuantMix::IQ2_M:
      return Type::IQ3_S;
    case QuantMix::Q2_K:
      return Type::Q3_K;
    case QuantMix::IQ3_XXS:
      return Type::IQ3_S;
    case QuantMix::Q3_K_M:
      return Type::Q4_K;
    case QuantMix::Q3_K_L:
      return Type::Q5_K;
    case QuantMix::IQ3_M:
      return Type::Q4_K;
    default:
      return base;
  }
}

Type ffn_down_type(QuantMix m, Type base, Layer layer) {
  if (is_low_bit_iq(m)) return layer.in_first_eighth() ? low_bit_iq_upgrade(m) : base;
  switch (m) {
    case QuantMix::Q2_K:
      return Type::Q3_K;
    case QuantMix::Q2_K_S:
      return layer.in_first_eighth() ? Type::Q4_K : base;
    case QuantMix::IQ3_XXS:
      return layer.in_first_eighth() ? Type::Q4_K : Type::Q3_K;  // without an imatrix
    case QuantMix::Q3_K_M:
      return layer.in_first_sixteenth() ? Type::Q5_K : Type::Q4_K;
    case QuantMix::IQ3_M:
      return layer.in_first_eighth() ? Type::Q4_K : base;
    case QuantMix::Q3_K_L:
      return Type::Q5_K;
    case QuantMix::Q4_K_M:
    case QuantMix::Q5_K_M:
      return layer.gets_more_bits() ? Type::Q6_K : base;
    case QuantMix::IQ4_NL:
    case QuantMix::IQ4_XS:
      return layer.in_first_eighth() ? Type::Q5_K : base;  // without an imatrix
    case QuantMix::Q4_K_S:
      return layer.in_first_eighth() ? Type::Q5_K : base;
    default:
      return base;
  }
}

// ffn_gate and ffn_up follow the same rule.
Type ffn_gate_up_type(QuantMix m, Type base, Layer layer) {
  return m == QuantMix::IQ3_XS && layer.in_middle() ? Type::IQ3_XXS : base;
}

// ---- tensor_type_fallback --------------------------------------------------

// A type with 32-value blocks llama.cpp uses instead of `t` when a row does
// not divide into t's 256-value blocks.
Type smaller_block_substitute(Type t) {
  switch (t) {
    case Type::IQ1_S:
    case Type::IQ1_M:
    case Type::IQ2_XXS:
    case Type::IQ2_XS:
    case Type::IQ2_S:
    case Type::IQ3_XXS:
    case Type::IQ3_S:
    case Type::IQ4_XS:
      return Type::IQ4_NL;
    case Type::Q2_K:
    case Type::Q3_K:
      return Type::Q4_0;  // older llama.cpp: IQ4_NL, the same size
    case Type::Q4_K:
      return Type::Q5_0;
    case Type::Q5_K:
      return Type::Q5_1;
    case Type::Q6_K:
      return Type::Q8_0;
    default:
      // llama-quantize stops here too ("no tensor type fallback").
      throw Error("no quantization fallback for " + std::string(quant::type_name(t)) +
                  " rows that are not a multiple of its block size");
  }
}

bool fits(Type t, int64_t row_len) { return row_len % quant::traits(t).block_size == 0; }

Type with_row_fallback(Type t, int64_t row_len) {
  if (fits(t, row_len)) return t;
  const Type alt = smaller_block_substitute(t);
  // Rows not even a multiple of 32: llama.cpp gives up on quantizing.
  return fits(alt, row_len) ? alt : Type::F16;
}

bool is_layer_role(TensorRole role) {
  return role != TensorRole::TokenEmbd && role != TensorRole::Output && role != TensorRole::Other;
}

void check_arguments(TensorRole role, int32_t i_layer, const MixModel& model, int64_t row_len) {
  if (row_len <= 0) throw Error("tensor_type: row length must be positive, got " + std::to_string(row_len));
  if (model.n_layer <= 0 || model.n_head <= 0 || model.n_head_kv < 0) {
    throw Error("tensor_type: model needs n_layer > 0, n_head > 0, n_head_kv >= 0");
  }
  if (is_layer_role(role) && (i_layer < 0 || i_layer >= model.n_layer)) {
    throw Error("tensor_type: layer " + std::to_string(i_layer) + " outside [0, " + std::to_string(model.n_layer) +
                ")");
  }
}

// The rule for one role, before the row-length fallback.
Type rule_type(QuantMix m, TensorRole role, Layer layer, const MixModel& model, int64_t row_len) {
  const Type base = info(m).base;
  switch (role) {
    case TensorRole::Output:
      return output_type(m, base, row_len);
    case TensorRole::TokenEmbd:
      return model.tied_output ? output_type(m, base, row_len) : token_embd_type(m, base);
    case TensorRole::AttnV:
      return attn_v_type(m, base, layer, model);
    case TensorRole::AttnQ:
    case TensorRole::AttnK:
      return attn_qk_type(m, base);
    case TensorRole::AttnOutput:
      return attn_output_type(m, base);
    case TensorRole::FfnDown:
      return ffn_down_type(m, base, layer);
    case TensorRole::FfnGate:
    case TensorRole::FfnUp:
      return ffn_gate_up_type(m, base, layer);
    case TensorRole::Other:
      return base;
  }
  return base;
}

// Parses a non-negative decimal block index; nullopt for anything else.
std::optional<int32_t> parse_index(std::string_view digits) {
  if (digits.empty()) return std::nullopt;
  int32_t v = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || end != digits.data() + digits.size() || v < 0) return std::nullopt;
  return v;
}

TensorRole block_role(std::string_view suffix) {
  struct Entry {
    std::string_view suffix;
    TensorRole role;
  };
  static constexpr std::array<Entry, 7> kBlockRoles{{
      {"attn_q.weight", TensorRole::AttnQ},
      {"attn_k.weight", TensorRole::AttnK},
      {"attn_v.weight", TensorRole::AttnV},
      {"attn_output.weight", TensorRole::AttnOutput},
      {"ffn_gate.weight", TensorRole::FfnGate},
      {"ffn_up.weight", TensorRole::FfnUp},
      {"ffn_down.weight", TensorRole::FfnDown},
  }};
  for (const Entry& e : kBlockRoles) {
    if (e.suffix == suffix) return e.role;
  }
  return TensorRole::Other;
}

}  // namespace

std::string_view mix_name(QuantMix m) { return info(m).name; }

std::optional<QuantMix> mix_from_name(std::string_view s) {
  for (const MixInfo& e : kMixes) {
    if (iequals(e.name, s)) return e.mix;
  }
  return std::nullopt;
}

std::vector<QuantMix> all_mixes() {
  std::vector<QuantMix> out;
  out.reserve(kMixes.size());
  for (const MixInfo& e : kMixes) out.push_back(e.mix);
  return out;
}

quant::Type mix_default_type(QuantMix m) { return info(m).base; }

uint32_t mix_file_type(QuantMix m) { return info(m).ftype; }

TensorRole role_of(std::string_view tensor_name, int32_t* layer) {
  int32_t ignored = 0;
  int32_t& out_layer = layer != nullptr ? *layer : ignored;
  out_layer = -1;
  if (tensor_name == "token_embd.weight") return TensorRole::TokenEmbd;
  if (tensor_name == "output.weight") return TensorRole::Output;

  constexpr std::string_view kBlock = "blk.";
  if (!tensor_name.starts_with(kBlock)) return TensorRole::Other;
  const std::string_view rest = tensor_name.substr(kBlock.size());
  const size_t dot = rest.find('.');
  if (dot == std::string_view::npos) return TensorRole::Other;
  const std::optional<int32_t> index = parse_index(rest.substr(0, dot));
  if (!index) return TensorRole::Other;
  out_layer = *index;
  return block_role(rest.substr(dot + 1));
}

quant::Type tensor_type(QuantMix m, TensorRole role, int32_t i_layer, const MixModel& model, int64_t row_len) {
  check_arguments(role, i_layer, model, row_len);
  const Type base = info(m).base;
  // F16/BF16 files convert every weight to the base type: llama.cpp applies
  // neither the rules nor the fallback to unquantized targets.
  if (!quant::traits(base).quantized) return base;
  const Layer layer{i_layer, model.n_layer};
  return with_row_fallback(rule_type(m, role, layer, model, row_len), row_len);
}

}  // namespace tandem::core
