#include "cpu_worker/repack_x4.h"

#include <cstring>

#include "core/error.h"
#include "core/quant_blocks.h"
#include "cpu_worker/simd_dot.h"

namespace tandem::cpu {

namespace q = core::quant;

namespace {

size_t x4_block_bytes(q::Type t) {
  switch (t) {
    case q::Type::Q4_0:
    case q::Type::IQ4_NL: return sizeof(BlockQ4_0x4);  // same block shape: fp16 d + 16 nibble bytes
    case q::Type::Q4_1: return sizeof(BlockQ4_1x4);
    case q::Type::Q8_0: return sizeof(BlockQ8_0x4);
    default: return 0;
  }
}

template <typename Block, typename Block4>
void pack(const uint8_t* data, size_t row_bytes, int64_t nb, int64_t g, Block4* out) {
  for (int r = 0; r < 4; ++r) {
    const auto* row = reinterpret_cast<const Block*>(data + static_cast<size_t>(4 * g + r) * row_bytes);
    for (int64_t i = 0; i < nb; ++i) {
      Block4& b = out[g * nb + i];
      b.d[r] = row[i].d;
      if constexpr (requires { b.m[r]; }) b.m[r] = row[i].m;
      std::memcpy(b.qs[r], row[i].qs, sizeof(b.qs[r]));
    }
  }
}

}  // namespace

bool x4_enabled(q::Type type, int64_t rows, int64_t cols) {
  return repack_enabled() && x4_block_bytes(type) != 0 && cpu_has_avx2() && rows % 4 == 0 && cols % 32 == 0;
}

size_t x4_group_bytes(q::Type type, int64_t cols) { return static_cast<size_t>(cols / 32) * x4_block_bytes(type); }

void repack_x4_groups(q::Type type, const uint8_t* data, size_t row_bytes, int64_t cols, int64_t g0, int64_t g1,
                      uint8_t* out) {
  if (x4_block_bytes(type) == 0 || cols % 32 != 0)
    throw core::Error("four-row repack needs Q4_0, Q4_1, Q8_0 or IQ4_NL and cols % 32 == 0");
  const int64_t nb = cols / 32;
  for (int64_t g = g0; g < g1; ++g) {
    if (type == q::Type::Q4_0)
      pack<q::BlockQ4_0>(data, row_bytes, nb, g, reinterpret_cast<BlockQ4_0x4*>(out));
    else if (type == q::Type::IQ4_NL)
      pack<q::BlockIQ4_NL>(data, row_bytes, nb, g, reinterpret_cast<BlockQ4_0x4*>(out));
    else if (type == q::Type::Q4_1)
      pack<q::BlockQ4_1>(data, row_bytes, nb, g, reinterpret_cast<BlockQ4_1x4*>(out));
    else
      pack<q::BlockQ8_0>(data, row_bytes, nb, g, reinterpret_cast<BlockQ8_0x4*>(out));
  }
}

std::vector<uint8_t> repack_x4(q::Type type, const uint8_t* data, size_t row_bytes, int64_t rows, int64_t cols) {
  if (rows % 4 != 0) throw core::Error("four-row repack needs rows % 4 == 0");
  std::vector<uint8_t> out(static_cast<size_t>(rows / 4) * x4_group_bytes(type, cols));
  repack_x4_groups(type, data, row_bytes, cols, 0, rows / 4, out.data());
  return out;
}

}  // namespace tandem::cpu
