// GGUF reader/writer: round trips through Writer -> File, and a catalogue of
// corrupt files (each must fail with core::Error naming the problem, never
// crash). Corrupt files are made by patching fields of a valid serialized file.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/gguf_file.h"
#include "core/gguf_writer.h"
#include "tests/unit/gguf_value_equal.h"
#include "tests/unit/test_support.h"

namespace {

namespace fs = std::filesystem;
using namespace tandem::core;
using namespace tandem::core::gguf;
using Bytes = std::vector<uint8_t>;

// ---- helpers -----------------------------------------------------------------

Value U(ValueType t, uint64_t v) { return Value{t, v}; }
Value I(ValueType t, int64_t v) { return Value{t, v}; }
Value F(ValueType t, double v) { return Value{t, v}; }
Value S(std::string s) { return Value{ValueType::STRING, std::move(s)}; }
Value B(bool b) { return Value{ValueType::BOOL, b}; }
Value A(ValueType et, std::vector<Value> items) {
  Array a;
  a.elem_type = et;
  a.items = std::move(items);
  return Value{ValueType::ARRAY, std::move(a)};
}

// A unique directory under the gtest temp dir, removed at the end.
class GgufTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "tandem_gguf_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string put(const Bytes& b, const std::string& name = "t.gguf") {
    const std::string p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary | std::ios::trunc)
        .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    return p;
  }
  // Opening `b` must throw core::Error whose message contains `word`.
  void expect_error(const Bytes& b, const std::string& word) {
    const std::string p = put(b);
    try {
      auto f = File::open(p);
      ADD_FAILURE() << "opened without error; expected one containing '" << word << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(word), std::string::npos)
          << "message '" << e.what() << "' lacks '" << word << "'";
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << "message names no file";
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "message not one line";
    }
  }
  fs::path dir_;
};

// ---- byte patching ----------------------------------------------------------

size_t find_seq(const Bytes& b, const Bytes& pat) {
  auto it = std::search(b.begin(), b.end(), pat.begin(), pat.end());
  if (it == b.end()) throw std::runtime_error("pattern not found");
  return static_cast<size_t>(it - b.begin());
}
// Position just after the GGUF string `s` (u64 length + bytes) in `b`.
size_t after_string(const Bytes& b, const std::string& s) {
  Bytes pat(8);
  const uint64_t n = s.size();
  std::memcpy(pat.data(), &n, 8);
  pat.insert(pat.end(), s.begin(), s.end());
  return find_seq(b, pat) + pat.size();
}
template <class T>
void poke(Bytes& b, size_t at, T v) {
  std::memcpy(b.data() + at, &v, sizeof v);
}
template <class T>
T peek(const Bytes& b, size_t at) {
  T v;
  std::memcpy(&v, b.data() + at, sizeof v);
  return v;
}
// Tensor info field offsets, relative to after_string(name).
size_t tinfo_ndims(const Bytes& b, const std::string& name) { return after_string(b, name); }
size_t tinfo_dim(const Bytes& b, const std::string& name, int d) {
  return after_string(b, name) + 4 + 8 * static_cast<size_t>(d);
}
size_t tinfo_type(const Bytes& b, const std::string& name) {
  const size_t p = after_string(b, name);
  return p + 4 + 8 * peek<uint32_t>(b, p);
}
size_t tinfo_offset(const Bytes& b, const std::string& name) { return tinfo_type(b, name) + 4; }

// ---- sample content ---------------------------------------------------------

