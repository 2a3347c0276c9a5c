#pragma once
// The GEMV and f16 row-dequantization kernels of gemv.h, as templates over a
// weight "Format", shared by the translation units that instantiate them:
// gemv.cu (dense, legacy and K-quant formats) and gemv_iquants.cu (the
// i-quants), which build in parallel: one TU for all would take the sum of
// their compile times, minutes.
//
// Rounding: the dequantizers of core/quant_dequant.h write their multiply-adds
// with explicit rounding on the device (__fmul_rn/__fadd_rn), so nvcc's default
// FMA contraction cannot change a dequantized value and dequant_rows_f16 stays
// bit-exact with the host to_float. The dot products below use __fmaf_rn on
// purpose (fused, fast). Build with fast-math off.
//
// gemv kernel layout (one CTA = kWarps warps = a group of R consecutive rows):
//  * A row is cut into tiles of 32 chunks (a chunk = 16 values, the unit of
//    core::quant::dequant_chunk). Warp w of the CTA takes tiles w, w + kWarps,
//    ... of all R rows (split-K inside the CTA, so even 1024-row matrices fill
//    the GPU), and lane l expands chunk l of the tile: consecutive lanes read
//    consecutive bytes.
//  * Weights are staged global -> shared with 16-byte cp.async copies (fully
//    coalesced 128-bit transactions whatever the block size: the shared copy
//    keeps the global address modulo 16, so the few bytes of a tile outside
//    whole aligned 16-byte segments are copied one by one). Staging is double
//    buffered: the copy of the warp's next tile is in flight while the current
//    one is dequantized. The dequantizers then read their block from shared
//    memory, where the byte-granular, data-dependent accesses are cheap.
//  * Activations are read straight from global memory (__ldg, L1/L2 cached;
//    at most 8 tokens x cols f32, e.g. 256 KiB for 8192 cols: every warp of
//    the GPU reads the same vector, so it stays L2/L1 resident). Staging them
//    in shared memory would cost the same shared-memory bandwidth an L1 hit
//    costs and a CTA-wide barrier per tile. Each x value loaded feeds the R
//    rows of the CTA, which keeps the L1 traffic for x below the weight
//    traffic: for 1-2 tokens x of the chunk is held in registers and the R
//    (8) rows are dequantized one after the other; for 3-8 tokens the R (4)
//    rows' chunks are held in registers and x is streamed one float4 at a time.
//  * Accumulation in f32 registers (acc[R][T], T = 1, 2, 4 or 8 tokens as a template
//    parameter), warp reduction with __shfl_xor_sync, then the kWarps partial
//    sums of each (row, token) are added in a fixed order through shared
//    memory: results are deterministic.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/quant_blocks.h"
#include "core/quant_dequant.h"
#include "core/quant_types.h"
#include "gpu_worker/cuda/cuda_error.h"
#include "gpu_worker/cuda/device_matrix.h"
#include "gpu_worker/cuda/gemv.h"

