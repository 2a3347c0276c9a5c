#pragma once
// Q4_K weights repacked at load into groups of eight rows (Q4_Kx8), for
// AVX2 kernels that multiply eight rows by up to four tokens at once.
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

// True when repacking applies: AVX2 present, rows a multiple of 8, and the
// TANDEM_REPACK environment variable not set to 0.
bool q4_K_x8_enabled(int64_t rows, int64_t cols);

// rows × cols Q4_K matrix (rows row_bytes apart) → rows/8 groups of
// cols/256 BlockQ4Kx8, group after group.
std::vector<uint8_t> repack_q4_K_x8(const uint8_t* data, size_t row_bytes, int64_t rows, int64_t cols);

// Eight rows (one group, cols/256 blocks at w) × n_tok (1..4) Q8_K
// activation rows a[t]: out[t * out_stride + r].
void q4_K_x8_dot(int64_t cols, const uint8_t* w, const uint8_t* const* a, int n_tok, float* out, size_t out_stride);

}  // namespace tandem::cpu