// One key of every value type, arrays of every element type, empty and nested
// arrays (3 deep, ragged).
std::vector<std::pair<std::string, Value>> sample_kv() {
  using VT = ValueType;
  std::vector<std::pair<std::string, Value>> kv;
  kv.emplace_back("general.architecture", S("llama"));
  kv.emplace_back("t.u8", U(VT::UINT8, 200));
  kv.emplace_back("t.i8", I(VT::INT8, -100));
  kv.emplace_back("t.u16", U(VT::UINT16, 60000));
  kv.emplace_back("t.i16", I(VT::INT16, -30000));
  kv.emplace_back("t.u32", U(VT::UINT32, 4000000000u));
  kv.emplace_back("t.i32", I(VT::INT32, -2000000000));
  kv.emplace_back("t.f32", F(VT::FLOAT32, 1.5));
  kv.emplace_back("t.bool", B(true));
  kv.emplace_back("t.bool_false", B(false));
  kv.emplace_back("t.string", S("h\xc3\xa9llo\nworld"));
  kv.emplace_back("t.empty_string", S(""));
  kv.emplace_back("t.u64", U(VT::UINT64, std::numeric_limits<uint64_t>::max()));
  kv.emplace_back("t.i64", I(VT::INT64, std::numeric_limits<int64_t>::min()));
  kv.emplace_back("t.f64", F(VT::FLOAT64, 3.141592653589793));
  kv.emplace_back("a.u8", A(VT::UINT8, {U(VT::UINT8, 0), U(VT::UINT8, 255)}));
  kv.emplace_back("a.i8", A(VT::INT8, {I(VT::INT8, -128), I(VT::INT8, 127)}));
  kv.emplace_back("a.u16", A(VT::UINT16, {U(VT::UINT16, 65535)}));
  kv.emplace_back("a.i16", A(VT::INT16, {I(VT::INT16, -32768)}));
  kv.emplace_back("a.u32", A(VT::UINT32, {U(VT::UINT32, 1), U(VT::UINT32, 2), U(VT::UINT32, 3)}));
  kv.emplace_back("a.i32", A(VT::INT32, {I(VT::INT32, -1), I(VT::INT32, 7)}));
  kv.emplace_back("a.f32", A(VT::FLOAT32, {F(VT::FLOAT32, -0.25), F(VT::FLOAT32, double{1e30f})}));
  kv.emplace_back("a.bool", A(VT::BOOL, {B(true), B(false), B(true)}));
  kv.emplace_back("a.string", A(VT::STRING, {S("a"), S(""), S("ccc")}));
  kv.emplace_back("a.u64", A(VT::UINT64, {U(VT::UINT64, 1ull << 63)}));
  kv.emplace_back("a.i64", A(VT::INT64, {I(VT::INT64, -(1ll << 62))}));
  kv.emplace_back("a.f64", A(VT::FLOAT64, {F(VT::FLOAT64, -1e-300)}));
  kv.emplace_back("a.empty", A(VT::UINT32, {}));
  kv.emplace_back("a.nested", A(VT::ARRAY, {A(VT::INT32, {I(VT::INT32, 1)}),
                                            A(VT::INT32, {}),
                                            A(VT::INT32, {I(VT::INT32, 2), I(VT::INT32, 3)})}));
  kv.emplace_back("a.nested_strings",
                  A(VT::ARRAY, {A(VT::STRING, {S("x"), S("yy")}), A(VT::STRING, {S("")})}));
  kv.emplace_back("a.deep3", A(VT::ARRAY, {A(VT::ARRAY, {A(VT::FLOAT64, {F(VT::FLOAT64, 2.5)})}),
                                           A(VT::ARRAY, {})}));
  return kv;
}

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  quant::Type type;
  Bytes data;
};

Bytes pattern(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i * 7);
  return b;
}

// The last tensor's size (64) is a multiple of the default alignment, so the
// file ends exactly at its data: every proper prefix of the file is invalid.
std::vector<TensorSpec> sample_tensors() {
  return {
      {"token_embd.weight", {3, 2}, quant::Type::F32, pattern(24, 1)},
      {"blk.0.attn_q.weight", {64, 2}, quant::Type::Q8_0, pattern(2 * 2 * 34, 2)},
      {"output.weight", {16, 2}, quant::Type::F16, pattern(64, 3)},
  };
}

Writer sample_writer(uint64_t alignment = 0) {
  Writer w;
  if (alignment) w.set_alignment(alignment);
  for (auto& [k, v] : sample_kv()) w.set(k, v);
  for (auto& t : sample_tensors()) w.add_tensor(t.name, t.shape, t.type, t.data.data(), t.data.size());
  return w;
}

// ---- round trips --------------------------------------------------------------

