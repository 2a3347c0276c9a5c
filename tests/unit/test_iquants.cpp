// I-quants (ggml's IQ1_S ... IQ4_XS): block geometry, the generated lookup
// tables, and the reference dequantizers against llama.cpp's Python reference
// (gguf-py), bit for bit. The expected values are computed live by
// scripts/iquant_reference.py from random blocks, so any bit pattern of the
// quants is exercised, not just a stored sample.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/quant_blocks.h"
#include "core/quant_dequant.h"
#include "core/quant_dequant_iquants.h"
#include "core/quant_iq_tables.h"
#include "core/quant_random_blocks.h"
#include "core/quant_reference.h"
#include "core/quant_types.h"
#include "tests/unit/test_support.h"

namespace q = tandem::core::quant;
using q::Type;

namespace {

struct IqCase {
  Type t;
  const char* name;  // as gguf-py spells it
  size_t bytes;      // sizeof the block struct
  int64_t values;    // values per block
};

const IqCase kCases[] = {
    {Type::IQ2_XXS, "IQ2_XXS", sizeof(q::BlockIQ2_XXS), q::QK_K},
    {Type::IQ2_XS, "IQ2_XS", sizeof(q::BlockIQ2_XS), q::QK_K},
    {Type::IQ2_S, "IQ2_S", sizeof(q::BlockIQ2_S), q::QK_K},
    {Type::IQ3_XXS, "IQ3_XXS", sizeof(q::BlockIQ3_XXS), q::QK_K},
    {Type::IQ3_S, "IQ3_S", sizeof(q::BlockIQ3_S), q::QK_K},
    {Type::IQ1_S, "IQ1_S", sizeof(q::BlockIQ1_S), q::QK_K},
    {Type::IQ1_M, "IQ1_M", sizeof(q::BlockIQ1_M), q::QK_K},
    {Type::IQ4_NL, "IQ4_NL", sizeof(q::BlockIQ4_NL), q::QK4_NL},
    {Type::IQ4_XS, "IQ4_XS", sizeof(q::BlockIQ4_XS), q::QK_K},
};

// ---- the Python reference -----------------------------------------------------

bool imports_gguf(const std::string& python) {
  return tandem::test::run_command(tandem::test::shell_quote(python) + " -c 'import gguf.quants, numpy'").exit_code ==
         0;
}

// The interpreter with gguf-py: $TANDEM_PYTHON (used as given, so a broken
// setting fails instead of skipping), else the venv scripts/install-deps.sh
// creates, else python3. Empty when none can import gguf.quants.
struct PyRef {
  std::string python;
  bool explicit_choice = false;
};

const PyRef& reference_python() {
  static const PyRef ref = [] {
    if (const char* p = std::getenv("TANDEM_PYTHON"); p && *p) return PyRef{p, true};
    if (const char* h = std::getenv("HOME"); h && *h) {
      const std::string venv = std::string(h) + "/.cache/tandem/pyref/bin/python";
      if (std::filesystem::exists(venv) && imports_gguf(venv)) return PyRef{venv, false};
    }
    if (imports_gguf("python3")) return PyRef{"python3", false};
    return PyRef{};
  }();
  return ref;
}

// Skips when no interpreter has gguf-py; fails when TANDEM_PYTHON names one
// that lacks it (an explicit setting that does not work is a mistake).
#define TANDEM_REQUIRE_PYREF_OR_SKIP(var)                                                         \
  const PyRef& var = reference_python();                                                          \
  if (var.python.empty()) {                                                                       \
    GTEST_SKIP() << "llama.cpp's Python reference is missing: `pip install gguf numpy` (or run "  \
                    "scripts/install-deps.sh, or set TANDEM_PYTHON to an interpreter with them)"; \
  }                                                                                               \
  if (var.explicit_choice && !imports_gguf(var.python)) {                                         \
    FAIL() << "TANDEM_PYTHON=" << var.python << " cannot `import gguf.quants, numpy`";            \
  }

// gguf-py's dequantization of `blocks`, or a failure message in *err.
std::vector<float> gguf_dequantize(const std::string& python, const IqCase& c, const std::vector<uint8_t>& blocks,
                                   std::string* err) {
  const std::string stem = testing::TempDir() + "tandem_iquant_" + std::to_string(::getpid()) + "_" + c.name;
  const std::string in = stem + ".bin", out = stem + ".f32";
  std::ofstream(in, std::ios::binary)
      .write(reinterpret_cast<const char*>(blocks.data()), static_cast<std::streamsize>(blocks.size()));
  const std::string script = tandem::test::source_dir() + "/scripts/iquant_reference.py";
  const auto r =
      tandem::test::run_command(tandem::test::shell_quote(python) + " " + tandem::test::shell_quote(script) + " " +
                                c.name + " " + tandem::test::shell_quote(in) + " " + tandem::test::shell_quote(out));
  const std::string bytes = tandem::test::read_file(out);
  std::filesystem::remove(in);
  std::filesystem::remove(out);
  if (r.exit_code != 0) {
    *err = "iquant_reference.py exited " + std::to_string(r.exit_code) + ": " + r.err;
    return {};
  }
  std::vector<float> f(bytes.size() / sizeof(float));
  std::memcpy(f.data(), bytes.data(), f.size() * sizeof(float));
  return f;
}

// ---- random but valid blocks --------------------------------------------------

// Writes the fp16 super-block scale `h` where the format keeps it: IQ1_M
// spreads it over the top nibbles of its four uint16 scale words, the others
// store it at the start of the block.
void set_scale(Type t, uint8_t* block, uint16_t h) {
  if (t == Type::IQ1_M) {
    uint8_t* sc = block + offsetof(q::BlockIQ1_M, scales);
    for (int k = 0; k < 4; ++k) {
      uint8_t& hi = sc[2 * k + 1];  // high byte of little-endian word k
      hi = static_cast<uint8_t>((hi & 0x0F) | ((h >> (4 * k)) & 0xF) << 4);
    }
    return;
  }
  std::memcpy(block, &h, 2);  // d is the first field of every other i-quant block
}

// nb blocks of random bytes (any bit pattern of the quants is valid) with the
// fp16 scale set to +-[1e-3, 1e-1]. Block 0 has every other byte 0x00,
// block 1 every other byte 0xFF, block 2 a -0 scale: the extremes of each
// index, sign and sub-scale field.
std::vector<uint8_t> random_blocks(const IqCase& c, int nb, std::mt19937& rng) {
  std::vector<uint8_t> buf(c.bytes * static_cast<size_t>(nb));
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  std::fill(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(c.bytes), 0x00);
  std::fill(buf.begin() + static_cast<std::ptrdiff_t>(c.bytes), buf.begin() + static_cast<std::ptrdiff_t>(2 * c.bytes),
            0xFF);
  std::uniform_real_distribution<float> mag(1e-3f, 1e-1f);
  for (int i = 0; i < nb; ++i) {
    const float d = (rng() & 1) ? mag(rng) : -mag(rng);
    set_scale(c.t, buf.data() + c.bytes * static_cast<size_t>(i), i == 2 ? 0x8000 : q::fp32_to_fp16(d));
  }
  return buf;
}

}  // namespace

