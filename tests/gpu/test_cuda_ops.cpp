// gpu_worker/cuda/ops against the CPU engine's functions: the same math (up
// to float summation order) and, for the KV cache rows, the same bytes.
// Every test skips where no CUDA device answers.
#include "gpu_worker/cuda/ops.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/model_config.h"
#include "core/quant_types.h"
#include "cpu_worker/attention.h"
#include "cpu_worker/ops.h"
#include "cpu_worker/swiglu.h"
#include "tests/gpu/gpu_test_support.h"

namespace tandem {
namespace {

using core::quant::Type;
using test::DeviceBuffer;
using test::nmse_sqrt;
using test::random_floats;

std::vector<int32_t> as_i32(std::initializer_list<int> v) { return std::vector<int32_t>(v.begin(), v.end()); }

// ---------------------------------------------------------------------------
// rms_norm

TEST(CudaOps, RmsNormMatchesCpu) {
  TANDEM_REQUIRE_GPU();
  for (const int d : {4096, 100, 1}) {
    const int n = 7;
    const float eps = 1e-5f;
    std::vector<float> x = random_floats(static_cast<size_t>(n) * d, 11 + d, 3.0f);
    const std::vector<float> w = random_floats(d, 12 + d);
    std::vector<float> ref(x.size());
    for (int i = 0; i < n; ++i) cpu::rms_norm(&x[i * d], w.data(), &ref[i * d], d, eps);
    DeviceBuffer<float> dx(x), dw(w), dout(x.size());
    gpu::rms_norm(dx.get(), dw.get(), dout.get(), n, d, eps, nullptr);
    const std::vector<float> got = dout.download();
    EXPECT_LT(nmse_sqrt(got, ref), 1e-6) << "d = " << d;
  }
}

// ---------------------------------------------------------------------------
// RoPE

struct RopeCase {
  int heads, head_dim, rope_dims;
  float base;
  bool neox, freq_factors;
};

void check_rope(const RopeCase& rc, uint64_t seed) {
  const std::vector<int32_t> pos = as_i32({0, 1, 7, 100, 4095, 30001});
  const int n = static_cast<int>(pos.size());
  const size_t count = static_cast<size_t>(n) * rc.heads * rc.head_dim;
  std::vector<float> x = random_floats(count, seed);
  std::vector<float> ff;
  if (rc.freq_factors) {
    std::mt19937 rng(static_cast<uint32_t>(seed));
    std::uniform_real_distribution<float> u(1.0f, 8.0f);
    ff.resize(rc.rope_dims / 2);
    for (auto& f : ff) f = u(rng);
  }

  core::ModelConfig c;
  c.rope_dims = rc.rope_dims;
  c.rope_freq_base = rc.base;
  c.rope_freq_scale = 1.0f;
  const core::RopeStyle style = rc.neox ? core::RopeStyle::Neox : core::RopeStyle::Normal;
  std::vector<float> ref = x;
  std::vector<float> cs(rc.rope_dims / 2), sn(rc.rope_dims / 2);
  for (int i = 0; i < n; ++i) {
    cpu::rope_angles(pos[i], c, rc.freq_factors ? ff.data() : nullptr, cs.data(), sn.data());
    for (int h = 0; h < rc.heads; ++h)
      cpu::rope_apply(&ref[(static_cast<size_t>(i) * rc.heads + h) * rc.head_dim], cs.data(), sn.data(), rc.rope_dims,
                      style);
  }

  DeviceBuffer<float> dx(x);
  DeviceBuffer<int32_t> dpos(pos);
  DeviceBuffer<float> dff(rc.freq_factors ? ff : std::vector<float>(1, 1.0f));
  gpu::rope(dx.get(), dpos.get(), n, rc.heads, rc.head_dim, rc.rope_dims, rc.base, 1.0f,
            rc.freq_factors ? dff.get() : nullptr, rc.neox, nullptr);
  const std::vector<float> got = dx.download();
  EXPECT_LT(nmse_sqrt(got, ref), 1e-5) << "heads " << rc.heads << " head_dim " << rc.head_dim << " rope_dims "
                                        << rc.rope_dims << " neox " << rc.neox << " ff " << rc.freq_factors;
  // The part of a head that does not rotate is untouched.
  for (size_t e = 0; e < count; ++e) {
    if (static_cast<int>(e % rc.head_dim) >= rc.rope_dims) {
      ASSERT_EQ(got[e], x[e]) << "element " << e;
    }
  }
}

TEST(CudaOps, RopeLlamaStyle) {
  TANDEM_REQUIRE_GPU();
  check_rope({4, 128, 128, 10000.0f, false, false}, 21);
  check_rope({8, 64, 64, 10000.0f, false, false}, 22);
}

TEST(CudaOps, RopeLlamaStyleWithFreqFactors) {
  TANDEM_REQUIRE_GPU();
  check_rope({4, 128, 128, 500000.0f, false, true}, 23);
}

TEST(CudaOps, RopeNeoxStyle) {
  TANDEM_REQUIRE_GPU();
  check_rope({4, 128, 128, 1000000.0f, true, false}, 24);
  check_rope({3, 64, 32, 10000.0f, true, false}, 25);  // partial rotation
}

TEST(CudaOps, RopeNeoxStyleWithFreqFactors) {
  TANDEM_REQUIRE_GPU();
  check_rope({4, 128, 128, 500000.0f, true, true}, 26);
  check_rope({2, 128, 64, 10000.0f, false, true}, 27);  // partial, llama style
}

// ---------------------------------------------------------------------------
// Element-wise

TEST(CudaOps, SwigluMatchesCpu) {
  TANDEM_REQUIRE_GPU();
  const int64_t count = 10007;  // not a multiple of the CPU's vector width
  std::vector<float> gate = random_floats(count, 31, 4.0f);
  const std::vector<float> up = random_floats(count, 32);
  std::vector<float> ref = gate;
  cpu::swiglu(ref.data(), up.data(), count);
  DeviceBuffer<float> dg(gate), du(up);
  gpu::swiglu(dg.get(), du.get(), count, nullptr);
  EXPECT_LT(nmse_sqrt(dg.download(), ref), 1e-5);
}

TEST(CudaOps, AddInplaceAndBias) {
  TANDEM_REQUIRE_GPU();
  const int n = 5, d = 333;
  const std::vector<float> y = random_floats(n * d, 41), x = random_floats(n * d, 42), b = random_floats(d, 43);
  DeviceBuffer<float> dy(y), dx(x), db(b);
  gpu::add_inplace(dy.get(), dx.get(), n * d, nullptr);
  gpu::add_bias(dy.get(), db.get(), n, d, nullptr);
  const std::vector<float> got = dy.download();
  for (int i = 0; i < n * d; ++i) ASSERT_EQ(got[i], (y[i] + x[i]) + b[i % d]) << i;
  // Zero-size calls launch nothing and do not fail.
  gpu::add_inplace(dy.get(), dx.get(), 0, nullptr);
  gpu::add_bias(dy.get(), db.get(), 0, d, nullptr);
  gpu::swiglu(dy.get(), dx.get(), 0, nullptr);
  gpu::rms_norm(dx.get(), db.get(), dy.get(), 0, d, 1e-5f, nullptr);
  TANDEM_CUDA_CHECK(cudaDeviceSynchronize());
}

// ---------------------------------------------------------------------------
// KV cache rows

// Host twin of a device KV cache: [n_seq × n_ctx] rows of each type.
struct HostKv {
  Type k_type, v_type;
  int n_seq, n_ctx, kv_dim;
  size_t k_row_bytes, v_row_bytes;
  std::vector<uint8_t> k, v;

