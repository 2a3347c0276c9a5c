// The per-type traits table: names, block geometry and reference kernels.
// Block and type sizes are ggml's (ggml.c type_traits); formats we cannot
// compute with (integer and f64 tensors) or only dequantize (i-quants) are
// still listed so a GGUF file holding them can be opened and its sizes checked.
#include "core/quant_types.h"

#include <array>
#include <cctype>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/quant_blocks.h"
#include "core/quant_reference.h"

namespace tandem::core::quant {
namespace {

constexpr uint32_t kMaxId = static_cast<uint32_t>(Type::BF16);

struct Table {
  std::array<TypeTraits, kMaxId + 1> t{};
  std::array<bool, kMaxId + 1> known{};

  void add(Type id, TypeTraits tr) {
    t[static_cast<uint32_t>(id)] = tr;
    known[static_cast<uint32_t>(id)] = true;
  }
};

Table build() {
  Table tb;
  // name, block_size, type_size, quantized, to_float, from_float, vec_dot, vec_dot_type
  tb.add(Type::F32, {"F32", 1, 4, false, ref::to_float_f32, nullptr, ref::vec_dot_f32_f32, Type::F32});
  tb.add(Type::F16, {"F16", 1, 2, false, ref::to_float_f16, ref::from_float_f16, ref::vec_dot_f16_f32, Type::F32});
  tb.add(Type::BF16, {"BF16", 1, 2, false, ref::to_float_bf16, ref::from_float_bf16, ref::vec_dot_bf16_f32, Type::F32});
  tb.add(Type::Q4_0, {"Q4_0", QK4_0, sizeof(BlockQ4_0), true, ref::to_float_q4_0, ref::from_float_q4_0,
                      ref::vec_dot_q4_0_q8_0, Type::Q8_0});
  tb.add(Type::Q4_1, {"Q4_1", QK4_1, sizeof(BlockQ4_1), true, ref::to_float_q4_1, ref::from_float_q4_1,
                      ref::vec_dot_q4_1_q8_1, Type::Q8_1});
  tb.add(Type::Q5_0, {"Q5_0", QK5_0, sizeof(BlockQ5_0), true, ref::to_float_q5_0, ref::from_float_q5_0,
                      ref::vec_dot_q5_0_q8_0, Type::Q8_0});
  tb.add(Type::Q5_1, {"Q5_1", QK5_1, sizeof(BlockQ5_1), true, ref::to_float_q5_1, ref::from_float_q5_1,
                      ref::vec_dot_q5_1_q8_1, Type::Q8_1});
  tb.add(Type::Q8_0, {"Q8_0", QK8_0, sizeof(BlockQ8_0), true, ref::to_float_q8_0, ref::from_float_q8_0,
                      ref::vec_dot_q8_0_q8_0, Type::Q8_0});
  // Q8_1 and Q8_K are activation formats: no weight dot product of their own.
  tb.add(Type::Q8_1,
         {"Q8_1", QK8_1, sizeof(BlockQ8_1), true, ref::to_float_q8_1, ref::from_float_q8_1, nullptr, Type::Q8_1});
  tb.add(Type::Q2_K, {"Q2_K", QK_K, sizeof(BlockQ2_K), true, ref::to_float_q2_K, ref::from_float_q2_K,
                      ref::vec_dot_q2_K_q8_K, Type::Q8_K});
  tb.add(Type::Q3_K, {"Q3_K", QK_K, sizeof(BlockQ3_K), true, ref::to_float_q3_K, ref::from_float_q3_K,
                      ref::vec_dot_q3_K_q8_K, Type::Q8_K});
  tb.add(Type::Q4_K, {"Q4_K", QK_K, sizeof(BlockQ4_K), true, ref::to_float_q4_K, ref::from_float_q4_K,
                      ref::vec_dot_q4_K_q8_K, Type::Q8_K});
  tb.add(Type::Q5_K, {"Q5_K", QK_K, sizeof(BlockQ5_K), true, ref::to_float_q5_K, ref::from_float_q5_K,
                      ref::vec_dot_q5_K_q8_K, Type::Q8_K});
  tb.add(Type::Q6_K, {"Q6_K", QK_K, sizeof(BlockQ6_K), true, ref::to_float_q6_K, ref::from_float_q6_K,
                      ref::vec_dot_q6_K_q8_K, Type::Q8_K});
  tb.add(Type::Q8_K,
         {"Q8_K", QK_K, sizeof(BlockQ8_K), true, ref::to_float_q8_K, ref::from_float_q8_K, nullptr, Type::Q8_K});

  // I-quants: dequantization and reference dot products. Only IQ4_NL and
  // IQ4_XS have a quantizer (the ones llama-quantize makes by a closed
  // search, without an importance matrix); files of the others are served,
  // inspected and re-quantized from, but Tandem does not make them.
  // vec_dot_type is ggml's choice.
  const auto iq = [&](Type id, std::string_view name, int64_t bs, size_t ts, ToFloatFn to_float, VecDotFn dot,
                      Type dot_type, FromFloatFn from_float = nullptr) {
    tb.add(id, {name, bs, ts, true, to_float, from_float, dot, dot_type});
  };
  iq(Type::IQ2_XXS, "IQ2_XXS", QK_K, sizeof(BlockIQ2_XXS), ref::to_float_iq2_xxs, ref::vec_dot_iq2_xxs_q8_K, Type::Q8_K);
  iq(Type::IQ2_XS, "IQ2_XS", QK_K, sizeof(BlockIQ2_XS), ref::to_float_iq2_xs, ref::vec_dot_iq2_xs_q8_K, Type::Q8_K);
  iq(Type::IQ3_XXS, "IQ3_XXS", QK_K, sizeof(BlockIQ3_XXS), ref::to_float_iq3_xxs, ref::vec_dot_iq3_xxs_q8_K, Type::Q8_K);
  iq(Type::IQ1_S, "IQ1_S", QK_K, sizeof(BlockIQ1_S), ref::to_float_iq1_s, ref::vec_dot_iq1_s_q8_K, Type::Q8_K);
  iq(Type::IQ4_NL, "IQ4_NL", QK4_NL, sizeof(BlockIQ4_NL), ref::to_float_iq4_nl, ref::vec_dot_iq4_nl_q8_0, Type::Q8_0,
     ref::from_float_iq4_nl);
  iq(Type::IQ3_S, "IQ3_S", QK_K, sizeof(BlockIQ3_S), ref::to_float_iq3_s, ref::vec_dot_iq3_s_q8_K, Type::Q8_K);
  iq(Type::IQ2_S, "IQ2_S", QK_K, sizeof(BlockIQ2_S), ref::to_float_iq2_s, ref::vec_dot_iq2_s_q8_K, Type::Q8_K);
  iq(Type::IQ4_XS, "IQ4_XS", QK_K, sizeof(BlockIQ4_XS), ref::to_float_iq4_xs, ref::vec_dot_iq4_xs_q8_K, Type::Q8_K,
     ref::from_float_iq4_xs);
  iq(Type::IQ1_M, "IQ1_M", QK_K, sizeof(BlockIQ1_M), ref::to_float_iq1_m, ref::vec_dot_iq1_m_q8_K, Type::Q8_K);

  // Recognised for reading only (no arithmetic on them).
  const auto rd = [&](Type id, std::string_view name, int64_t bs, size_t ts, bool q) {
    tb.add(id, {name, bs, ts, q, nullptr, nullptr, nullptr, Type::F32});
  };
  rd(Type::I8, "I8", 1, 1, false);
  rd(Type::I16, "I16", 1, 2, false);
  rd(Type::I32, "I32", 1, 4, false);
  rd(Type::I64, "I64", 1, 8, false);
  rd(Type::F64, "F64", 1, 8, false);
  return tb;
}

const Table& table() {
  static const Table tb = build();
  return tb;
}

}  // namespace

const TypeTraits* find_traits(uint32_t id) {
  const Table& tb = table();
  if (id > kMaxId || !tb.known[id]) return nullptr;
  return &tb.t[id];
}

const TypeTraits& traits(Type t) {
  const TypeTraits* tr = find_traits(static_cast<uint32_t>(t));
  if (!tr) throw Error("unknown ggml type id " + std::to_string(static_cast<uint32_t>(t)));
  return *tr;
}

std::string_view type_name(Type t) { return traits(t).name; }

std::optional<Type> type_from_name(std::string_view name) {
  const Table& tb = table();
  for (uint32_t id = 0; id <= kMaxId; ++id) {
    if (!tb.known[id]) continue;
    const std::string_view cand = tb.t[id].name;
    if (cand.size() != name.size()) continue;
    bool eq = true;
    for (size_t i = 0; i < cand.size() && eq; ++i)
      eq = std::toupper(static_cast<unsigned char>(name[i])) == std::toupper(static_cast<unsigned char>(cand[i]));
    if (eq) return static_cast<Type>(id);
  }
  return std::nullopt;
}

size_t row_bytes(Type t, int64_t n) {
  const TypeTraits& tr = traits(t);
  if (n < 0 || n % tr.block_size != 0)
    throw Error("row of " + std::to_string(n) + " values is not a multiple of " + std::string(tr.name) +
                "'s block size " + std::to_string(tr.block_size));
  const auto blocks = static_cast<uint64_t>(n / tr.block_size);
  if (blocks > SIZE_MAX / tr.type_size)
    throw Error("row of " + std::to_string(n) + " " + std::string(tr.name) + " values overflows size_t");
  return static_cast<size_t>(blocks) * tr.type_size;
}

}  // namespace tandem::core::quant