// ============================================================================
// Geometry and traits.

TEST(IQuantTraits, GeometryMatchesGgml) {
  // ggml-common.h block sizes (bytes) for 256 values (IQ4_NL: 32).
  const size_t ggml_bytes[] = {66, 74, 82, 98, 110, 50, 56, 18, 136};
  for (size_t i = 0; i < std::size(kCases); ++i) {
    const IqCase& c = kCases[i];
    const q::TypeTraits& tr = q::traits(c.t);
    EXPECT_EQ(tr.name, c.name);
    EXPECT_EQ(c.bytes, ggml_bytes[i]) << c.name;
    EXPECT_EQ(tr.type_size, c.bytes) << c.name;
    EXPECT_EQ(tr.block_size, c.values) << c.name;
    EXPECT_TRUE(tr.quantized) << c.name;
    EXPECT_EQ(q::row_bytes(c.t, 4096), static_cast<size_t>(4096 / c.values) * c.bytes) << c.name;
    EXPECT_THROW(q::row_bytes(c.t, c.values + 16), tandem::core::Error) << c.name;
  }
}

TEST(IQuantTraits, DequantizeDotAndTheIQ4Quantizers) {
  for (const IqCase& c : kCases) {
    const q::TypeTraits& tr = q::traits(c.t);
    EXPECT_NE(tr.to_float, nullptr) << c.name;
    // llama-quantize makes IQ4_NL / IQ4_XS without an importance matrix by a
    // closed search, which Tandem reproduces; the grid types have no quantizer.
    EXPECT_EQ(tr.from_float != nullptr, c.t == Type::IQ4_NL || c.t == Type::IQ4_XS) << c.name;
    EXPECT_NE(tr.vec_dot, nullptr) << c.name;     // reference dot product: servable (slowly)
    EXPECT_EQ(tr.vec_dot_type, c.t == Type::IQ4_NL ? Type::Q8_0 : Type::Q8_K) << c.name;  // ggml's pairing
  }
}