  HostKv(Type kt, Type vt, int seqs, int ctx, int dim)
      : k_type(kt), v_type(vt), n_seq(seqs), n_ctx(ctx), kv_dim(dim),
        k_row_bytes(core::quant::row_bytes(kt, dim)), v_row_bytes(core::quant::row_bytes(vt, dim)),
        k(k_row_bytes * seqs * ctx), v(v_row_bytes * seqs * ctx) {}

  size_t row(int seq, int pos) const { return static_cast<size_t>(seq) * n_ctx + pos; }

  gpu::DeviceKv device(const DeviceBuffer<uint8_t>& dk, const DeviceBuffer<uint8_t>& dv) const {
    gpu::DeviceKv d;
    d.k = dk.get();
    d.v = dv.get();
    d.k_type = k_type;
    d.v_type = v_type;
    d.k_row_bytes = k_row_bytes;
    d.v_row_bytes = v_row_bytes;
    d.n_ctx = n_ctx;
    d.kv_dim = kv_dim;
    return d;
  }
};

// Rows that stress the quantizers: random data at several scales, an all-zero
// block, exact rounding ties for Q8_0 (amax 127 → id 1, x.5 values) and Q4_0
// (max -8 → d 1), a block whose largest magnitude appears twice with both
// signs, and tiny values (f16 subnormals).
std::vector<float> kv_test_rows(int n, int kv_dim, uint64_t seed) {
  std::vector<float> x = random_floats(static_cast<size_t>(n) * kv_dim, seed, 2.0f);
  std::mt19937 rng(static_cast<uint32_t>(seed));
  for (int i = 0; i < n; ++i) {
    float* r = &x[static_cast<size_t>(i) * kv_dim];
    const int blocks = kv_dim / 32;
    for (int b = 0; b < blocks; ++b) {
      float* blk = r + 32 * b;
      switch ((i + b) % 7) {
        case 0:
          for (int j = 0; j < 32; ++j) blk[j] = 0.0f;
          break;
        case 1:
          for (int j = 0; j < 32; ++j) blk[j] = static_cast<float>(static_cast<int>(rng() % 254) - 127) + 0.5f;
          blk[5] = 127.0f;
          break;
        case 2:
          for (int j = 0; j < 32; ++j) blk[j] = static_cast<float>(static_cast<int>(rng() % 16) - 8) * 0.5f + 0.25f;
          blk[9] = -8.0f;
          break;
        case 3:
          blk[3] = 6.0f;
          blk[17] = -6.0f;
          break;
        case 4:
          for (int j = 0; j < 32; ++j) blk[j] *= 1e-6f;
          break;
        case 5:
          for (int j = 0; j < 32; ++j) blk[j] *= 1000.0f;
          break;
        default:
          break;
      }
    }
  }
  return x;
}

void check_kv_store(Type kt, Type vt) {
  const int n_seq = 3, n_ctx = 64, kv_dim = 256;
  HostKv host(kt, vt, n_seq, n_ctx, kv_dim);
  // Cache bytes start as a pattern; rows not written must keep it.
  std::fill(host.k.begin(), host.k.end(), uint8_t{0xAB});
  std::fill(host.v.begin(), host.v.end(), uint8_t{0xCD});
  DeviceBuffer<uint8_t> dk(host.k), dv(host.v);
  const gpu::DeviceKv kv = host.device(dk, dv);

  const std::vector<int32_t> seq = as_i32({0, 2, 1, 0, 2, 1, 0});
  const std::vector<int32_t> pos = as_i32({0, 63, 5, 6, 7, 31, 1});
  const int n = static_cast<int>(seq.size());
  const std::vector<float> k = kv_test_rows(n, kv_dim, 51), v = kv_test_rows(n, kv_dim, 52);
  const cpu::KvRowCodec kc = cpu::kv_row_codec(kt), vc = cpu::kv_row_codec(vt);
  for (int i = 0; i < n; ++i) {
    kc.store(&k[static_cast<size_t>(i) * kv_dim], &host.k[host.row(seq[i], pos[i]) * host.k_row_bytes], kv_dim);
    vc.store(&v[static_cast<size_t>(i) * kv_dim], &host.v[host.row(seq[i], pos[i]) * host.v_row_bytes], kv_dim);
  }
  DeviceBuffer<float> dkx(k), dvx(v);
  DeviceBuffer<int32_t> dseq(seq), dpos(pos);
  gpu::kv_store(kv, dkx.get(), dvx.get(), dseq.get(), dpos.get(), n, nullptr);
  const std::vector<uint8_t> gk = dk.download(), gv = dv.download();
  const std::string what =
      "K " + std::string(core::quant::type_name(kt)) + ", V " + std::string(core::quant::type_name(vt));
  for (size_t r = 0; r < static_cast<size_t>(n_seq) * n_ctx; ++r) {
    ASSERT_EQ(0, std::memcmp(&gk[r * host.k_row_bytes], &host.k[r * host.k_row_bytes], host.k_row_bytes))
        << what << ": K row " << r << " differs";
    ASSERT_EQ(0, std::memcmp(&gv[r * host.v_row_bytes], &host.v[r * host.v_row_bytes], host.v_row_bytes))
        << what << ": V row " << r << " differs";
  }
}

TEST(CudaOps, KvStoreF16BitExact) {
  TANDEM_REQUIRE_GPU();
  check_kv_store(Type::F16, Type::F16);
}

TEST(CudaOps, KvStoreQ8_0BitExact) {
  TANDEM_REQUIRE_GPU();
  check_kv_store(Type::Q8_0, Type::Q8_0);
}

TEST(CudaOps, KvStoreQ4_0BitExact) {
  TANDEM_REQUIRE_GPU();
  check_kv_store(Type::Q4_0, Type::Q4_0);
}

TEST(CudaOps, KvStoreMixedAndFloatTypesBitExact) {
  TANDEM_REQUIRE_GPU();
  check_kv_store(Type::Q8_0, Type::F16);
  check_kv_store(Type::F16, Type::Q4_0);
  check_kv_store(Type::BF16, Type::F32);
}

TEST(CudaOps, KvStoreRejectsUnsupportedType) {
  TANDEM_REQUIRE_GPU();
  gpu::DeviceKv kv;
  DeviceBuffer<uint8_t> buf(1024);
  kv.k = kv.v = buf.get();
  kv.k_type = Type::Q5_1;
  kv.v_type = Type::F16;
  kv.kv_dim = 32;
  kv.n_ctx = 1;
  kv.k_row_bytes = core::quant::row_bytes(Type::Q5_1, 32);
  kv.v_row_bytes = 64;
  DeviceBuffer<float> x(32);
  DeviceBuffer<int32_t> z(std::vector<int32_t>{0});
  EXPECT_THROW(gpu::kv_store(kv, x.get(), x.get(), z.get(), z.get(), 1, nullptr), core::Error);
}

// ---------------------------------------------------------------------------
// Attention

struct AttnCase {
  const char* name;
  Type k_type, v_type;
  int n_seq, n_ctx, n_head, n_head_kv, head_dim;
  std::vector<int32_t> seq, pos;
  bool use_scratch = true;
};

// Double-precision attention over the dequantized cache.
std::vector<float> attention_reference(const HostKv& host, const std::vector<float>& q, const AttnCase& c) {
  const int n = static_cast<int>(c.seq.size());
  const int group = c.n_head / c.n_head_kv;
  const auto& kt = core::quant::traits(c.k_type);
  const auto& vt = core::quant::traits(c.v_type);
  std::vector<float> out(static_cast<size_t>(n) * c.n_head * c.head_dim);
  std::vector<float> krow(host.kv_dim), vrow(host.kv_dim);
  std::vector<double> sc, acc(c.head_dim);
  for (int i = 0; i < n; ++i) {
    const int n_pos = c.pos[i] + 1;
    // Dequantize this row's positions once for all heads.
    std::vector<float> K(static_cast<size_t>(n_pos) * host.kv_dim), V(K.size());
    for (int t = 0; t < n_pos; ++t) {
      const size_t r = host.row(c.seq[i], t);
      kt.to_float(&host.k[r * host.k_row_bytes], &K[static_cast<size_t>(t) * host.kv_dim], host.kv_dim);
      vt.to_float(&host.v[r * host.v_row_bytes], &V[static_cast<size_t>(t) * host.kv_dim], host.kv_dim);
    }
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
    for (int h = 0; h < c.n_head; ++h) {
      const int kvh = h / group;
      const float* qh = &q[(static_cast<size_t>(i) * c.n_head + h) * c.head_dim];
      sc.assign(n_pos, 0.0);
      double mx = -INFINITY;
      for (int t = 0; t < n_pos; ++t) {
        const float* kr = &K[static_cast<size_t>(t) * host.kv_dim + kvh * c.head_dim];
        double s = 0;
        for (int d = 0; d < c.head_dim; ++d) s += static_cast<double>(qh[d]) * kr[d];
        sc[t] = s * scale;
        mx = std::max(mx, sc[t]);
      }
      double sum = 0;
      for (auto& s : sc) sum += (s = std::exp(s - mx));
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int t = 0; t < n_pos; ++t) {
        const float* vr = &V[static_cast<size_t>(t) * host.kv_dim + kvh * c.head_dim];
        for (int d = 0; d < c.head_dim; ++d) acc[d] += sc[t] * vr[d];
      }
      for (int d = 0; d < c.head_dim; ++d)
        out[(static_cast<size_t>(i) * c.n_head + h) * c.head_dim + d] = static_cast<float>(acc[d] / sum);
    }
  }
  return out;
}

void check_attention(const AttnCase& c, uint64_t seed) {
  SCOPED_TRACE(std::string(c.name) + " K " + std::string(core::quant::type_name(c.k_type)) + " V " +
               std::string(core::quant::type_name(c.v_type)));
  const int kv_dim = c.n_head_kv * c.head_dim;
  const int n = static_cast<int>(c.seq.size());
  HostKv host(c.k_type, c.v_type, c.n_seq, c.n_ctx, kv_dim);
  // Every position of every sequence holds data, so reading past pos[i] or
  // from the wrong sequence shows up in the result.
  {
    const cpu::KvRowCodec kc = cpu::kv_row_codec(c.k_type), vc = cpu::kv_row_codec(c.v_type);
    const size_t rows = static_cast<size_t>(c.n_seq) * c.n_ctx;
    const std::vector<float> k = random_floats(rows * kv_dim, seed);
    const std::vector<float> v = random_floats(rows * kv_dim, seed + 1);
    for (size_t r = 0; r < rows; ++r) {
      kc.store(&k[r * kv_dim], &host.k[r * host.k_row_bytes], kv_dim);
      vc.store(&v[r * kv_dim], &host.v[r * host.v_row_bytes], kv_dim);
    }
  }
  // Scores of a few units: a softmax that is neither flat nor one-hot.
  const std::vector<float> q = random_floats(static_cast<size_t>(n) * c.n_head * c.head_dim, seed + 2, 2.0f);
  const std::vector<float> ref = attention_reference(host, q, c);

  DeviceBuffer<uint8_t> dk(host.k), dv(host.v);
  const gpu::DeviceKv kv = host.device(dk, dv);
  DeviceBuffer<float> dq(q), dout(ref.size());
  DeviceBuffer<int32_t> dseq(c.seq), dpos(c.pos);
  const size_t scratch_n = gpu::attention_scratch_floats(n, c.n_head, c.n_ctx);
  DeviceBuffer<float> scratch(scratch_n > 0 ? scratch_n : 1);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  gpu::attention(kv, dq.get(), dseq.get(), dpos.get(), n, c.n_head, c.n_head_kv, c.head_dim, scale,
                 c.use_scratch ? scratch.get() : nullptr, dout.get(), nullptr);
  const std::vector<float> got = dout.download();
  const double err = nmse_sqrt(got, ref);
  EXPECT_LT(err, 1e-4);
  // Each row on its own too (a wrong row can hide in the total).
  const size_t row = static_cast<size_t>(c.n_head) * c.head_dim;
  for (int i = 0; i < n; ++i) {
    const std::vector<float> g(got.begin() + i * row, got.begin() + (i + 1) * row);
    const std::vector<float> r(ref.begin() + i * row, ref.begin() + (i + 1) * row);
    EXPECT_LT(nmse_sqrt(g, r), 1e-4) << "row " << i << " (seq " << c.seq[i] << ", pos " << c.pos[i] << ")";
  }
}

const Type kCacheTypes[] = {Type::F16, Type::Q8_0, Type::Q4_0};

TEST(CudaOps, AttentionDecodeAtPos100) {
  TANDEM_REQUIRE_GPU();
  for (const Type t : kCacheTypes) {
    check_attention({"decode n=1 pos 100 hd128", t, t, 1, 512, 8, 8, 128, as_i32({0}), as_i32({100})}, 61);
    check_attention({"decode n=1 pos 100 hd64", t, t, 1, 512, 8, 8, 64, as_i32({0}), as_i32({100})}, 62);
  }
}

TEST(CudaOps, AttentionFiveRowsTwoSequences) {
  TANDEM_REQUIRE_GPU();
  for (const Type t : kCacheTypes)
    check_attention({"n=5 two sequences", t, t, 2, 256, 8, 2, 64, as_i32({0, 1, 0, 1, 1}), as_i32({3, 0, 4, 50, 51})},
                    63);
}

TEST(CudaOps, AttentionGqa) {
  TANDEM_REQUIRE_GPU();
  for (const Type t : kCacheTypes) {
    check_attention({"gqa 8/2 hd128", t, t, 1, 1024, 8, 2, 128, as_i32({0, 0}), as_i32({700, 1023})}, 64);
    check_attention({"gqa 8/2 hd64", t, t, 1, 1024, 8, 2, 64, as_i32({0, 0}), as_i32({700, 1023})}, 65);
  }
}

TEST(CudaOps, AttentionLongContextNearTheEnd) {
  TANDEM_REQUIRE_GPU();
  for (const Type t : kCacheTypes) {
    check_attention({"n_ctx 4096 decode", t, t, 2, 4096, 8, 2, 128, as_i32({1}), as_i32({4095})}, 66);
    check_attention({"n_ctx 4096 three rows", t, t, 2, 4096, 8, 2, 128, as_i32({0, 1, 0}), as_i32({4000, 4094, 4095})},
                    67);
  }
}

TEST(CudaOps, AttentionMixedTypesAndOtherHeadSizes) {
  TANDEM_REQUIRE_GPU();
  check_attention({"K q8_0 V f16", Type::Q8_0, Type::F16, 1, 2048, 8, 2, 128, as_i32({0}), as_i32({1500})}, 68);
  check_attention({"K f16 V q4_0", Type::F16, Type::Q4_0, 1, 2048, 8, 2, 128, as_i32({0}), as_i32({1999})}, 69);
  check_attention({"hd96", Type::F16, Type::F16, 1, 1024, 4, 4, 96, as_i32({0}), as_i32({900})}, 70);
  check_attention({"hd256", Type::Q8_0, Type::Q8_0, 1, 1024, 4, 1, 256, as_i32({0}), as_i32({1000})}, 71);
  check_attention({"bf16/f32", Type::BF16, Type::F32, 1, 1024, 4, 2, 64, as_i32({0}), as_i32({800})}, 72);
}

TEST(CudaOps, AttentionManyRowsAndNoScratch) {
  TANDEM_REQUIRE_GPU();
  // 48 prefill rows (one split per head: the direct path), positions 0..47
  // and a tail near the end of the context.
  std::vector<int32_t> seq, pos;
  for (int i = 0; i < 48; ++i) {
    seq.push_back(i % 2);
    pos.push_back(i < 24 ? i : 4096 - 48 + i);
  }
  check_attention({"48 rows", Type::Q8_0, Type::Q8_0, 2, 4096, 8, 2, 64, seq, pos}, 73);
  AttnCase c{"decode without scratch", Type::F16, Type::F16, 1, 4096, 8, 2, 128, as_i32({0}), as_i32({4090})};
  c.use_scratch = false;
  check_attention(c, 74);
}

TEST(CudaOps, AttentionVeryLongContext) {
  TANDEM_REQUIRE_GPU();
  check_attention({"n_ctx 32768", Type::Q4_0, Type::Q4_0, 1, 32768, 4, 1, 128, as_i32({0, 0}), as_i32({32767, 20000})},
                  75);
}

TEST(CudaOps, AttentionScratchIsBounded) {
  TANDEM_REQUIRE_GPU();
  size_t prev = 0;
  for (int n = 1; n <= 512; ++n) {
    const size_t s = gpu::attention_scratch_floats(n, 32, 32768);
    EXPECT_GE(s, prev) << "n = " << n;  // a buffer sized for more rows fits fewer
    prev = s;
  }
  EXPECT_LE(prev, size_t{32} * 64 * 258);
  EXPECT_EQ(gpu::attention_scratch_floats(0, 32, 4096), 0u);
}

TEST(CudaOps, KvStoreThenAttention) {
  TANDEM_REQUIRE_GPU();
  // The device path end to end: rows stored by kv_store are what attention reads.
  const int n_head = 8, n_head_kv = 2, hd = 64, n_ctx = 128, kv_dim = n_head_kv * hd;
  for (const Type t : kCacheTypes) {
    HostKv host(t, t, 1, n_ctx, kv_dim);
    const int n = 40;
    std::vector<int32_t> seq(n, 0), pos(n);
    for (int i = 0; i < n; ++i) pos[i] = i;
    const std::vector<float> k = random_floats(static_cast<size_t>(n) * kv_dim, 81);
    const std::vector<float> v = random_floats(static_cast<size_t>(n) * kv_dim, 82);
    const cpu::KvRowCodec codec = cpu::kv_row_codec(t);
    for (int i = 0; i < n; ++i) {
      codec.store(&k[static_cast<size_t>(i) * kv_dim], &host.k[host.row(0, i) * host.k_row_bytes], kv_dim);
      codec.store(&v[static_cast<size_t>(i) * kv_dim], &host.v[host.row(0, i) * host.v_row_bytes], kv_dim);
    }
    AttnCase c{"store then attend", t, t, 1, n_ctx, n_head, n_head_kv, hd, seq, pos};
    const std::vector<float> q = random_floats(static_cast<size_t>(n) * n_head * hd, 83, 2.0f);
    const std::vector<float> ref = attention_reference(host, q, c);

    DeviceBuffer<uint8_t> dk(host.k.size()), dv(host.v.size());
    const gpu::DeviceKv kv = host.device(dk, dv);
    DeviceBuffer<float> dkx(k), dvx(v), dq(q), dout(ref.size());
    DeviceBuffer<int32_t> dseq(seq), dpos(pos);
    DeviceBuffer<float> scratch(gpu::attention_scratch_floats(n, n_head, n_ctx) + 1);
    gpu::kv_store(kv, dkx.get(), dvx.get(), dseq.get(), dpos.get(), n, nullptr);
    gpu::attention(kv, dq.get(), dseq.get(), dpos.get(), n, n_head, n_head_kv, hd, 1.0f / std::sqrt(float(hd)),
                   scratch.get(), dout.get(), nullptr);
    EXPECT_LT(nmse_sqrt(dout.download(), ref), 1e-4) << core::quant::type_name(t);
  }
}

// Not a check: how long one decode step's attention takes at 32k context
// (printed for the record).
TEST(CudaOps, AttentionDecodeTiming) {
  TANDEM_REQUIRE_GPU();
  const int n_head = 32, n_head_kv = 8, hd = 128, n_ctx = 32768, kv_dim = n_head_kv * hd;
  DeviceBuffer<uint8_t> dk(static_cast<size_t>(n_ctx) * kv_dim * 2), dv(static_cast<size_t>(n_ctx) * kv_dim * 2);
  TANDEM_CUDA_CHECK(cudaMemset(dk.get(), 0x11, static_cast<size_t>(n_ctx) * kv_dim * 2));
  TANDEM_CUDA_CHECK(cudaMemset(dv.get(), 0x22, static_cast<size_t>(n_ctx) * kv_dim * 2));
  gpu::DeviceKv kv;
  kv.k = dk.get();
  kv.v = dv.get();
  kv.k_row_bytes = kv.v_row_bytes = static_cast<size_t>(kv_dim) * 2;
  kv.n_ctx = n_ctx;
  kv.kv_dim = kv_dim;
  DeviceBuffer<float> dq(random_floats(static_cast<size_t>(n_head) * hd, 91)), dout(static_cast<size_t>(n_head) * hd);
  DeviceBuffer<int32_t> dseq(std::vector<int32_t>{0}), dpos(std::vector<int32_t>{n_ctx - 1});
  DeviceBuffer<float> scratch(gpu::attention_scratch_floats(1, n_head, n_ctx));
  auto run = [&] {
    gpu::attention(kv, dq.get(), dseq.get(), dpos.get(), 1, n_head, n_head_kv, hd, 0.088f, scratch.get(), dout.get(),
                   nullptr);
  };
  run();
  TANDEM_CUDA_CHECK(cudaDeviceSynchronize());
  const int iters = 20;
  const auto t0 = std::chrono::steady_clock::now();
  for (int it = 0; it < iters; ++it) run();
  TANDEM_CUDA_CHECK(cudaDeviceSynchronize());
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / iters;
  const double gb = 2.0 * n_ctx * kv_dim * 2 / 1e9;
  std::printf("attention decode, n_ctx %d, f16 KV (%.0f MB): %.3f ms (%.0f GB/s)\n", n_ctx, gb * 1e3, ms, gb / (ms * 1e-3));
}

}  // namespace
}  // namespace tandem