namespace tandem::gpu::detail {

namespace q = core::quant;
using q::Type;

constexpr int kChunkValues = q::kDequantChunk;  // 16

// ---------------------------------------------------------------------------
// Weight formats as the kernels see them: a row is a sequence of blocks of
// kBytes bytes holding kValues values; chunk(blk, c, out) expands chunk c
// (16 values) of the block at blk. Dense formats use 16-value "blocks".

// B's dequant_chunk is found by argument-dependent lookup where the kernel is
// instantiated, so a TU can add block types from another header
// (core/quant_dequant_iquants.h) whatever its include order.
template <typename B>
struct QuantFormat {
  static constexpr int kValues = q::BlockValues<B>::n;
  static constexpr int kBytes = static_cast<int>(sizeof(B));
  static constexpr int kAlign = static_cast<int>(alignof(B));
  __device__ __forceinline__ static void chunk(const unsigned char* blk, int c, float out[16]) {
    dequant_chunk(*reinterpret_cast<const B*>(blk), c, out);
  }
};

struct F16Format {
  static constexpr int kValues = kChunkValues;
  static constexpr int kBytes = kChunkValues * 2;
  static constexpr int kAlign = 2;
  __device__ __forceinline__ static void chunk(const unsigned char* blk, int, float out[16]) {
    q::dequant_chunk_f16(reinterpret_cast<const uint16_t*>(blk), 0, out);
  }
};

struct BF16Format {
  static constexpr int kValues = kChunkValues;
  static constexpr int kBytes = kChunkValues * 2;
  static constexpr int kAlign = 2;
  __device__ __forceinline__ static void chunk(const unsigned char* blk, int, float out[16]) {
    q::dequant_chunk_bf16(reinterpret_cast<const uint16_t*>(blk), 0, out);
  }
};

struct F32Format {
  static constexpr int kValues = kChunkValues;
  static constexpr int kBytes = kChunkValues * 4;
  static constexpr int kAlign = 4;
  __device__ __forceinline__ static void chunk(const unsigned char* blk, int, float out[16]) {
    const float* f = reinterpret_cast<const float*>(blk);
#pragma unroll
    for (int l = 0; l < 16; ++l) out[l] = f[l];
  }
};

// ---------------------------------------------------------------------------
// Launch geometry.

constexpr int kWarps = 4;  // warps per CTA (split the columns of its rows)
constexpr int kThreads = kWarps * 32;
constexpr int kTileChunks = 32;  // chunks per row tile: one per lane
// Static shared memory for the staging buffers of one CTA (the 48 KiB static
// limit leaves room for the reduction scratch).
constexpr int kStageBudget = 40 * 1024;

template <class F>
struct Geometry {
  static constexpr int kChunks = F::kValues / kChunkValues;  // chunks per block: 1, 2 or 16
  static_assert(kChunks >= 1 && kTileChunks % kChunks == 0, "chunks per block must divide the tile");
  static constexpr int kTileBlocks = kTileChunks / kChunks;
  static constexpr int kTileBytes = kTileBlocks * F::kBytes;
  // Tile bytes placed at their global address mod 16 (up to 15 bytes of
  // lead-in), rounded up to whole 16-byte segments.
  static constexpr int kSlot = (kTileBytes + 15 + 15) / 16 * 16;
};

// Rows per CTA: 8 with 1-2 tokens (x in registers, rows streamed), 4 with
// 3-8 (rows' chunks in registers, x streamed); fewer where two buffers per
// row and warp would not fit kStageBudget (dense f16/bf16/f32 rows).
template <class F, int T>
__host__ __device__ constexpr int rows_per_cta() {
  const int want = T <= 2 ? 8 : 4;
  const int fit = kStageBudget / (kWarps * 2 * Geometry<F>::kSlot);
  return fit < 1 ? 1 : (fit < want ? fit : want);
}

// ---------------------------------------------------------------------------
// Device helpers.

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  const auto s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are still pending.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Warp-cooperative copy of len bytes at g into slot, byte g[k] landing at
// slot[(g mod 16) + k]: whole aligned 16-byte segments by cp.async, the
// partial first/last segment byte by byte (never reading outside [g, g+len)).
__device__ __forceinline__ void stage_bytes(unsigned char* slot, const unsigned char* g, int len, int lane) {
  const int head = static_cast<int>(reinterpret_cast<uintptr_t>(g) & 15u);
  const int n_seg = (head + len + 15) / 16;
  for (int s = lane; s < n_seg; s += 32) {
    const int lo = 16 * s - head;  // offset from g of the segment's first byte (may be < 0)
    unsigned char* d = slot + 16 * s;
    if (lo >= 0 && lo + 16 <= len) {
      cp_async16(d, g + lo);
    } else {
      const int i0 = lo < 0 ? -lo : 0;
      const int i1 = len - lo < 16 ? len - lo : 16;
      for (int i = i0; i < i1; ++i) d[i] = g[lo + i];
    }
  }
}

// 16 consecutive activations (x 16-byte aligned when vec).
__device__ __forceinline__ void load_x16(const float* __restrict__ x, bool vec, float out[16]) {
  if (vec) {
    const float4* p = reinterpret_cast<const float4*>(x);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const float4 v = __ldg(p + k);
      out[4 * k + 0] = v.x;
      out[4 * k + 1] = v.y;
      out[4 * k + 2] = v.z;
      out[4 * k + 3] = v.w;
    }
  } else {
#pragma unroll
    for (int l = 0; l < 16; ++l) out[l] = __ldg(x + l);
  }
}

