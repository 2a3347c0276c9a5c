#include "cpu_worker/weights.h"

#include <cstdint>
#include <string>

#include "core/error.h"

namespace tandem::cpu {

using core::Error;

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Kernels read fp16 scales and f32 values in place: a file written with
// general.alignment below 4 can leave tensor data unaligned for them.
void check_aligned(const core::gguf::File& f, const core::gguf::TensorInfo& t) {
  if (reinterpret_cast<uintptr_t>(t.data) % alignof(float) != 0)
    throw Error(f.path() + ": tensor '" + t.name + "' data at offset " + std::to_string(t.offset) +
                " is not 4-byte aligned (general.alignment " + std::to_string(f.alignment()) + ")");
}

Matrix bind_matrix(const core::gguf::File& f, const std::string& name, int64_t cols, int64_t rows) {
  const auto& t = f.tensor(name);
  check_aligned(f, t);
  if (t.shape.size() != 2 || t.shape[0] != cols || t.shape[1] != rows)
    throw Error(f.path() + ": tensor '" + name + "' has shape " + shape_str(t.shape) + ", expected [" +
                std::to_string(cols) + ", " + std::to_string(rows) + "]");
  const auto& tr = quant::traits(t.type);
  if (tr.vec_dot == nullptr)
    throw Error(f.path() + ": tensor '" + name + "' has type " + std::string(tr.name) +
                ", which has no matrix-product kernel yet");
  Matrix m;
  m.data = t.data;
  m.type = t.type;
  m.cols = cols;
  m.rows = rows;
  m.row_bytes = quant::row_bytes(t.type, cols);
  return m;
}

const float* bind_vector(const core::gguf::File& f, const std::string& name, int64_t n, bool required = true) {
  const auto* t = f.find_tensor(name);
  if (t == nullptr) {
    if (required) throw Error(f.path() + ": missing tensor '" + name + "'");
    return nullptr;
  }
  check_aligned(f, *t);
  if (t->type != quant::Type::F32 || t->n_elements() != n)
    throw Error(f.path() + ": tensor '" + name + "' must be F32 with " + std::to_string(n) + " elements (has " +
                std::string(quant::type_name(t->type)) + ", " + std::to_string(t->n_elements()) + ")");
  return reinterpret_cast<const float*>(t->data);
}

}  // namespace

ModelWeights bind_weights(const core::gguf::File& f, const core::ModelConfig& c, ShardSpec& spec) {
  if (spec.layer_end < 0) spec.layer_end = c.n_layer;
  if (spec.layer_begin < 0 || spec.layer_begin > spec.layer_end || spec.layer_end > c.n_layer)
    throw Error("layer range [" + std::to_string(spec.layer_begin) + ", " + std::to_string(spec.layer_end) +
                ") is outside the model's " + std::to_string(c.n_layer) + " layers");
  ModelWeights w;
  if (spec.embedding || (spec.head && c.tied_output))
    w.tok_embd = bind_matrix(f, "token_embd.weight", c.n_embd, c.n_vocab);
  if (spec.head) {
    w.output_norm = bind_vector(f, "output_norm.weight", c.n_embd);
    w.output = c.tied_output ? w.tok_embd : bind_matrix(f, "output.weight", c.n_embd, c.n_vocab);
  }
  if (c.has_rope_freqs) w.rope_freqs = bind_vector(f, "rope_freqs.weight", c.rope_dims / 2);
  for (int32_t il = spec.layer_begin; il < spec.layer_end; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    LayerWeights l;
    l.attn_norm = bind_vector(f, p + "attn_norm.weight", c.n_embd);
    l.wq = bind_matrix(f, p + "attn_q.weight", c.n_embd, c.q_dim());
    l.wk = bind_matrix(f, p + "attn_k.weight", c.n_embd, c.kv_dim());
    l.wv = bind_matrix(f, p + "attn_v.weight", c.n_embd, c.kv_dim());
    l.wo = bind_matrix(f, p + "attn_output.weight", c.q_dim(), c.n_embd);
    l.bq = bind_vector(f, p + "attn_q.bias", c.q_dim(), c.qkv_bias);
    l.bk = bind_vector(f, p + "attn_k.bias", c.kv_dim(), c.qkv_bias);
    l.bv = bind_vector(f, p + "attn_v.bias", c.kv_dim(), c.qkv_bias);
    l.ffn_norm = bind_vector(f, p + "ffn_norm.weight", c.n_embd);
    l.w_gate = bind_matrix(f, p + "ffn_gate.weight", c.n_embd, c.n_ff);
    l.w_up = bind_matrix(f, p + "ffn_up.weight", c.n_embd, c.n_ff);
    l.w_down = bind_matrix(f, p + "ffn_down.weight", c.n_ff, c.n_embd);
    w.layers.push_back(l);
  }
  return w;
}

}  // namespace tandem::cpu