// ============================================================================
// The generated tables: a few entries known from ggml-common.h, so a wrong
// regeneration (byte order, value map, row order) fails here.

TEST(IQuantTables, KnownEntries) {
  EXPECT_EQ(q::iq2xxs_grid[0], 0x0808080808080808u);
  EXPECT_EQ(q::iq2xxs_grid[1], 0x080808080808082bu);
  EXPECT_EQ(q::iq2xxs_grid[255], 0x2b2b2b1908081908u);
  EXPECT_EQ(q::iq2xs_grid[7], 0x080808080819192bu);
  EXPECT_EQ(q::iq2xs_grid[511], 0x2b2b2b2b2b2b2b2bu);
  EXPECT_EQ(q::iq2s_grid[1023], 0x2b2b2b2b2b2b2b2bu);
  EXPECT_EQ(q::iq3xxs_grid[1], 0x04040414u);
  EXPECT_EQ(q::iq3xxs_grid[255], 0x3e341c04u);
  EXPECT_EQ(q::iq3s_grid[3], 0x0101010bu);
  EXPECT_EQ(q::iq3s_grid[511], 0x0f0f0101u);
  EXPECT_EQ(q::iq1s_grid[0], 0xffffffffffffffffu);
  EXPECT_EQ(q::iq1s_grid[3], 0xffffffffffff01ffu);
  EXPECT_EQ(q::iq1s_grid[2047], 0x0101010101010101u);
  EXPECT_EQ(q::iq_grid_byte(q::iq2xxs_grid[1], 0), 0x2b);
  EXPECT_EQ(static_cast<int8_t>(q::iq_grid_byte(q::iq1s_grid[1], 1)), -1);
  const int8_t kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
  for (int i = 0; i < 16; ++i) EXPECT_EQ(q::kvalues_iq4nl[i], kv[i]) << i;
  EXPECT_EQ(q::ksigns_iq2xs[1], 129);
  EXPECT_EQ(q::ksigns_iq2xs[127], 255);
  for (int i = 0; i < 128; ++i) {  // 7 stored bits, the 8th makes the minus count even
    EXPECT_EQ(q::ksigns_iq2xs[i] & 127, i);
    EXPECT_EQ(std::popcount(static_cast<unsigned>(q::ksigns_iq2xs[i])) % 2, 0) << i;
  }
  EXPECT_EQ(q::IQ1S_DELTA, 0.125f);
}

// ============================================================================
// Hand-worked blocks (no Python needed): the formulas and element order.

