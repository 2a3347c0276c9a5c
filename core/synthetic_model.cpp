#include "core/synthetic_model.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/gguf_writer.h"
#include "core/quant_random_blocks.h"

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

uint64_t mix64(uint64_t x) {  // splitmix64 finalizer: decorrelates nearby seeds
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

class WeightMaker {
 public:
  WeightMaker(uint64_t seed, int threads)
      : seed_(seed), threads_(threads > 0 ? threads : std::max(1u, std::thread::hardware_concurrency())) {}

  // Random N(0, scale²) values [rows × cols], quantized row by row. Row r of
  // the k-th matrix draws from its own generator seeded by (seed, k, r), so
  // rows can be made on any thread and the file stays the same.
  std::vector<uint8_t> matrix(int64_t cols, int64_t rows, quant::Type type, float scale) {
    const auto& tr = quant::traits(type);
    // I-quants are random valid blocks (every bit pattern is a block), even
    // IQ4_NL / IQ4_XS that have a quantizer: the llama.cpp goldens of
    // synthetic i-quant models were made from such files.
    const bool random_blocks = quant::random_rows_supported(type);
    if (tr.from_float == nullptr && !random_blocks)
      throw Error("synthetic model: no quantizer for type " + std::string(tr.name));
    const size_t rb = quant::row_bytes(type, cols);
    const uint64_t mseed = mix64(seed_ ^ mix64(++matrices_));
    std::vector<uint8_t> out(rb * static_cast<size_t>(rows));
    auto work = [&](int64_t r0, int64_t r1) {
      std::vector<float> row(cols);  // one row of f32 weights before quantization
      for (int64_t r = r0; r < r1; ++r) {
        std::mt19937_64 rng(mix64(mseed + static_cast<uint64_t>(r)));
        if (random_blocks) {
          quant::random_valid_row(type, rng, scale, out.data() + rb * r, cols);
          continue;
        }
        std::normal_distribution<float> nd(0.0f, scale);
        for (auto& v : row) v = nd(rng);
        tr.from_float(row.data(), out.data() + rb * r, cols);
      }
    };
    const int64_t nt = std::min<int64_t>(threads_, std::max<int64_t>(1, rows / 64));
    std::vector<std::thread> pool;
    for (int64_t t = 1; t < nt; ++t) pool.emplace_back(work, rows * t / nt, rows * (t + 1) / nt);
    work(0, rows / nt);
    for (auto& th : pool) th.join();
    return out;
  }

  std::vector<float> vector(int64_t n, float mean, float spread) {
    std::mt19937_64 rng(mix64(seed_ ^ mix64(++matrices_)));
    std::uniform_real_distribution<float> ud(mean - spread, mean + spread);
    std::vector<float> v(n);
    for (auto& x : v) x = ud(rng);
    return v;
  }

 private:
  uint64_t seed_;
  int threads_;
  uint64_t matrices_ = 0;
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
  w.set_u32("general.file_type", s.mix ? mix_file_type(*s.mix) : 0);

  std::vector<std::string> tokens = byte_level_tokens();
  tokens.push_back("<|endoftext|>");
  std::vector<int32_t> types(tokens.size(), 1);
  types.back() = 3;  // control
  if (s.n_vocab != 0 && s.n_vocab < static_cast<int32_t>(tokens.size()))
    throw Error("synthetic model: n_vocab must be 0 or at least " + std::to_string(tokens.size()));
  for (int32_t i = static_cast<int32_t>(tokens.size()); i < s.n_vocab; ++i) {
    tokens.push_back("<|pad_" + std::to_string(i) + "|>");
    types.push_back(3);
  }
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "gpt-2");  // llama.cpp's spelling
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_string_array("tokenizer.ggml.merges", {});
  w.set_u32("tokenizer.ggml.bos_token_id", kByteTokens);
  w.set_u32("tokenizer.ggml.eos_token_id", kByteTokens);
  w.set_bool("tokenizer.ggml.add_bos_token", false);
  const int64_t n_vocab = static_cast<int64_t>(tokens.size());
  WeightMaker m(s.seed, s.threads);
  const bool tied = s.mix ? false : s.tied_output;
  const MixModel mm{s.n_layer, s.n_head, s.n_head_kv, tied};
  // The matrix type: the mix's rule for this tensor, else the spec's types.
  auto type_of = [&](TensorRole role, int32_t layer, int64_t row_len) {
    if (s.mix) return tensor_type(*s.mix, role, layer, mm, row_len);
    return role == TensorRole::TokenEmbd ? s.embd_type : s.weight_type;
  };
  auto add_matrix = [&](const std::string& name, TensorRole role, int32_t layer, int64_t cols, int64_t rows, float scale) {
    const quant::Type t = type_of(role, layer, cols);
    w.add_tensor(name, {cols, rows}, t, m.matrix(cols, rows, t, scale).data(), quant::row_bytes(t, cols) * rows);
  };
  auto add_f32 = [&](const std::string& name, const std::vector<float>& v) {
    w.add_tensor(name, {static_cast<int64_t>(v.size())}, quant::Type::F32, v.data(), v.size() * sizeof(float));
  };
  const float in_scale = 1.0f / std::sqrt(static_cast<float>(s.n_embd));
  add_matrix("token_embd.weight", TensorRole::TokenEmbd, -1, s.n_embd, n_vocab, 1.0f);
  add_f32("output_norm.weight", m.vector(s.n_embd, 1.0f, 0.1f));
  if (!s.rope_freqs.empty()) {
    if (static_cast<int32_t>(s.rope_freqs.size()) != head_dim / 2)
      throw Error("synthetic model: rope_freqs needs head_dim/2 = " + std::to_string(head_dim / 2) + " values");
    add_f32("rope_freqs.weight", s.rope_freqs);
  }
  if (!tied) add_matrix("output.weight", TensorRole::Output, -1, s.n_embd, n_vocab, in_scale);
  for (int32_t l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add_f32(p + "attn_norm.weight", m.vector(s.n_embd, 1.0f, 0.1f));
    add_matrix(p + "attn_q.weight", TensorRole::AttnQ, l, s.n_embd, s.n_embd, in_scale);
    add_matrix(p + "attn_k.weight", TensorRole::AttnK, l, s.n_embd, kv_dim, in_scale);
    add_matrix(p + "attn_v.weight", TensorRole::AttnV, l, s.n_embd, kv_dim, in_scale);
    add_matrix(p + "attn_output.weight", TensorRole::AttnOutput, l, s.n_embd, s.n_embd, in_scale);
    if (s.arch == "qwen2") {
      add_f32(p + "attn_q.bias", m.vector(s.n_embd, 0.0f, 0.1f));
      add_f32(p + "attn_k.bias", m.vector(kv_dim, 0.0f, 0.1f));
      add_f32(p + "attn_v.bias", m.vector(kv_dim, 0.0f, 0.1f));
    }
    add_f32(p + "ffn_norm.weight", m.vector(s.n_embd, 1.0f, 0.1f));
    add_matrix(p + "ffn_gate.weight", TensorRole::FfnGate, l, s.n_embd, s.n_ff, in_scale);
    add_matrix(p + "ffn_up.weight", TensorRole::FfnUp, l, s.n_embd, s.n_ff, in_scale);
    add_matrix(p + "ffn_down.weight", TensorRole::FfnDown, l, s.n_ff, s.n_embd,
               1.0f / std::sqrt(static_cast<float>(s.n_ff)));
  }
  w.write(path);
}

}  // namespace tandem::core
