#include "core/plan/tensor_inventory.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace tandem::core::plan {

namespace {

// Shape of one 2-D weight: [ne0 values per row] × [rows].
struct MatrixShape {
  const char* suffix;
  TensorRole role;
  int64_t ne0, rows;
};

std::vector<MatrixShape> layer_matrices(const ModelShape& s) {
  return {{"attn_q.weight", TensorRole::AttnQ, s.n_embd, s.q_dim()},
          {"attn_k.weight", TensorRole::AttnK, s.n_embd, s.kv_dim()},
          {"attn_v.weight", TensorRole::AttnV, s.n_embd, s.kv_dim()},
          {"attn_output.weight", TensorRole::AttnOutput, s.q_dim(), s.n_embd},
          {"ffn_gate.weight", TensorRole::FfnGate, s.n_embd, s.n_ff},
          {"ffn_up.weight", TensorRole::FfnUp, s.n_embd, s.n_ff},
          {"ffn_down.weight", TensorRole::FfnDown, s.n_ff, s.n_embd}};
}

PlannedTensor f32_vector(std::string name, int32_t layer, int64_t n) {
  return {std::move(name), layer, n, 1, "F32", static_cast<uint64_t>(n) * 4};
}

// Tensors that are the same whatever the weights' types: norms, biases, rope
// frequencies. Appended in the converter's order around the matrices.
template <class MatrixFn>
Inventory build(const ModelShape& s, MatrixFn&& matrix) {
  if (s.n_layer <= 0 || s.n_embd <= 0 || s.n_ff <= 0 || s.n_head <= 0 || s.n_head_kv <= 0 || s.head_dim <= 0 ||
      s.n_vocab <= 0)
    throw Error("model shape '" + s.name + "' has a non-positive dimension");
  Inventory inv;
  auto& t = inv.tensors;
  t.push_back(matrix("token_embd.weight", TensorRole::TokenEmbd, -1, s.n_embd, s.n_vocab));
  if (s.rope_freqs) t.push_back(f32_vector("rope_freqs.weight", -1, s.head_dim / 2));
  for (int32_t il = 0; il < s.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    t.push_back(f32_vector(p + "attn_norm.weight", il, s.n_embd));
    for (const MatrixShape& m : layer_matrices(s)) {
      t.push_back(matrix(p + m.suffix, m.role, il, m.ne0, m.rows));
      if (s.qkv_bias && (m.role == TensorRole::AttnQ || m.role == TensorRole::AttnK || m.role == TensorRole::AttnV)) {
        std::string bias = p + m.suffix;
        bias.replace(bias.size() - 6, 6, "bias");  // "...attn_q.weight" -> "...attn_q.bias"
        t.push_back(f32_vector(bias, il, m.rows));
      }
    }
    t.push_back(f32_vector(p + "ffn_norm.weight", il, s.n_embd));
  }
  t.push_back(f32_vector("output_norm.weight", -1, s.n_embd));
  if (!s.tied_output) t.push_back(matrix("output.weight", TensorRole::Output, -1, s.n_embd, s.n_vocab));
  return inv;
}

}  // namespace

uint64_t Inventory::total_bytes() const {
  uint64_t b = 0;
  for (const PlannedTensor& t : tensors) b += t.bytes;
  return b;
}

uint64_t Inventory::layer_bytes(int32_t layer) const {
  uint64_t b = 0;
  for (const PlannedTensor& t : tensors)
    if (t.layer == layer && layer >= 0) b += t.bytes;
  return b;
}

uint64_t Inventory::named_bytes(const std::string& name) const {
  for (const PlannedTensor& t : tensors)
    if (t.name == name) return t.bytes;
  return 0;
}

uint64_t Inventory::head_bytes() const {
  const uint64_t out = named_bytes("output.weight");
  return named_bytes("output_norm.weight") + (out ? out : named_bytes("token_embd.weight"));
}

uint64_t Inventory::global_bytes() const {
  uint64_t b = 0;
  for (const PlannedTensor& t : tensors)
    if (t.layer < 0 && t.name != "token_embd.weight" && t.name != "output.weight" && t.name != "output_norm.weight")
      b += t.bytes;
  return b;
}

Inventory inventory_from_gguf(const gguf::File& file) {
  Inventory inv;
  for (const gguf::TensorInfo& ti : file.tensors()) {
    int32_t layer = -1;
    role_of(ti.name, &layer);
    inv.tensors.push_back({ti.name, layer, ti.shape.empty() ? 0 : ti.shape[0], ti.rows(),
                           std::string(quant::type_name(ti.type)), ti.size_bytes});
  }
  return inv;
}

Inventory inventory_from_mix(const ModelShape& s, QuantMix mix) {
  const MixModel mm{s.n_layer, s.n_head, s.n_head_kv, s.tied_output};
  return build(s, [&](std::string name, TensorRole role, int32_t layer, int64_t ne0, int64_t rows) {
    const quant::Type type = tensor_type(mix, role, layer < 0 ? 0 : layer, mm, ne0);
    const uint64_t bytes = static_cast<uint64_t>(quant::row_bytes(type, ne0)) * static_cast<uint64_t>(rows);
    return PlannedTensor{std::move(name), layer, ne0, rows, std::string(quant::type_name(type)), bytes};
  });
}

Inventory inventory_from_bpw(const ModelShape& s, double bpw, double head_bpw) {
  if (!(bpw > 0 && bpw <= 32 && head_bpw > 0 && head_bpw <= 32))
    throw Error("bits per weight must be in (0, 32]");
  auto label = [](double b) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%.2fbpw", b);
    return std::string(buf);
  };
  return build(s, [&](std::string name, TensorRole role, int32_t layer, int64_t ne0, int64_t rows) {
    const double n = static_cast<double>(ne0) * static_cast<double>(rows);
    if (role == TensorRole::TokenEmbd)
      return PlannedTensor{std::move(name), layer, ne0, rows, "F16", static_cast<uint64_t>(n) * 2};
    const double b = role == TensorRole::Output ? head_bpw : bpw;
    return PlannedTensor{std::move(name), layer, ne0, rows, label(b), static_cast<uint64_t>(std::ceil(n * b / 8.0))};
  });
}

double bits_per_weight(const Inventory& inv, const ModelShape& s) {
  uint64_t bytes = 0;
  for (const PlannedTensor& t : inv.tensors)
    if (t.rows > 1) bytes += t.bytes;  // matrices only: norms and biases are 1-D
  return static_cast<double>(bytes) * 8.0 / static_cast<double>(s.params());
}

}  // namespace tandem::core::plan