__device__ __forceinline__ float4 load_x4(const float* __restrict__ x, bool vec) {
  if (vec) return __ldg(reinterpret_cast<const float4*>(x));
  return make_float4(__ldg(x), __ldg(x + 1), __ldg(x + 2), __ldg(x + 3));
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

struct GemvArgs {
  const unsigned char* w;
  size_t row_bytes;
  int64_t rows;
  int64_t cols;
  const float* x;
  float* y;
  bool x_vec;  // x 16-byte aligned: float4 loads
  int n_tok;   // tokens actually present (<= the kernel's T; the rest are zero and not written)
};

template <class F, int T>
__global__ void __launch_bounds__(kThreads) gemv_kernel(const GemvArgs a) {
  using G = Geometry<F>;
  constexpr int R = rows_per_cta<F, T>();
  static_assert(R * T <= kThreads, "one thread per (row, token) in the final sum");
  __shared__ __align__(16) unsigned char stage[kWarps][2][R][G::kSlot];
  __shared__ float partial[kWarps][R][T];

  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * R;
  const int n_rows = static_cast<int>(a.rows - row0 < R ? a.rows - row0 : R);
  const int64_t n_blocks = a.cols / F::kValues;
  const int64_t n_tiles = (n_blocks + G::kTileBlocks - 1) / G::kTileBlocks;
  const unsigned char* wrow0 = a.w + static_cast<size_t>(row0) * a.row_bytes;

  // This lane's chunk within a tile.
  const int blk = lane / G::kChunks;
  const int c = lane % G::kChunks;

  float acc[R][T];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < T; ++t) acc[r][t] = 0.0f;

  // Stage tile `tile` of every row into buffer `buf`, as one cp.async group.
  auto stage_tile = [&](int buf, int64_t tile) {
    const int64_t b0 = tile * G::kTileBlocks;
    const int nb = static_cast<int>(n_blocks - b0 < G::kTileBlocks ? n_blocks - b0 : G::kTileBlocks);
#pragma unroll
    for (int r = 0; r < R; ++r)
      if (r < n_rows)
        stage_bytes(stage[warp][buf][r], wrow0 + r * a.row_bytes + static_cast<size_t>(b0) * F::kBytes, nb * F::kBytes,
                    lane);
    cp_async_commit();
  };

  int buf = 0;
  int64_t tile = warp;
  if (tile < n_tiles)
    stage_tile(0, tile);
  else
    cp_async_commit();
  for (; tile < n_tiles; tile += kWarps) {
    if (tile + kWarps < n_tiles)
      stage_tile(buf ^ 1, tile + kWarps);
    else
      cp_async_commit();  // empty group: keeps "all but the newest" meaning this tile
    cp_async_wait<1>();
    __syncwarp();  // every lane's copies of this tile are visible

    const int64_t b0 = tile * G::kTileBlocks;
    if (b0 + blk < n_blocks) {
      const int64_t col = (b0 + blk) * F::kValues + c * kChunkValues;
      const float* xc = a.x + col;
      // Byte offset of this lane's block inside each row's slot.
      auto block_in_slot = [&](int r) {
        const uintptr_t g = reinterpret_cast<uintptr_t>(wrow0 + r * a.row_bytes + static_cast<size_t>(b0) * F::kBytes);
        return stage[warp][buf][r] + (g & 15u) + blk * F::kBytes;
      };
      if constexpr (T <= 2) {
        float xv[T][16];
#pragma unroll
        for (int t = 0; t < T; ++t) {
          if (t < a.n_tok) {
            load_x16(xc + t * a.cols, a.x_vec, xv[t]);
          } else {
#pragma unroll
            for (int l = 0; l < 16; ++l) xv[t][l] = 0.0f;
          }
        }
#pragma unroll
        for (int r = 0; r < R; ++r) {
          if (r < n_rows) {
            float wv[16];
            F::chunk(block_in_slot(r), c, wv);
#pragma unroll
            for (int t = 0; t < T; ++t)
#pragma unroll
              for (int l = 0; l < 16; ++l) acc[r][t] = __fmaf_rn(wv[l], xv[t][l], acc[r][t]);
          }
        }
      } else {
        float wv[R][16];
#pragma unroll
        for (int r = 0; r < R; ++r) {
          if (r < n_rows) {
            F::chunk(block_in_slot(r), c, wv[r]);
          } else {
#pragma unroll
            for (int l = 0; l < 16; ++l) wv[r][l] = 0.0f;
          }
        }
#pragma unroll
        for (int t = 0; t < T; ++t) {
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            const float4 xv = t < a.n_tok ? load_x4(xc + t * a.cols + 4 * k, a.x_vec) : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
            for (int r = 0; r < R; ++r) {
              acc[r][t] = __fmaf_rn(wv[r][4 * k + 0], xv.x, acc[r][t]);
              acc[r][t] = __fmaf_rn(wv[r][4 * k + 1], xv.y, acc[r][t]);
              acc[r][t] = __fmaf_rn(wv[r][4 * k + 2], xv.z, acc[r][t]);
              acc[r][t] = __fmaf_rn(wv[r][4 * k + 3], xv.w, acc[r][t]);
            }
          }
        }
      }
    }
    __syncwarp();  // done reading `buf` before it is restaged
    buf ^= 1;
  }