class GgufVersionTest : public GgufTest, public ::testing::WithParamInterface<uint32_t> {};

TEST_P(GgufVersionTest, RoundTripEveryValueTypeAndTensors) {
  const uint32_t version = GetParam();
  const Writer w = sample_writer();
  const std::string p = (dir_ / "rt.gguf").string();
  w.write(p, version);
  EXPECT_FALSE(fs::exists(p + ".tmp"));
  EXPECT_EQ(w.serialize(version), [&] {
    std::ifstream in(p, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(in), {});
  }());

  auto f = File::open(p);
  EXPECT_EQ(f->version(), version);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->data_offset() % 32, 0u);

  const auto want = sample_kv();
  ASSERT_EQ(f->metadata().size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(f->metadata()[i].first, want[i].first) << "key order";
    EXPECT_TRUE(tandem::test::same_gguf_value(f->metadata()[i].second, want[i].second)) << want[i].first;
    ASSERT_NE(f->find(want[i].first), nullptr);
  }
  EXPECT_EQ(f->find("no.such.key"), nullptr);

  const auto specs = sample_tensors();
  ASSERT_EQ(f->tensors().size(), specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorInfo& t = f->tensors()[i];
    EXPECT_EQ(t.name, specs[i].name);
    EXPECT_EQ(t.shape, specs[i].shape);
    EXPECT_EQ(t.type, specs[i].type);
    EXPECT_EQ(t.size_bytes, specs[i].data.size());
    EXPECT_EQ(t.size_bytes, quant::row_bytes(t.type, t.shape[0]) * static_cast<size_t>(t.rows()));
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_GE(t.offset, f->data_offset());
    ASSERT_NE(t.data, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 32, 0u) << "mapping is page aligned";
    EXPECT_EQ(Bytes(t.data, t.data + t.size_bytes), specs[i].data) << t.name;
    EXPECT_EQ(&f->tensor(t.name), &t);
  }
  EXPECT_EQ(f->tensors()[0].n_elements(), 6);
  EXPECT_EQ(f->tensors()[0].rows(), 2);
  EXPECT_EQ(f->find_tensor("nope"), nullptr);
  EXPECT_THROW(f->tensor("nope"), Error);
  // Last tensor ends the file (no trailing padding needed: 64 % 32 == 0).
  EXPECT_EQ(f->tensors().back().offset + f->tensors().back().size_bytes, f->file_size());
}

INSTANTIATE_TEST_SUITE_P(Versions, GgufVersionTest, ::testing::Values(2u, 3u));

