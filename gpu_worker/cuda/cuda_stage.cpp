#include "gpu_worker/cuda/cuda_stage.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/plan/stage_footprint.h"
#include "gpu_worker/cuda/convert.h"
#include "gpu_worker/cuda/cublas_loader.h"
#include "gpu_worker/cuda/cuda_error.h"
#include "gpu_worker/cuda/gemv.h"

namespace tandem::gpu {

namespace quant = core::quant;
using core::Error;

namespace {
static_assert(kGemvMaxTokens == core::plan::kGpuGemvMaxTokens, "the planner sizes the scratch by this limit");

bool kv_type_ok(quant::Type t) { return t == quant::Type::F16 || t == quant::Type::Q8_0 || t == quant::Type::Q4_0; }

uint64_t matrix_bytes(const cpu::Matrix& m) { return m.data ? static_cast<uint64_t>(m.rows) * m.row_bytes : 0; }
}  // namespace

CudaStage::CudaStage(std::shared_ptr<const core::gguf::File> file, cpu::ShardSpec spec, CudaStageOptions opt)
    : file_(std::move(file)), cfg_(core::config_from_gguf(*file_)), spec_(spec), opt_(opt), mem_(opt.device) {
  if (!kv_type_ok(opt.k_type) || !kv_type_ok(opt.v_type))
    throw Error(std::string("the CUDA backend stores the KV cache as f16, q8_0 or q4_0 (asked: ") +
                std::string(quant::type_name(opt.k_type)) + " / " + std::string(quant::type_name(opt.v_type)) + ")");
  if (cfg_.kv_dim() % 32 != 0) throw Error("the CUDA KV cache needs kv_dim to be a multiple of 32");
  if (opt.max_batch_tokens < 1 || opt.n_seq < 1 || opt.n_ctx < 1)
    throw Error("max_batch_tokens, n_seq and n_ctx must be >= 1");
  // Host views of the shard (validates every tensor's shape and type).
  cpu::ModelWeights hw = cpu::bind_weights(*file_, cfg_, spec_);
  auto check_type = [](const cpu::Matrix& m, const char* what) {
    if (m.data && !gemv_supports(m.type))
      throw Error(std::string(what) + " is " + std::string(quant::type_name(m.type)) +
                  ", which the CUDA backend does not read yet");
  };
  for (const auto& L : hw.layers) {
    for (const cpu::Matrix* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) check_type(*m, "a layer matrix");
  }
  if (spec_.head) check_type(hw.output, "the output head");

  const MemoryPlan p = plan(hw);
  mem_.check_fits(p, "layers [" + std::to_string(spec_.layer_begin) + ", " + std::to_string(spec_.layer_end) + ")" +
                         (spec_.head ? " + head" : ""));

  TANDEM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  TANDEM_CUBLAS_CHECK(cublas_api().create(&cublas_));
  TANDEM_CUBLAS_CHECK(cublas_api().set_stream(cublas_, stream_));

  const int64_t d = cfg_.n_embd, kvd = cfg_.kv_dim();
  for (const auto& L : hw.layers) {
    Layer g;
    g.attn_norm = upload_floats(L.attn_norm, d);
    g.wq = upload(L.wq);
    g.wk = upload(L.wk);
    g.wv = upload(L.wv);
    g.wo = upload(L.wo);
    if (L.bq) {
      g.bq = upload_floats(L.bq, cfg_.q_dim());
      g.bk = upload_floats(L.bk, kvd);
      g.bv = upload_floats(L.bv, kvd);
    }
    g.ffn_norm = upload_floats(L.ffn_norm, d);
    g.w_gate = upload(L.w_gate);
    g.w_up = upload(L.w_up);
    g.w_down = upload(L.w_down);
    g.kv.k_type = opt.k_type;
    g.kv.v_type = opt.v_type;
    g.kv.k_row_bytes = quant::row_bytes(opt.k_type, kvd);
    g.kv.v_row_bytes = quant::row_bytes(opt.v_type, kvd);
    g.kv.n_ctx = opt.n_ctx;
    g.kv.kv_dim = static_cast<int32_t>(kvd);
    const uint64_t rows = static_cast<uint64_t>(opt.n_seq) * opt.n_ctx;
    // Left uninitialized: a position is written before it is read.
    g.kv.k = mem_.alloc(rows * g.kv.k_row_bytes, MemoryKind::Kv);
    g.kv.v = mem_.alloc(rows * g.kv.v_row_bytes, MemoryKind::Kv);
    layers_.push_back(g);
  }
  if (spec_.head) {
    output_norm_ = upload_floats(hw.output_norm, d);
    output_ = upload(hw.output);
  }
  if (hw.rope_freqs) rope_freqs_ = upload_floats(hw.rope_freqs, cfg_.rope_dims / 2);

  const int64_t B = opt.max_batch_tokens;
  auto fbuf = [&](int64_t n) { return static_cast<float*>(mem_.alloc(static_cast<size_t>(n) * 4, MemoryKind::Scratch)); };
  x_ = fbuf(B * d);
  xn_ = fbuf(B * d);
  q_ = fbuf(B * cfg_.q_dim());
  k_ = fbuf(B * kvd);
  v_ = fbuf(B * kvd);
  attn_ = fbuf(B * cfg_.q_dim());
  proj_ = fbuf(B * d);
  gate_ = fbuf(B * cfg_.n_ff);
  up_ = fbuf(B * cfg_.n_ff);
  if (spec_.head) logits_ = fbuf(B * cfg_.n_vocab);
  seq_ = static_cast<int32_t*>(mem_.alloc(B * 4, MemoryKind::Scratch));
  pos_ = static_cast<int32_t*>(mem_.alloc(B * 4, MemoryKind::Scratch));
  attn_scratch_ = fbuf(static_cast<int64_t>(attention_scratch_floats(attn_rows_, cfg_.n_head, opt.n_ctx)));
  if (B > kGemvMaxTokens) {
    x16_ = static_cast<__half*>(mem_.alloc(static_cast<size_t>(B * max_cols_) * 2, MemoryKind::Scratch));
    w16_ = static_cast<__half*>(mem_.alloc(static_cast<size_t>(tile_rows_ * max_cols_) * 2, MemoryKind::Scratch));
  }
  host_seq_.resize(B);
  host_pos_.resize(B);
  graphs_ = opt.graphs;
  TANDEM_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

CudaStage::~CudaStage() {
  for (cudaGraphExec_t g : graph_)
    if (g) cudaGraphExecDestroy(g);
  if (cublas_) cublas_api().destroy(cublas_);
  if (stream_) cudaStreamDestroy(stream_);
}

MemoryPlan CudaStage::plan(const cpu::ModelWeights& w) {
  MemoryPlan p;
  const int64_t d = cfg_.n_embd, kvd = cfg_.kv_dim();
  int64_t max_rows = 0;
  auto add = [&](const cpu::Matrix& m) {
    p.weights += matrix_bytes(m);
    if (m.data) {
      max_rows = std::max(max_rows, m.rows);
      max_cols_ = std::max(max_cols_, m.cols);
    }
  };
  for (const auto& L : w.layers) {
    for (const cpu::Matrix* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) add(*m);
    p.weights += 2 * d * 4 + (L.bq ? (cfg_.q_dim() + 2 * kvd) * 4 : 0);
    p.kv += static_cast<uint64_t>(opt_.n_seq) * opt_.n_ctx *
            (quant::row_bytes(opt_.k_type, kvd) + quant::row_bytes(opt_.v_type, kvd));
  }
  if (spec_.head) {
    add(w.output);
    p.weights += d * 4;
  }
  if (w.rope_freqs) p.weights += cfg_.rope_dims / 2 * 4;
  // Activations, attention partials and fp16 tiles: sized by the planner's
  // own function, so `tandem plan` predicts exactly what is allocated here.
  const core::plan::GpuScratch sc = core::plan::gpu_stage_scratch(core::plan::shape_from_config(cfg_), opt_.max_batch_tokens,
                                                                  opt_.n_ctx, spec_.head, max_cols_, max_rows);
  attn_rows_ = sc.attn_rows;
  tile_rows_ = sc.tile_rows;
  p.scratch = sc.bytes;
  return p;
}

DeviceMatrix CudaStage::upload(const cpu::Matrix& m) {
  DeviceMatrix g;
  g.type = m.type;
  g.rows = m.rows;
  g.cols = m.cols;
  g.row_bytes = m.row_bytes;
  const size_t bytes = matrix_bytes(m);
  void* p = mem_.alloc(bytes, MemoryKind::Weights);
  // From the mapping straight to the device: no host copy of the shard.
  TANDEM_CUDA_CHECK(cudaMemcpy(p, m.data, bytes, cudaMemcpyHostToDevice));
  g.data = p;
  return g;
}

const float* CudaStage::upload_floats(const float* host, size_t n) {
  void* p = mem_.alloc(n * 4, MemoryKind::Weights);
  TANDEM_CUDA_CHECK(cudaMemcpy(p, host, n * 4, cudaMemcpyHostToDevice));
  return static_cast<const float*>(p);
}

core::StageMemory CudaStage::memory() const {
  core::StageMemory m;
  m.device = mem_.device_name();
  m.memory = "vram";
  m.weight_bytes = mem_.used(MemoryKind::Weights);
  m.kv_bytes = mem_.used(MemoryKind::Kv);
  m.scratch_bytes = mem_.used(MemoryKind::Scratch);
  return m;
}

void CudaStage::matmul(const DeviceMatrix& w, const float* x, float* y, int n) {
  if (n <= kGemvMaxTokens) {
    gemv(w, x, y, n, stream_);
    return;
  }
  // y [n × rows] row-major is, for cuBLAS (column-major), rows × n with
  // leading dimension rows; W tile [t × cols] row-major is cols × t, used
  // transposed; x16 [n × cols] row-major is cols × n.
  f32_to_f16(x, x16_, static_cast<int64_t>(n) * w.cols, stream_);
  const float alpha = 1.0f, beta = 0.0f;
  for (int64_t r0 = 0; r0 < w.rows; r0 += tile_rows_) {
    const int64_t t = std::min(tile_rows_, w.rows - r0);
    dequant_rows_f16(w, r0, t, w16_, stream_);
    TANDEM_CUBLAS_CHECK(cublas_api().gemm_ex(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(t), n, static_cast<int>(w.cols),
                                     &alpha, w16_, CUDA_R_16F, static_cast<int>(w.cols), x16_, CUDA_R_16F,
                                     static_cast<int>(w.cols), &beta, y + r0, CUDA_R_32F, static_cast<int>(w.rows),
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
}

void CudaStage::upload_rows(std::span<const core::StageRow> rows) {
  const int n = static_cast<int>(rows.size());
  for (int i = 0; i < n; ++i) {
    if (rows[i].seq < 0 || rows[i].seq >= opt_.n_seq)
      throw Error("sequence slot " + std::to_string(rows[i].seq) + " out of range (0.." + std::to_string(opt_.n_seq - 1) + ")");
    if (rows[i].pos < 0 || rows[i].pos >= opt_.n_ctx)
      throw Error("context full: position " + std::to_string(rows[i].pos) + " exceeds the context size " +
                  std::to_string(opt_.n_ctx));
    host_seq_[i] = rows[i].seq;
    host_pos_[i] = rows[i].pos;
  }
  TANDEM_CUDA_CHECK(cudaMemcpyAsync(seq_, host_seq_.data(), n * 4, cudaMemcpyHostToDevice, stream_));
  TANDEM_CUDA_CHECK(cudaMemcpyAsync(pos_, host_pos_.data(), n * 4, cudaMemcpyHostToDevice, stream_));
}

void CudaStage::run_layers(float* hidden, std::span<const core::StageRow> rows) {
  const int n = static_cast<int>(rows.size());
  if (n == 0) return;
  if (n > opt_.max_batch_tokens)
    throw Error("batch of " + std::to_string(n) + " rows exceeds max_batch_tokens " + std::to_string(opt_.max_batch_tokens));
  upload_rows(rows);
  const int64_t d = cfg_.n_embd;
  TANDEM_CUDA_CHECK(cudaMemcpyAsync(x_, hidden, n * d * 4, cudaMemcpyHostToDevice, stream_));
  if (!(graphs_ && n <= kGemvMaxTokens && launch_graph(n))) enqueue_layers(n);
  TANDEM_CUDA_CHECK(cudaMemcpyAsync(hidden, x_, n * d * 4, cudaMemcpyDeviceToHost, stream_));
  TANDEM_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

bool CudaStage::launch_graph(int n) {
  if (!graph_[n]) {
    cudaGraph_t g = nullptr;
    TANDEM_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    try {
      enqueue_layers(n);
    } catch (const std::exception& e) {
      cudaStreamEndCapture(stream_, &g);
      if (g) cudaGraphDestroy(g);
      cudaGetLastError();
      std::fprintf(stderr, "tandem: CUDA graph capture failed (%s); running decode without graphs\n", e.what());
      graphs_ = false;
      return false;
    }
    TANDEM_CUDA_CHECK(cudaStreamEndCapture(stream_, &g));
    const cudaError_t e = cudaGraphInstantiate(&graph_[n], g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) {
      cudaGetLastError();
      graph_[n] = nullptr;
      std::fprintf(stderr, "tandem: CUDA graph instantiation failed (%s); running decode without graphs\n",
                   cudaGetErrorString(e));
      graphs_ = false;
      return false;
    }
  }
  TANDEM_CUDA_CHECK(cudaGraphLaunch(graph_[n], stream_));
  return true;
}

void CudaStage::enqueue_layers(int n) {
  const int64_t d = cfg_.n_embd;
  const bool neox = cfg_.rope_style == core::RopeStyle::Neox;
  const float scale = 1.0f / std::sqrt(static_cast<float>(cfg_.head_dim));
  for (const Layer& L : layers_) {
    rms_norm(x_, L.attn_norm, xn_, n, static_cast<int>(d), cfg_.rms_eps, stream_);
    matmul(L.wq, xn_, q_, n);
    matmul(L.wk, xn_, k_, n);
    matmul(L.wv, xn_, v_, n);
    if (L.bq) {
      add_bias(q_, L.bq, n, cfg_.q_dim(), stream_);
      add_bias(k_, L.bk, n, cfg_.kv_dim(), stream_);
      add_bias(v_, L.bv, n, cfg_.kv_dim(), stream_);
    }
    rope(q_, pos_, n, cfg_.n_head, cfg_.head_dim, cfg_.rope_dims, cfg_.rope_freq_base, cfg_.rope_freq_scale, rope_freqs_,
         neox, stream_);
    rope(k_, pos_, n, cfg_.n_head_kv, cfg_.head_dim, cfg_.rope_dims, cfg_.rope_freq_base, cfg_.rope_freq_scale,
         rope_freqs_, neox, stream_);
    kv_store(L.kv, k_, v_, seq_, pos_, n, stream_);
    for (int i0 = 0; i0 < n; i0 += attn_rows_) {
      const int cnt = std::min(attn_rows_, n - i0);
      attention(L.kv, q_ + static_cast<int64_t>(i0) * cfg_.q_dim(), seq_ + i0, pos_ + i0, cnt, cfg_.n_head,
                cfg_.n_head_kv, cfg_.head_dim, scale, attn_scratch_, attn_ + static_cast<int64_t>(i0) * cfg_.q_dim(),
                stream_);
    }
    matmul(L.wo, attn_, proj_, n);
    add_inplace(x_, proj_, n * d, stream_);
    rms_norm(x_, L.ffn_norm, xn_, n, static_cast<int>(d), cfg_.rms_eps, stream_);
    matmul(L.w_gate, xn_, gate_, n);
    matmul(L.w_up, xn_, up_, n);
    swiglu(gate_, up_, static_cast<int64_t>(n) * cfg_.n_ff, stream_);
    matmul(L.w_down, gate_, proj_, n);
    add_inplace(x_, proj_, n * d, stream_);
  }
}

void CudaStage::head(const float* hidden, int32_t n, float* logits) {
  if (!spec_.head) throw Error("this shard does not own the output head");
  if (n <= 0) return;
  if (n > opt_.max_batch_tokens) throw Error("head: more rows than max_batch_tokens");
  const int64_t d = cfg_.n_embd;
  TANDEM_CUDA_CHECK(cudaMemcpyAsync(x_, hidden, n * d * 4, cudaMemcpyHostToDevice, stream_));
  rms_norm(x_, output_norm_, xn_, n, static_cast<int>(d), cfg_.rms_eps, stream_);
  matmul(output_, xn_, logits_, n);
  TANDEM_CUDA_CHECK(cudaMemcpyAsync(logits, logits_, static_cast<size_t>(n) * cfg_.n_vocab * 4, cudaMemcpyDeviceToHost,
                                    stream_));
  TANDEM_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

}  // namespace tandem::gpu