#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < T; ++t) {
      const float s = warp_sum(acc[r][t]);
      if (lane == 0) partial[warp][r][t] = s;
    }
  __syncthreads();
  const int i = static_cast<int>(threadIdx.x);
  if (i < R * T) {
    const int r = i / T, t = i % T;
    if (r < n_rows && t < a.n_tok) {
      float s = partial[0][r][t];
#pragma unroll
      for (int k = 1; k < kWarps; ++k) s += partial[k][r][t];
      a.y[static_cast<int64_t>(t) * a.rows + row0 + r] = s;
    }
  }
}

template <class F, int T>
void launch_gemv_t(const GemvArgs& a, cudaStream_t stream) {
  constexpr int R = rows_per_cta<F, T>();
  const int64_t grid = (a.rows + R - 1) / R;
  gemv_kernel<F, T><<<static_cast<unsigned>(grid), kThreads, 0, stream>>>(a);
  TANDEM_CUDA_LAUNCH_CHECK();
}

template <class F>
void launch_gemv(const GemvArgs& a, int n_tokens, cudaStream_t stream) {
  // Kernels for 1, 2, 4 and 8 tokens; 3 runs on the 4-token kernel, 5..7 on
  // the 8-token one with the missing tokens zero (GEMV is bound by the weight
  // reads, which stay one per block; half the instantiations halve the build).
  static_assert(kGemvMaxTokens == 8, "instantiate one kernel per token-count class");
  switch (n_tokens) {
    case 1:
      return launch_gemv_t<F, 1>(a, stream);
    case 2:
      return launch_gemv_t<F, 2>(a, stream);
    case 3:
    case 4:
      return launch_gemv_t<F, 4>(a, stream);
    case 5:
    case 6:
    case 7:
    case 8:
      return launch_gemv_t<F, 8>(a, stream);
    default:
      break;
  }
  throw core::Error("gemv: n_tokens " + std::to_string(n_tokens) + " outside 1.." + std::to_string(kGemvMaxTokens));
}

// ---------------------------------------------------------------------------
// dequant_rows_f16: one thread per chunk, reading its block from global memory.

template <class F>
__global__ void __launch_bounds__(256)
    dequant_f16_kernel(const unsigned char* __restrict__ w, size_t row_bytes, int64_t row0, int64_t n_rows,
                       int64_t cols, __half* __restrict__ out, bool out_vec) {
  constexpr int kChunks = F::kValues / kChunkValues;
  const int64_t chunks_per_row = cols / kChunkValues;
  const int64_t total = n_rows * chunks_per_row;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t r = i / chunks_per_row;
    const int64_t ci = i - r * chunks_per_row;
    const int64_t b = ci / kChunks;
    const int c = static_cast<int>(ci - b * kChunks);
    float v[16];
    F::chunk(w + static_cast<size_t>(row0 + r) * row_bytes + static_cast<size_t>(b) * F::kBytes, c, v);
    __half* o = out + r * cols + ci * kChunkValues;
    if (out_vec) {
      uint32_t packed[8];
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        const __half2 h = __halves2half2(__float2half_rn(v[2 * k]), __float2half_rn(v[2 * k + 1]));
        std::memcpy(&packed[k], &h, sizeof h);
      }
      uint4* o4 = reinterpret_cast<uint4*>(o);
      o4[0] = make_uint4(packed[0], packed[1], packed[2], packed[3]);
      o4[1] = make_uint4(packed[4], packed[5], packed[6], packed[7]);
    } else {
#pragma unroll
      for (int l = 0; l < 16; ++l) o[l] = __float2half_rn(v[l]);
    }
  }
}