TEST(IQuantReference, HandWorkedBlocks) {
  const uint16_t one = q::fp32_to_fp16(1.0f);
  {  // IQ4_NL: qs[j] low nibble -> element j, high -> j + 16.
    q::BlockIQ4_NL b{};
    b.d = q::fp32_to_fp16(0.5f);
    b.qs[0] = 0xF0;
    float y[32];
    q::ref::to_float_iq4_nl(&b, y, 32);
    EXPECT_EQ(y[0], 0.5f * -127);
    EXPECT_EQ(y[16], 0.5f * 113);
    EXPECT_EQ(y[1], 0.5f * -127);
  }
  {  // IQ2_XXS all-zero quants: scale (0.5 + 0) * 0.25, grid row 0 (all 8), no signs.
    q::BlockIQ2_XXS b{};
    b.d = one;
    b.qs[3] = 0x1000;  // group 0: a1 = 1 << 28, scale 1 -> 1.5 * 0.25 * 8 = 3
    b.qs[6] = 0x0001;  // group 1: a1 bit 0: ksigns index 1 -> elements 0 and 7 negative
    std::vector<float> y(256);
    q::ref::to_float_iq2_xxs(&b, y.data(), 256);
    EXPECT_EQ(y[0], 3.0f);
    EXPECT_EQ(y[31], 3.0f);
    EXPECT_EQ(y[32], -1.0f);
    EXPECT_EQ(y[33], 1.0f);
    EXPECT_EQ(y[39], -1.0f);
    EXPECT_EQ(y[255], 1.0f);
  }
  {  // IQ1_M: the fp16 scale lives in the top nibbles of the scale words.
    q::BlockIQ1_M b{};
    const uint16_t two = q::fp32_to_fp16(2.0f);  // 0x4000: only word 3 gets a nonzero nibble
    for (int k = 0; k < 4; ++k) b.scales[2 * k + 1] = static_cast<uint8_t>(((two >> (4 * k)) & 0xF) << 4);
    b.qh[0] = 0x08;  // group 0, l = 0: delta negative; grid row 0 (all -1)
    EXPECT_EQ(q::iq1m_scale_bits(b), two);
    std::vector<float> y(256);
    q::ref::to_float_iq1_m(&b, y.data(), 256);
    EXPECT_EQ(y[0], 2.0f * (-1 - 0.125f));
    EXPECT_EQ(y[8], 2.0f * (-1 + 0.125f));
  }
}

// ============================================================================
// Against gguf-py, bit for bit.

TEST(IQuantReference, ToFloatMatchesGgufPy) {
  TANDEM_REQUIRE_PYREF_OR_SKIP(py);
  std::mt19937 rng(20250611);
  constexpr int kBlocks = 96;
  for (const IqCase& c : kCases) {
    const std::vector<uint8_t> blocks = random_blocks(c, kBlocks, rng);
    std::string err;
    const std::vector<float> want = gguf_dequantize(py.python, c, blocks, &err);
    ASSERT_TRUE(err.empty()) << c.name << ": " << err;
    const int64_t n = kBlocks * c.values;
    ASSERT_EQ(want.size(), static_cast<size_t>(n)) << c.name;
    std::vector<float> got(static_cast<size_t>(n));
    q::traits(c.t).to_float(blocks.data(), got.data(), n);
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; ++i) {
      if (q::f32_bits(got[i]) != q::f32_bits(want[i]) && bad++ == 0) first = i;
    }
    if (bad > 0) {
      ADD_FAILURE() << c.name << ": " << bad << " of " << n << " values differ; first at block " << first / c.values
                    << " element " << first % c.values << ": got " << got[first] << " (bits 0x" << std::hex
                    << q::f32_bits(got[first]) << "), gguf-py " << want[first] << " (bits 0x"
                    << q::f32_bits(want[first]) << ")";
    }
  }
}