TEST_F(GgufTest, TypedGetters) {
  auto f = File::open(put(sample_writer().serialize()));
  EXPECT_EQ(f->get_int("t.u8"), 200);
  EXPECT_EQ(f->get_int("t.i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f->get_int("t.u32"), 4000000000ll);
  EXPECT_EQ(f->get_int("absent"), std::nullopt);
  EXPECT_THROW(f->get_int("t.u64"), Error);  // > INT64_MAX
  EXPECT_EQ(f->get_float("t.f32"), 1.5);
  EXPECT_EQ(f->get_float("t.i16"), -30000.0);
  EXPECT_EQ(f->get_bool("t.bool"), true);
  EXPECT_EQ(f->get_bool("t.bool_false"), false);
  EXPECT_EQ(f->get_string("general.architecture"), "llama");
  EXPECT_EQ(f->get_string("absent"), std::nullopt);
  EXPECT_EQ(f->get_string_array("a.string"), (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(f->get_float_array("a.f32"), (std::vector<float>{-0.25f, 1e30f}));
  EXPECT_EQ(f->get_int_array("a.i32"), (std::vector<int32_t>{-1, 7}));
  EXPECT_EQ(f->get_int_array("a.u8"), (std::vector<int32_t>{0, 255}));
  EXPECT_TRUE(f->get_int_array("absent").empty());
  EXPECT_TRUE(f->get_int_array("a.empty").empty());

  // Wrong types throw naming the key.
  auto throws_naming = [&](auto fn, const std::string& key) {
    try {
      fn();
      ADD_FAILURE() << "no throw for " << key;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'" + key + "'"), std::string::npos) << e.what();
    }
  };
  throws_naming([&] { (void)f->get_int("t.string"); }, "t.string");
  throws_naming([&] { (void)f->get_int("t.f32"); }, "t.f32");
  throws_naming([&] { (void)f->get_float("t.bool"); }, "t.bool");
  throws_naming([&] { (void)f->get_bool("t.u8"); }, "t.u8");
  throws_naming([&] { (void)f->get_string("t.u32"); }, "t.u32");
  throws_naming([&] { (void)f->get_string_array("a.i32"); }, "a.i32");
  throws_naming([&] { (void)f->get_string_array("t.string"); }, "t.string");
  throws_naming([&] { (void)f->get_float_array("a.string"); }, "a.string");
  throws_naming([&] { (void)f->get_int_array("a.f32"); }, "a.f32");
  throws_naming([&] { (void)f->get_int_array("a.u64"); }, "a.u64");  // 2^63 > INT32_MAX
  throws_naming([&] { (void)f->get_int_array("a.nested"); }, "a.nested");
}

TEST_F(GgufTest, ValueAccessors) {
  EXPECT_EQ(U(ValueType::UINT64, 5).as_int(), 5);
  EXPECT_EQ(U(ValueType::UINT64, ~0ull).as_int(), std::nullopt);
  EXPECT_EQ(S("x").as_int(), std::nullopt);
  EXPECT_EQ(F(ValueType::FLOAT64, 2.0).as_int(), std::nullopt);
  EXPECT_EQ(I(ValueType::INT8, -3).as_float(), -3.0);
  EXPECT_EQ(B(true).as_bool(), true);
  EXPECT_EQ(U(ValueType::UINT8, 1).as_bool(), std::nullopt);
  EXPECT_EQ(S("x").as_array(), nullptr);
  EXPECT_EQ(*S("x").as_string(), "x");
  EXPECT_EQ(value_type_name(ValueType::FLOAT32), "float32");
  EXPECT_EQ(value_type_name(ValueType::ARRAY), "array");
}

TEST_F(GgufTest, Alignment) {
  for (uint64_t a : {1ull, 8ull, 64ull, 4096ull}) {
    const Writer w = sample_writer(a);
    auto f = File::open(put(w.serialize()));
    EXPECT_EQ(f->alignment(), a);
    EXPECT_EQ(f->get_int("general.alignment"), static_cast<int64_t>(a));
    EXPECT_EQ(f->data_offset() % a, 0u);
    const auto specs = sample_tensors();
    for (size_t i = 0; i < specs.size(); ++i) {
      const TensorInfo& t = f->tensors()[i];
      EXPECT_EQ(t.offset % a, 0u) << "alignment " << a;
      EXPECT_EQ(Bytes(t.data, t.data + t.size_bytes), specs[i].data);
    }
  }
  // No key: the default 32 is used, and no key written.
  Writer w;
  w.set_u32("x", 1);
  auto f = File::open(put(w.serialize()));
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->find("general.alignment"), nullptr);
}

TEST_F(GgufTest, WriterValidates) {
  Writer w;
  EXPECT_THROW(w.set_alignment(0), Error);
  EXPECT_THROW(w.set_alignment(3), Error);
  EXPECT_THROW(w.set_alignment(1ull << 32), Error);
  EXPECT_THROW(w.set("general.alignment", S("32")), Error);
  EXPECT_THROW(w.set("general.alignment", U(ValueType::UINT32, 48)), Error);
  EXPECT_THROW(w.set("k", U(ValueType::UINT8, 256)), Error);
  EXPECT_THROW(w.set("k", I(ValueType::INT16, 40000)), Error);
  EXPECT_THROW(w.set("k", Value{ValueType::STRING, uint64_t{1}}), Error);
  EXPECT_THROW(w.set("k", A(ValueType::INT32, {U(ValueType::UINT32, 1)})), Error);
  EXPECT_THROW(w.set("k", Value{static_cast<ValueType>(77), uint64_t{1}}), Error);
  // 8 nested arrays are fine, 9 are not (the reader's limit).
  Value v = A(ValueType::UINT8, {});
  for (int i = 1; i < 8; ++i) v = A(ValueType::ARRAY, {v});
  EXPECT_NO_THROW(w.set("deep8", v));
  EXPECT_THROW(w.set("deep9", A(ValueType::ARRAY, {v})), Error);
  auto f = File::open(put(w.serialize()));
  EXPECT_TRUE(tandem::test::same_gguf_value(*f->find("deep8"), v));

  const float four[4] = {1, 2, 3, 4};
  EXPECT_THROW(w.add_tensor("t", {4}, quant::Type::F32, four, 12), Error);       // wrong size
  EXPECT_THROW(w.add_tensor("t", {3}, quant::Type::Q8_0, four, 16), Error);      // not a block multiple
  EXPECT_THROW(w.add_tensor("t", {}, quant::Type::F32, four, 0), Error);         // no dims
  EXPECT_THROW(w.add_tensor("t", {1, 1, 1, 1, 1}, quant::Type::F32, four, 4), Error);
  EXPECT_THROW(w.add_tensor("t", {4, 0}, quant::Type::F32, four, 0), Error);
  EXPECT_THROW(w.add_tensor("t", {4}, static_cast<quant::Type>(99), four, 16), Error);
  EXPECT_NO_THROW(w.add_tensor("t", {4}, quant::Type::F32, four, 16));
  EXPECT_THROW(w.add_tensor("t", {4}, quant::Type::F32, four, 16), Error);       // duplicate
  EXPECT_THROW(w.serialize(1), Error);
  EXPECT_THROW(w.serialize(4), Error);
  EXPECT_THROW(w.write((dir_ / "no/such/dir/x.gguf").string()), Error);
}

TEST_F(GgufTest, SettingAKeyAgainKeepsItsPlace) {
  Writer w;
  w.set_u32("a", 1);
  w.set_string("b", "x");
  w.set_i32("a", -5);
  w.set_u64("c", 9);
  w.set_f32("d", 0.5f);
  w.set_bool("e", true);
  w.set_string_array("f", {"p", "q"});
  w.set_f32_array("g", {1.f, 2.f});
  w.set_i32_array("h", {3, 4});
  Array arr;
  arr.elem_type = ValueType::UINT16;
  arr.items = {U(ValueType::UINT16, 9)};
  w.set_array("i", arr);
  auto f = File::open(put(w.serialize(2)));
  ASSERT_EQ(f->metadata().size(), 9u);
  EXPECT_EQ(f->metadata()[0].first, "a");
  EXPECT_EQ(f->metadata()[0].second.type, ValueType::INT32);
  EXPECT_EQ(f->get_int("a"), -5);
  EXPECT_EQ(f->get_int("c"), 9);
  EXPECT_EQ(f->get_float("d"), 0.5);
  EXPECT_EQ(f->get_bool("e"), true);
  EXPECT_EQ(f->get_string_array("f"), (std::vector<std::string>{"p", "q"}));
  EXPECT_EQ(f->get_float_array("g"), (std::vector<float>{1.f, 2.f}));
  EXPECT_EQ(f->get_int_array("h"), (std::vector<int32_t>{3, 4}));
  EXPECT_EQ(f->get_int_array("i"), (std::vector<int32_t>{9}));
  EXPECT_TRUE(f->tensors().empty());
}

TEST_F(GgufTest, WriteReplacesAtomically) {
  const std::string p = (dir_ / "m.gguf").string();
  Writer a;
  a.set_string("v", "first");
  a.write(p);
  Writer b;
  b.set_string("v", "second");
  b.write(p);
  EXPECT_EQ(File::open(p)->get_string("v"), "second");
  EXPECT_FALSE(fs::exists(p + ".tmp"));
}

// ---- corrupt files ----------------------------------------------------------

TEST_F(GgufTest, EveryTruncationFails) {
  const Bytes good = sample_writer().serialize();
  ASSERT_NO_THROW(File::open(put(good)));
  // Shrink one file from the end: cheaper than writing every prefix anew.
  const std::string p = put(good);
  for (size_t n = good.size(); n-- > 0;) {
    fs::resize_file(p, n);
    try {
      auto f = File::open(p);
      ADD_FAILURE() << "prefix of " << n << " bytes opened";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_TRUE(m.find("truncated") != std::string::npos ||
                  m.find("past end of file") != std::string::npos)
          << "prefix " << n << ": " << m;
    }
  }
}

TEST_F(GgufTest, MissingAndEmptyFiles) {
  EXPECT_THROW(File::open((dir_ / "absent.gguf").string()), Error);
  expect_error({}, "truncated");
  EXPECT_THROW(File::open(dir_.string()), Error);  // a directory
}

TEST_F(GgufTest, BadMagic) {
  Bytes b = sample_writer().serialize();
  b[0] = 'X';
  expect_error(b, "magic");
  expect_error(Bytes{'G', 'G', 'U', 'F'}, "truncated");
  expect_error(Bytes{'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'}, "magic");
}

TEST_F(GgufTest, BadVersion) {
  const Bytes good = sample_writer().serialize();
  for (uint32_t v : {0u, 1u, 4u, 0x03000000u}) {
    Bytes b = good;
    poke<uint32_t>(b, 4, v);
    expect_error(b, "version " + std::to_string(v));
  }
  Bytes b = good;
  poke<uint32_t>(b, 4, 0x03000000u);
  expect_error(b, "big-endian");
}

TEST_F(GgufTest, AbsurdCounts) {
  const Bytes good = sample_writer().serialize();
  for (uint64_t huge : {1ull << 40, ~0ull, 1000000ull}) {
    Bytes b = good;
    poke<uint64_t>(b, 8, huge);
    expect_error(b, "tensor count");
    b = good;
    poke<uint64_t>(b, 16, huge);
    expect_error(b, "metadata key count");
  }
  // First key's string length.
  Bytes b = good;
  poke<uint64_t>(b, 24, 1ull << 40);
  expect_error(b, "string length");
  b = good;
  poke<uint64_t>(b, 24, ~0ull);
  expect_error(b, "truncated");
  // A string value's length.
  b = good;
  poke<uint64_t>(b, after_string(b, "t.string") + 4, 100000);
  expect_error(b, "truncated while reading metadata key #10 ('t.string')");
  // Array lengths: fixed-size elements, strings, nested arrays.
  for (const char* key : {"a.u32", "a.string", "a.nested", "a.empty"}) {
    for (uint64_t huge : {1ull << 33, ~0ull}) {
      b = good;
      poke<uint64_t>(b, after_string(b, key) + 4 + 4, huge);
      expect_error(b, "array length");
    }
  }
  // A tensor name's length.
  b = good;
  poke<uint64_t>(b, after_string(b, "output.weight") - 13 - 8, 1ull << 50);
  expect_error(b, "truncated while reading tensor info #2");
}

// Hand-made file: header + one array key, to test limits the Writer refuses.
Bytes one_key_file(const std::string& key, const Bytes& typed_value) {
  Bytes b = {'G', 'G', 'U', 'F'};
  auto app = [&](const void* p, size_t n) {
    const auto* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
  };
  const uint32_t version = 3;
  const uint64_t n_tensors = 0, n_kv = 1, klen = key.size();
  app(&version, 4);
  app(&n_tensors, 8);
  app(&n_kv, 8);
  app(&klen, 8);
  app(key.data(), key.size());
  b.insert(b.end(), typed_value.begin(), typed_value.end());
  return b;
}
void app32(Bytes& b, uint32_t v) { b.insert(b.end(), reinterpret_cast<uint8_t*>(&v), reinterpret_cast<uint8_t*>(&v) + 4); }
void app64(Bytes& b, uint64_t v) { b.insert(b.end(), reinterpret_cast<uint8_t*>(&v), reinterpret_cast<uint8_t*>(&v) + 8); }

TEST_F(GgufTest, BillionEmptyStringsRejectedBeforeAllocating) {
  Bytes v;
  app32(v, 9);  // ARRAY
  app32(v, 8);  // of STRING
  app64(v, 1000000000ull);
  for (int i = 0; i < 16; ++i) app64(v, 0);  // 16 empty strings present
  expect_error(one_key_file("tokenizer.ggml.tokens", v), "array length 1000000000");
}

TEST_F(GgufTest, NestingDepthLimited) {
  auto nested = [](int depth) {
    Bytes v;
    app32(v, 9);  // value type ARRAY
    for (int i = 1; i < depth; ++i) {
      app32(v, 9);  // elements are arrays
      app64(v, 1);  // one of them
    }
    app32(v, 0);  // innermost: uint8, empty
    app64(v, 0);
    return v;
  };
  EXPECT_NO_THROW(File::open(put(one_key_file("ok", nested(8)))));
  expect_error(one_key_file("deep", nested(9)), "nested");
  expect_error(one_key_file("deep", nested(100000)), "nested");
}

TEST_F(GgufTest, UnknownTypes) {
  const Bytes good = sample_writer().serialize();
  for (uint32_t id : {99u, 4u, 5u, 31u, ~0u}) {
    Bytes b = good;
    poke<uint32_t>(b, tinfo_type(b, "blk.0.attn_q.weight"), id);
    expect_error(b, "unknown tensor type id " + std::to_string(id));
  }
  Bytes b = good;
  poke<uint32_t>(b, after_string(b, "t.u8"), 13);  // value type
  expect_error(b, "unknown value type 13");
  b = good;
  poke<uint32_t>(b, after_string(b, "a.u8") + 4, 13);  // array element type
  expect_error(b, "unknown array element type 13");
}

TEST_F(GgufTest, BadDims) {
  const Bytes good = sample_writer().serialize();
  const std::string q = "blk.0.attn_q.weight";
  for (uint32_t nd : {0u, 5u, 1000u}) {
    Bytes b = good;
    poke<uint32_t>(b, tinfo_ndims(b, q), nd);
    expect_error(b, "n_dims " + std::to_string(nd));
  }
  for (int d : {0, 1}) {
    for (uint64_t bad : {0ull, ~0ull, 1ull << 63}) {
      Bytes b = good;
      poke<uint64_t>(b, tinfo_dim(b, q, d), bad);
      expect_error(b, "dimension " + std::to_string(d));
    }
  }
  Bytes b = good;
  poke<uint64_t>(b, tinfo_dim(b, q, 0), 1ull << 40);
  poke<uint64_t>(b, tinfo_dim(b, q, 1), 1ull << 40);
  expect_error(b, "overflow");
  b = good;  // elements fit, bytes do not: 2^62 f32 values
  poke<uint64_t>(b, tinfo_dim(b, "token_embd.weight", 0), 1ull << 62);
  poke<uint64_t>(b, tinfo_dim(b, "token_embd.weight", 1), 1);
  expect_error(b, "overflow");
  b = good;
  poke<uint64_t>(b, tinfo_dim(b, q, 0), 48);  // Q8_0 blocks are 32 wide
  expect_error(b, "block size");
  b = good;  // plausible dims, data runs past the end
  poke<uint64_t>(b, tinfo_dim(b, "output.weight", 1), 1000);
  expect_error(b, "extends past end of file");
}

TEST_F(GgufTest, BadOffsets) {
  const Bytes good = sample_writer().serialize();
  const std::string q = "blk.0.attn_q.weight";
  for (uint64_t off : {1ull << 40, ~0ull & ~31ull, static_cast<uint64_t>(good.size()) & ~31ull}) {
    Bytes b = good;
    poke<uint64_t>(b, tinfo_offset(b, q), off);
    expect_error(b, "past end of file");
  }
  Bytes b = good;
  poke<uint64_t>(b, tinfo_offset(b, q), peek<uint64_t>(b, tinfo_offset(b, q)) + 1);
  expect_error(b, "alignment");
  b = good;
  poke<uint64_t>(b, tinfo_offset(b, q), peek<uint64_t>(b, tinfo_offset(b, q)) + 16);
  expect_error(b, "not a multiple of the alignment 32");
}

TEST_F(GgufTest, BadAlignmentKey) {
  const Bytes good = sample_writer(32).serialize();
  const size_t type_at = after_string(good, "general.alignment");
  ASSERT_EQ(peek<uint32_t>(good, type_at), static_cast<uint32_t>(ValueType::UINT32));
  for (uint32_t a : {0u, 3u, 48u}) {
    Bytes b = good;
    poke<uint32_t>(b, type_at + 4, a);
    expect_error(b, "alignment " + std::to_string(a) + " is not a nonzero power of two");
  }
  Bytes b = good;
  poke<uint32_t>(b, type_at, static_cast<uint32_t>(ValueType::INT32));
  expect_error(b, "metadata key 'general.alignment': expected uint32, got int32");
}

TEST_F(GgufTest, Duplicates) {
  Writer w;
  w.set_u32("dup.a", 1);
  w.set_u32("dup.b", 2);
  const float x[2] = {1, 2};
  w.add_tensor("t1", {2}, quant::Type::F32, x, 8);
  w.add_tensor("t2", {2}, quant::Type::F32, x, 8);
  const Bytes good = w.serialize();
  Bytes b = good;
  b[after_string(b, "dup.b") - 1] = 'a';
  expect_error(b, "duplicate metadata key 'dup.a'");
  b = good;
  b[after_string(b, "t2") - 1] = '1';
  expect_error(b, "duplicate tensor name 't1'");
}

TEST_F(GgufTest, NamesInMessagesAreEscapedAndShort) {
  Writer w;
  w.set_u32("a\nb", 1);
  w.set_u32("a\nc", 2);
  const std::string long_key(5000, 'k');
  w.set_string(long_key, "v");
  Bytes b = w.serialize();
  b[after_string(b, "a\nc") - 1] = 'b';
  expect_error(b, "duplicate metadata key 'a\\x0ab'");
  b = w.serialize();
  poke<uint32_t>(b, after_string(b, long_key), 42);
  const std::string p = put(b);
  try {
    File::open(p);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_LT(std::string(e.what()).size(), 400u) << e.what();
    EXPECT_NE(std::string(e.what()).find("kkk...': unknown value type 42"), std::string::npos) << e.what();
  }
}

// ---- real files -------------------------------------------------------------

TEST(GgufRealFiles, SmolLM2Model) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(p);
  auto f = File::open(p);
  EXPECT_EQ(f->tensors().size(), 272u);
  EXPECT_EQ(f->get_string("general.architecture"), "llama");
  EXPECT_EQ(f->get_int("llama.block_count"), 30);
  const TensorInfo& e = f->tensor("token_embd.weight");
  EXPECT_EQ(e.type, quant::Type::Q8_0);
  EXPECT_EQ(e.shape, (std::vector<int64_t>{576, 49152}));
  EXPECT_EQ(e.size_bytes, 576u / 32 * 34 * 49152);
  EXPECT_EQ(f->get_string_array("tokenizer.ggml.tokens").size(), 49152u);
  for (const TensorInfo& t : f->tensors()) {
    EXPECT_EQ(t.offset % f->alignment(), 0u) << t.name;
    EXPECT_LE(t.offset + t.size_bytes, f->file_size()) << t.name;
  }
}

// TANDEM_TESTDATA, else the shared/ folder next to the checkout.
std::string testdata_dir() {
  if (const char* env = std::getenv("TANDEM_TESTDATA"); env && *env) return env;
  return tandem::test::source_dir() + "/../shared/testdata";
}

TEST(GgufRealFiles, VocabFiles) {
  const std::string td = testdata_dir();
  const fs::path dir = fs::path(td) / "tokenizer";
  if (!fs::is_directory(dir)) GTEST_SKIP() << "no tokenizer test data at " << dir;
  int n = 0;
  for (const auto& ent : fs::directory_iterator(dir)) {
    if (ent.path().extension() != ".gguf") continue;
    SCOPED_TRACE(ent.path().string());
    std::unique_ptr<File> f;
    ASSERT_NO_THROW(f = File::open(ent.path().string()));
    EXPECT_TRUE(f->get_string("tokenizer.ggml.model").has_value());
    EXPECT_FALSE(f->get_string_array("tokenizer.ggml.tokens").empty());
    ++n;
  }
  EXPECT_GT(n, 0) << "no .gguf files in " << dir;
}

}  // namespace