template <class F>
void launch_dequant_f16(const DeviceMatrix& w, int64_t row0, int64_t n_rows, __half* out, cudaStream_t stream) {
  constexpr int kBlock = 256;
  const int64_t total = n_rows * (w.cols / kChunkValues);
  const int64_t grid = std::min<int64_t>((total + kBlock - 1) / kBlock, int64_t{1} << 20);
  const bool out_vec = (reinterpret_cast<uintptr_t>(out) & 15u) == 0;
  dequant_f16_kernel<F><<<static_cast<unsigned>(grid), kBlock, 0, stream>>>(
      static_cast<const unsigned char*>(w.data), w.row_bytes, row0, n_rows, w.cols, out, out_vec);
  TANDEM_CUDA_LAUNCH_CHECK();
}

// ---------------------------------------------------------------------------
// Host-side checks and the per-format entry points.

inline std::string type_label(Type t) {
  const q::TypeTraits* tr = q::find_traits(static_cast<uint32_t>(t));
  return tr ? std::string(tr->name) : "type id " + std::to_string(static_cast<uint32_t>(t));
}

// Throws core::Error unless w is a matrix the kernels can read as format F.
template <class F>
void check_matrix(const DeviceMatrix& w, const char* fn) {
  const std::string name = type_label(w.type);
  if (w.rows < 0 || w.cols < 0)
    throw core::Error(std::string(fn) + ": negative shape " + std::to_string(w.rows) + " x " + std::to_string(w.cols));
  if (w.cols % F::kValues != 0) {
    const bool dense = F::kValues == kChunkValues && q::traits(w.type).block_size == 1;
    throw core::Error(std::string(fn) + ": " + std::to_string(w.cols) + " columns is not a multiple of " + name +
                      (dense ? "'s 16-value chunk (dense rows are read 16 values at a time)"
                             : "'s block size " + std::to_string(F::kValues)));
  }
  const size_t need = static_cast<size_t>(w.cols / F::kValues) * F::kBytes;
  if (w.row_bytes < need)
    throw core::Error(std::string(fn) + ": row_bytes " + std::to_string(w.row_bytes) + " is less than the " +
                      std::to_string(need) + " bytes of a " + std::to_string(w.cols) + "-value " + name + " row");
  if (w.rows > 0 && w.cols > 0 && w.data == nullptr) throw core::Error(std::string(fn) + ": null weight data");
  if (reinterpret_cast<uintptr_t>(w.data) % F::kAlign != 0 || w.row_bytes % F::kAlign != 0)
    throw core::Error(std::string(fn) + ": " + name + " weights and row_bytes must be " + std::to_string(F::kAlign) +
                      "-byte aligned");
}

// gemv for a matrix of format F (n_tokens already checked: 1..kGemvMaxTokens).
template <class F>
void gemv_as(const DeviceMatrix& w, const float* x, float* y, int n_tokens, cudaStream_t stream) {
  check_matrix<F>(w, "gemv");
  if (w.rows == 0) return;
  if (w.cols == 0) {  // empty dot products
    TANDEM_CUDA_CHECK(
        cudaMemsetAsync(y, 0, static_cast<size_t>(n_tokens) * static_cast<size_t>(w.rows) * sizeof(float), stream));
    return;
  }
  if (x == nullptr || y == nullptr) throw core::Error("gemv: null activations or output");
  const GemvArgs a{static_cast<const unsigned char*>(w.data),   w.row_bytes, w.rows, w.cols, x, y,
                   (reinterpret_cast<uintptr_t>(x) & 15u) == 0, n_tokens};
  launch_gemv<F>(a, n_tokens, stream);
}

// dequant_rows_f16 for a matrix of format F.
template <class F>
void dequant_rows_f16_as(const DeviceMatrix& w, int64_t row0, int64_t n_rows, __half* out, cudaStream_t stream) {
  check_matrix<F>(w, "dequant_rows_f16");
  if (row0 < 0 || n_rows < 0 || row0 > w.rows || n_rows > w.rows - row0)
    throw core::Error("dequant_rows_f16: rows [" + std::to_string(row0) + ", " + std::to_string(row0 + n_rows) +
                      ") outside the matrix's " + std::to_string(w.rows) + " rows");
  if (n_rows == 0 || w.cols == 0) return;
  if (out == nullptr) throw core::Error("dequant_rows_f16: null output");
  launch_dequant_f16<F>(w, row0, n_rows, out, stream);
}

}  // namespace tandem::gpu::detail
