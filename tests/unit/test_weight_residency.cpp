// Where the CPU worker keeps its weights: the 2 MiB-aligned buffer behind the
// repacked layouts, repacking in parallel pieces, and mlock / huge pages
// changing residency but never the numbers.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <random>

#include "core/gguf_file.h"
#include "core/synthetic_model.h"
#include "cpu_worker/llama_engine.h"
#include "cpu_worker/repack_x8.h"
#include "cpu_worker/weight_buffer.h"

namespace tandem {
namespace {

using core::quant::Type;

TEST(WeightBuffer, HugePageAlignedZeroFilledAndMovable) {
  for (bool huge : {false, true}) {
    cpu::WeightBuffer b((3u << 20) + 123, huge);
    ASSERT_NE(b.data(), nullptr);
    EXPECT_EQ(b.size(), (3u << 20) + 123);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % (2u << 20), 0u) << "not 2 MiB-aligned";
    for (size_t i = 0; i < b.size(); i += 4099) ASSERT_EQ(b.data()[i], 0) << "byte " << i;
    b.data()[b.size() - 1] = 7;  // the last byte asked for is writable
    uint8_t* p = b.data();
    cpu::WeightBuffer moved(std::move(b));
    EXPECT_EQ(moved.data(), p);
    EXPECT_EQ(b.data(), nullptr);
    EXPECT_EQ(moved.data()[moved.size() - 1], 7);
  }
  cpu::WeightBuffer empty(0, false);
  EXPECT_EQ(empty.data(), nullptr);
}

TEST(WeightBuffer, LockPagesLocksOrSaysWhy) {
  cpu::WeightBuffer b(1u << 20, false);
  const std::string err = cpu::lock_pages(b.data(), b.size());
  if (err.empty()) {
    cpu::unlock_pages(b.data(), b.size());
  } else {
    // Unprivileged with a small RLIMIT_MEMLOCK: the reason names the limit.
    EXPECT_NE(err.find("RLIMIT_MEMLOCK"), std::string::npos) << err;
  }
}

TEST(Repack, GroupRangesEqualWholeMatrix) {
  for (Type type : {Type::Q3_K, Type::Q4_K, Type::Q6_K}) {
    const int64_t rows = 40, cols = 512;
    const size_t rb = core::quant::row_bytes(type, cols);
    std::vector<uint8_t> w(rows * rb);
    std::mt19937 rng(static_cast<uint32_t>(type));
    for (auto& v : w) v = static_cast<uint8_t>(rng());
    const std::vector<uint8_t> whole = cpu::repack_x8(type, w.data(), rb, rows, cols);
    std::vector<uint8_t> pieces(whole.size(), 0xAB);
    for (auto [g0, g1] : {std::pair<int64_t, int64_t>{3, 5}, {0, 2}, {2, 3}})
      cpu::repack_x8_groups(type, w.data(), rb, cols, g0, g1, pieces.data());
    EXPECT_EQ(pieces, whole) << core::quant::type_name(type);
  }
}

class ResidencyTest : public testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::TempDir() + "tandem_residency_" + std::to_string(::getpid()) + ".gguf";
    core::SyntheticModelSpec s;
    s.n_layer = 2;
    s.n_embd = 256;
    s.n_ff = 512;
    s.n_head = 4;
    s.n_head_kv = 2;
    s.mix = core::QuantMix::Q4_K_M;  // Q4_K / Q6_K matrices: repacked on AVX2
    core::write_synthetic_model(path_, s);
    file_ = std::shared_ptr<core::gguf::File>(core::gguf::File::open(path_));
  }
  void TearDown() override { std::filesystem::remove(path_); }

  std::unique_ptr<cpu::LlamaEngine> engine(cpu::Residency r) {
    cpu::EngineOptions eo;
    eo.threads = 2;
    eo.kv.n_ctx = 32;
    eo.residency = r;
    return std::make_unique<cpu::LlamaEngine>(file_, cpu::ShardSpec{}, eo);
  }

  std::string path_;
  std::shared_ptr<core::gguf::File> file_;
};

TEST_F(ResidencyTest, LockedAndHugePagesGiveTheSameLogits) {
  auto plain = engine({});
  auto pinned = engine({.huge_pages = true, .mlock = true});
  EXPECT_EQ(plain->locked_bytes(), 0u);
  EXPECT_EQ(plain->repacked_bytes(), pinned->repacked_bytes());
  if (cpu::x8_enabled(Type::Q4_K, 8, 256)) {
    EXPECT_GT(plain->repacked_bytes(), 0u) << "nothing was repacked";
  }
  if (pinned->lock_error().empty()) {
    // Everything decode reads: the repacked copy plus what stays mapped.
    EXPECT_GE(pinned->locked_bytes(), pinned->repacked_bytes());
    EXPECT_GT(pinned->locked_bytes(), 0u);
  } else {
    EXPECT_EQ(pinned->locked_bytes(), 0u) << "a failed lock must leave nothing half-locked";
    EXPECT_NE(pinned->lock_error().find("mlock"), std::string::npos) << pinned->lock_error();
  }
  const std::vector<int32_t> ids = {5, 17, 99, 3, 250};
  std::vector<float> a, b;
  plain->forward(ids, 0, 0, true, a);
  pinned->forward(ids, 0, 0, true, b);
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace tandem