// ============================================================================
// The chunk decoders the CUDA kernels run (core/quant_dequant_iquants.h)
// against the reference to_float, bit for bit: same values, same element
// order. The device compiles the same source; the gpu tests compare its
// output with to_float again.

namespace {

// Expands `blocks` chunk by chunk with dequant_chunk; the number of values
// mismatching to_float's bits, and the first one in *first.
template <typename B>
int64_t chunk_mismatches(Type t, const std::vector<uint8_t>& blocks, int64_t* first) {
  constexpr int kValues = q::BlockValues<B>::n;
  constexpr int kChunks = kValues / q::kDequantChunk;
  static_assert(kChunks * q::kDequantChunk == kValues);
  EXPECT_EQ(kValues, q::traits(t).block_size);
  const int64_t nb = static_cast<int64_t>(blocks.size() / sizeof(B));
  std::vector<float> want(static_cast<size_t>(nb * kValues)), got(want.size());
  q::traits(t).to_float(blocks.data(), want.data(), nb * kValues);
  for (int64_t i = 0; i < nb; ++i) {
    B b;
    std::memcpy(&b, blocks.data() + i * static_cast<int64_t>(sizeof(B)), sizeof(B));
    for (int c = 0; c < kChunks; ++c) q::dequant_chunk(b, c, got.data() + i * kValues + c * q::kDequantChunk);
  }
  int64_t bad = 0;
  for (size_t i = 0; i < want.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0 && bad++ == 0) *first = static_cast<int64_t>(i);
  return bad;
}

int64_t chunk_mismatches(Type t, const std::vector<uint8_t>& blocks, int64_t* first) {
  switch (t) {
    case Type::IQ2_XXS:
      return chunk_mismatches<q::BlockIQ2_XXS>(t, blocks, first);
    case Type::IQ2_XS:
      return chunk_mismatches<q::BlockIQ2_XS>(t, blocks, first);
    case Type::IQ2_S:
      return chunk_mismatches<q::BlockIQ2_S>(t, blocks, first);
    case Type::IQ3_XXS:
      return chunk_mismatches<q::BlockIQ3_XXS>(t, blocks, first);
    case Type::IQ3_S:
      return chunk_mismatches<q::BlockIQ3_S>(t, blocks, first);
    case Type::IQ1_S:
      return chunk_mismatches<q::BlockIQ1_S>(t, blocks, first);
    case Type::IQ1_M:
      return chunk_mismatches<q::BlockIQ1_M>(t, blocks, first);
    case Type::IQ4_NL:
      return chunk_mismatches<q::BlockIQ4_NL>(t, blocks, first);
    case Type::IQ4_XS:
      return chunk_mismatches<q::BlockIQ4_XS>(t, blocks, first);
    default:
      ADD_FAILURE() << "not an i-quant";
      return -1;
  }
}

}  // namespace

TEST(IQuantDequantChunk, EqualsToFloatBitForBit) {
  std::mt19937_64 rng(20250702);
  std::mt19937 rng32(7);
  constexpr int64_t kBlocks = 64;
  for (const IqCase& c : kCases) {
    SCOPED_TRACE(c.name);
    // Rows as synthetic models make them (RMS-scaled random blocks), at two
    // scales, and the extreme blocks of random_blocks (all-zero and all-one
    // quants, a -0 scale).
    for (float rms : {0.02f, 3.0f}) {
      std::vector<uint8_t> row(q::row_bytes(c.t, kBlocks * c.values));
      q::random_valid_row(c.t, rng, rms, row.data(), kBlocks * c.values);
      int64_t first = -1;
      EXPECT_EQ(chunk_mismatches(c.t, row, &first), 0) << "rms " << rms << ", first at value " << first;
    }
    int64_t first = -1;
    EXPECT_EQ(chunk_mismatches(c.t, random_blocks(c, static_cast<int>(kBlocks), rng32), &first), 0)
        << "first at value " << first;
  }
}
