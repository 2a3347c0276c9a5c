#pragma once
// Q3_K, Q4_K and Q6_K weights repacked at load into groups of eight rows
// (Q3_Kx8, Q4_Kx8, Q6_Kx8), for AVX2 kernels that multiply eight rows by up to four
// tokens at once.
//
// Why: in GGUF's row-major layout a kernel applies each sub-block scale
// with one multiply per 32 values per row per token (pmaddwd), next to the
// pmaddubsw that does the products — on CPUs with one vector integer
// multiplier that doubles the multiplier's work. With eight rows' quants
// side by side (4 bytes of each row per 256-bit vector) and a token's four
// activations broadcast, the int16 sums of a whole sub-block accumulate
// before one scale multiply covers eight rows: ~9 multiplies per 256 values
// and row instead of 16, and fewer other instructions too.
//
// The results are bit-identical to best_vec_dot's for every row and token
// (same exact integer totals per block, same float steps), so a repacked
// matrix gives the same logits as the file's layout, in any batch.
#include <cstdint>
#include <vector>

#include "core/quant_types.h"

namespace tandem::cpu {

// Eight Q4_K rows, one super-block (256 values) each.
struct BlockQ4Kx8 {
  uint16_t d[8];       // per row: fp16 scale of the scales
  uint16_t dmin[8];    // per row: fp16 scale of the mins
  uint8_t sc[8][8];    // [sub-block j][row]: 6-bit scale
  uint8_t mn[4][8][2]; // [sub-block pair][row][2]: 6-bit mins of sub-blocks 2p, 2p+1
  // [value chunk p][group g][row][4]: the row's qs[32p + 4g .. +4]; low
  // nibbles are values 64p + 4g .. +3 (sub-block 2p), high nibbles the same
  // positions 32 values later (sub-block 2p + 1).
  uint8_t qs[4][8][8][4];
};
static_assert(sizeof(BlockQ4Kx8) == 16 + 16 + 64 + 64 + 1024, "BlockQ4Kx8 layout");

// Eight Q6_K rows, one super-block each. Q6_K's quants are 6-bit (0..63):
// int16 sums may cover only two groups of four values before the scale
// multiply (four would overflow), still far fewer multiplies than per row.
struct BlockQ6Kx8 {
  uint16_t d[8];               // per row: fp16 super-block scale
  int8_t sc[8][8][2];          // [sub-block pair][row][2]: int8 scales of sub-blocks (of 16) 2k, 2k+1
  uint8_t ql[2][2][8][8][4];   // [half h][k & 1][group g][row][4]: the row's ql[64h + 32(k&1) + 4g .. +4]
  uint8_t qh[2][8][8][4];      // [half h][group g][row][4]: the row's qh[32h + 4g .. +4]
};
static_assert(sizeof(BlockQ6Kx8) == 16 + 128 + 1024 + 512, "BlockQ6Kx8 layout");

// Eight Q3_K rows, one super-block each. Each quant's high bit joins its two
// low bits (q + 4, 0..7), stored as nibbles in Q4_Kx8's arrangement, and the
// -4 comes out once per block through the bsums. A third more bytes than the
// file's 3.4 bits per weight, but the kernel unpacks like Q4_K's: measured
// faster on this project's 2-core AVX2 machine, where Q3_K decode was
// compute-bound at a quarter of the memory bandwidth.
struct BlockQ3Kx8 {
  uint16_t d[8];           // per row: fp16 super-block scale
  int8_t sc[8][8][2];      // [32-value chunk][row][2]: scales (minus 32) of sub-blocks (of 16) 2c, 2c+1
  uint8_t qs[4][8][8][4];  // [p][group g][row][4]: q+4 of values 64p + 4g .. +3 (low nibbles), +32 (high)
};
static_assert(sizeof(BlockQ3Kx8) == 16 + 128 + 1024, "BlockQ3Kx8 layout");

// True when `type` has an eight-row layout and repacking applies: AVX2
// present, rows a multiple of 8, cols of 256, and the TANDEM_REPACK
// environment variable not set to 0.
bool x8_enabled(core::quant::Type type, int64_t rows, int64_t cols);

// Bytes of one eight-row group of `cols` values.
size_t x8_group_bytes(core::quant::Type type, int64_t cols);

// rows × cols matrix of `type` (rows row_bytes apart) → rows/8 groups of
// cols/256 eight-row blocks, group after group.
std::vector<uint8_t> repack_x8(core::quant::Type type, const uint8_t* data, size_t row_bytes, int64_t rows, int64_t cols);

// The same for groups [g0, g1) only (rows 8·g0 .. 8·g1), written to
// out + g · x8_group_bytes(type, cols): groups are independent, so a loader
// can repack a matrix on all its threads.
void repack_x8_groups(core::quant::Type type, const uint8_t* data, size_t row_bytes, int64_t cols, int64_t g0,
                      int64_t g1, uint8_t* out);

// Eight rows (one group at w, `cols` values) × the kernel's token count of
// Q8_K activation rows a[t]: out[t * out_stride + r].
using X8DotFn = void (*)(int64_t cols, const uint8_t* w, const uint8_t* const* a, float* out, size_t out_stride);

// The kernel for `type` and n_tok (1..4) tokens per call; throws core::Error
// for a type without an eight-row layout or a CPU without AVX2. `batch`:
// llama.cpp's float steps for a matmul over kBatchArithmeticTokens or more
// tokens (simd_dot.h; Q3_K and Q6_K, Q4_K has one arithmetic).
X8DotFn x8_kernel(core::quant::Type type, int n_tok, bool batch = false);

// Eight rows (one group at w) × n_tok (1..4) Q8_K activation rows a[t]:
// out[t * out_stride + r].
void x8_dot(core::quant::Type type, int64_t cols, const uint8_t* w, const uint8_t* const* a, int n_tok, float* out,
            size_t out_stride);

}  // namespace tandem::cpu
