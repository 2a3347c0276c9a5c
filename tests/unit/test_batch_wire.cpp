// The ring message format: rows survive a round trip (f32 exactly, f16 within
// half-precision rounding), and malformed messages are errors naming the field.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/batch_wire.h"
#include "core/error.h"
#include "core/quant_blocks.h"

namespace tandem {
namespace {

namespace wire = core::wire;

TEST(BatchWire, RowsRoundTrip) {
  std::vector<uint8_t> slot(4096);
  const std::vector<wire::RowMeta> meta = {{0, 5, wire::kWantLogits, 42}, {3, 0, 0, 7}};
  const std::vector<float> rows = {1.5f, -2.25f, 3.0e-3f, 65504.0f, 0.1f, -0.0f, 7.0f, 1e-8f};
  for (wire::DType t : {wire::DType::F32, wire::DType::F16}) {
    const size_t n = wire::write_rows(slot, wire::Kind::Hidden, 9, 77, meta, rows.data(), 4, t);
    EXPECT_EQ(n, wire::message_bytes(2, 4, t));
    const wire::BatchView v = wire::parse(std::span<const uint8_t>(slot.data(), n));
    EXPECT_EQ(v.kind(), wire::Kind::Hidden);
    EXPECT_EQ(v.header.generation, 9u);
    EXPECT_EQ(v.header.batch_id, 77u);
    ASSERT_EQ(v.rows.size(), 2u);
    EXPECT_EQ(v.rows[0].pos, 5);
    EXPECT_EQ(v.rows[1].seq, 3);
    EXPECT_EQ(v.rows[0].flags, wire::kWantLogits);
    std::vector<float> back(rows.size());
    wire::read_rows(v, back.data());
    for (size_t i = 0; i < rows.size(); ++i) {
      const float want = t == wire::DType::F32 ? rows[i] : core::quant::fp16_to_fp32(core::quant::fp32_to_fp16(rows[i]));
      EXPECT_EQ(std::memcmp(&back[i], &want, 4), 0) << i;
    }
  }
}

TEST(BatchWire, ErrorMessagesCarryText) {
  std::vector<uint8_t> slot(8192);
  const size_t n = wire::write_error(slot, 1, 2, "layer 3 exploded");
  const wire::BatchView v = wire::parse(std::span<const uint8_t>(slot.data(), n));
  EXPECT_EQ(v.kind(), wire::Kind::Error);
  EXPECT_EQ(v.text, "layer 3 exploded");
}

TEST(BatchWire, TooBigForTheSlotIsAnError) {
  std::vector<uint8_t> slot(100);
  const std::vector<wire::RowMeta> meta(2);
  const std::vector<float> rows(64);
  EXPECT_THROW(wire::write_rows(slot, wire::Kind::Hidden, 0, 0, meta, rows.data(), 32, wire::DType::F32), core::Error);
}

TEST(BatchWire, MalformedMessagesAreRefused) {
  std::vector<uint8_t> slot(4096);
  const std::vector<wire::RowMeta> meta(1);
  const std::vector<float> rows(4);
  const size_t n = wire::write_rows(slot, wire::Kind::Hidden, 0, 0, meta, rows.data(), 4, wire::DType::F32);
  auto parse_with = [&](auto mutate, size_t len) {
    std::vector<uint8_t> m(slot.begin(), slot.begin() + n);
    wire::BatchHeader h;
    std::memcpy(&h, m.data(), sizeof h);
    mutate(h);
    std::memcpy(m.data(), &h, sizeof h);
    return wire::parse(std::span<const uint8_t>(m.data(), len));
  };
  EXPECT_THROW(parse_with([](wire::BatchHeader& h) { h.magic = 0; }, n), core::Error);
  EXPECT_THROW(parse_with([](wire::BatchHeader& h) { h.kind = 9; }, n), core::Error);
  EXPECT_THROW(parse_with([](wire::BatchHeader& h) { h.dtype = 5; }, n), core::Error);
  EXPECT_THROW(parse_with([](wire::BatchHeader& h) { h.n_rows = 1000000; }, n), core::Error);
  EXPECT_THROW(parse_with([](wire::BatchHeader& h) { h.row_width = 0xffffffff; }, n), core::Error);
  // Found by fuzz_shm_ring: rows × width × 4 + rows × 16 wrapped around 2^64
  // to a size that fit the slot, and parse handed out 2^31 rows.
  EXPECT_THROW(parse_with(
                   [](wire::BatchHeader& h) {
                     h.n_rows = 0x80000001u;
                     h.row_width = 0xfffffffau;
                   },
                   n),
               core::Error);
  EXPECT_EQ(wire::message_bytes(0x80000001u, 0xfffffffau, wire::DType::F32), std::numeric_limits<size_t>::max());
  EXPECT_THROW(parse_with([](wire::BatchHeader&) {}, n - 1), core::Error);
  EXPECT_THROW(parse_with([](wire::BatchHeader&) {}, 10), core::Error);
  EXPECT_NO_THROW(parse_with([](wire::BatchHeader&) {}, n));
  EXPECT_THROW(wire::dtype_from_name("f8"), core::Error);
}

}  // namespace
}  // namespace tandem
