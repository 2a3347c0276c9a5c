#include "core/synthetic_model.h"

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/gguf_writer.h"

namespace tandem::core {

namespace {

constexpr int32_t kByteTokens = 256;

// GPT-2's byte → printable code point mapping, as UTF-8 strings.
std::vector<std::string> byte_level_tokens() {
  std::vector<int> cps(256, -1);
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    cps[b] = printable ? b : next++;
  }
  std::vector<std::string> out;
  for (int cp : cps) {
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    out.push_back(s);
  }
  return out;
}

class WeightMaker {
 public:
  explicit WeightMaker(uint64_t seed) : rng_(seed) {}

  // Random N(0, scale²) values [rows × cols], quantized row by row.
  std::vector<uint8_t> matrix(int64_t cols, int64_t rows, quant::Type type, float scale) {
    const auto& tr = quant::traits(type);
    if (tr.from_float == nullptr)
      throw Error("synthetic model: no quantizer for type " + std::string(tr.name));
    const size_t rb = quant::row_bytes(type, cols);
    std::vector<uint8_t> out(rb * static_cast<size_t>(rows));
    std::vector<float> row(cols);  // one row of f32 weights before quantization
    std::normal_distribution<float> nd(0.0f, scale);
    for (int64_t r = 0; r < rows; ++r) {
      for (auto& v : row) v = nd(rng_);
      tr.from_float(row.data(), out.data() + rb * r, cols);
    }
    return out;
  }

  std::vector<float> vector(int64_t n, float mean, float spread) {
    std::uniform_real_distribution<float> ud(mean - spread, mean + spread);
    std::vector<float> v(n);
    for (auto& x : v) x = ud(rng_);
    return v;
  }

 private:
  std::mt19937_64 rng_;
};

}  // namespace

void write_synthetic_model(const std::string& path, const SyntheticModelSpec& s) {
  if (s.n_head <= 0 || s.n_head_kv <= 0 || s.n_head % s.n_head_kv != 0 || s.n_embd % s.n_head != 0)
    throw Error("synthetic model: heads must divide n_embd and n_head_kv must divide n_head");
  const int32_t head_dim = s.n_embd / s.n_head;
  const int32_t kv_dim = head_dim * s.n_head_kv;
  gguf::Writer w;
  const std::string a = s.arch;
  w.set_string("general.architecture", a);
  w.set_string("general.name", "tandem-synthetic");
  w.set_u32(a + ".block_count", s.n_layer);
  w.set_u32(a + ".context_length", s.n_ctx_train);
  w.set_u32(a + ".embedding_length", s.n_embd);
  w.set_u32(a + ".feed_forward_length", s.n_ff);
  w.set_u32(a + ".attention.head_count", s.n_head);
  w.set_u32(a + ".attention.head_count_kv", s.n_head_kv);
  w.set_f32(a + ".rope.freq_base", s.rope_freq_base);
  w.set_f32(a + ".attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_u32("general.file_type", 0);

  std::vector<std::string> tokens = byte_level_tokens();
  tokens.push_back("<|endoftext|>");
  std::vector<int32_t> types(tokens.size(), 1);
  types.back() = 3;  // control
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "gpt2");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_string_array("tokenizer.ggml.merges", {});
  w.set_u32("tokenizer.ggml.bos_token_id", kByteTokens);
  w.set_u32("tokenizer.ggml.eos_token_id", kByteTokens);
  w.set_bool("tokenizer.ggml.add_bos_token", false);
  const int64_t n_vocab = static_cast<int64_t>(tokens.size());
  WeightMaker m(s.seed);
  auto add = [&](const std::string& name, std::vector<int64_t> shape, quant::Type t, const std::vector<uint8_t>& d) {
    w.add_tensor(name, shape, t, d.data(), d.size());
  };
  auto add_f32 = [&](const std::string& name, const std::vector<float>& v) {
    w.add_tensor(name, {static_cast<int64_t>(v.size())}, quant::Type::F32, v.data(), v.size() * sizeof(float));
  };
  const float in_scale = 1.0f / std::sqrt(static_cast<float>(s.n_embd));
  add("token_embd.weight", {s.n_embd, n_vocab}, s.embd_type, m.matrix(s.n_embd, n_vocab, s.embd_type, 1.0f));
  add_f32("output_norm.weight", m.vector(s.n_embd, 1.0f, 0.1f));
  if (!s.rope_freqs.empty()) {
    if (static_cast<int32_t>(s.rope_freqs.size()) != head_dim / 2)
      throw Error("synthetic model: rope_freqs needs head_dim/2 = " + std::to_string(head_dim / 2) + " values");
    add_f32("rope_freqs.weight", s.rope_freqs);
  }
  if (!s.tied_output)
    add("output.weight", {s.n_embd, n_vocab}, s.weight_type, m.matrix(s.n_embd, n_vocab, s.weight_type, in_scale));
  for (int32_t l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add_f32(p + "attn_norm.weight", m.vector(s.n_embd, 1.0f, 0.1f));
    add(p + "attn_q.weight", {s.n_embd, s.n_embd}, s.weight_type, m.matrix(s.n_embd, s.n_embd, s.weight_type, in_scale));
    add(p + "attn_k.weight", {s.n_embd, kv_dim}, s.weight_type, m.matrix(s.n_embd, kv_dim, s.weight_type, in_scale));
    add(p + "attn_v.weight", {s.n_embd, kv_dim}, s.weight_type, m.matrix(s.n_embd, kv_dim, s.weight_type, in_scale));
    add(p + "attn_output.weight", {s.n_embd, s.n_embd}, s.weight_type, m.matrix(s.n_embd, s.n_embd, s.weight_type, in_scale));
    if (s.arch == "qwen2") {
      add_f32(p + "attn_q.bias", m.vector(s.n_embd, 0.0f, 0.1f));
      add_f32(p + "attn_k.bias", m.vector(kv_dim, 0.0f, 0.1f));
      add_f32(p + "attn_v.bias", m.vector(kv_dim, 0.0f, 0.1f));
    }
    add_f32(p + "ffn_norm.weight", m.vector(s.n_embd, 1.0f, 0.1f));
    add(p + "ffn_gate.weight", {s.n_embd, s.n_ff}, s.weight_type, m.matrix(s.n_embd, s.n_ff, s.weight_type, in_scale));
    add(p + "ffn_up.weight", {s.n_embd, s.n_ff}, s.weight_type, m.matrix(s.n_embd, s.n_ff, s.weight_type, in_scale));
    add(p + "ffn_down.weight", {s.n_ff, s.n_embd}, s.weight_type,
        m.matrix(s.n_ff, s.n_embd, s.weight_type, 1.0f / std::sqrt(static_cast<float>(s.n_ff))));
  }
  w.write(path);
}

}  // namespace tandem::core
