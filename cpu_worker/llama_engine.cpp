#include "cpu_worker/llama_engine.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "cpu_worker/ops.h"
#include "cpu_worker/repack_x4.h"
#include "cpu_worker/repack_x8.h"
#include "cpu_worker/swiglu.h"

namespace tandem::cpu {

using core::Error;

LlamaEngine::LlamaEngine(std::shared_ptr<const core::gguf::File> file, ShardSpec spec, EngineOptions opt)
    : file_(std::move(file)),
      cfg_(core::config_from_gguf(*file_)),
      spec_(spec),
      w_(bind_weights(*file_, cfg_, spec_)),
      pool_(opt.threads, opt.pin_threads),
      kv_(cfg_, spec_.layer_end - spec_.layer_begin, opt.kv),
      k_codec_(kv_row_codec(opt.kv.k_type)),
      v_codec_(kv_row_codec(opt.kv.v_type)),
      attn_scratch_(std::make_unique<tbb::enumerable_thread_specific<AttentionScratch>>()) {
  repack_weights(opt.residency);
  if (opt.residency.mlock) lock_weights();
}

void LlamaEngine::repack_weights(const Residency& res) {
  // Every matrix with a repacked layout (eight-row K-quants, four-row legacy
  // types): the layers', and the head, the largest single matrix of a Llama
  // (vocabulary × n_embd), read every decoded token.
  auto layout = [](const Matrix& m) -> int {  // 8, 4, or 0: none
    if (!m.data) return 0;
    if (x8_enabled(m.type, m.rows, m.cols)) return 8;
    return x4_enabled(m.type, m.rows, m.cols) ? 4 : 0;
  };
  std::vector<Matrix*> todo;
  for (auto& L : w_.layers)
    for (Matrix* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down})
      if (layout(*m)) todo.push_back(m);
  if (spec_.head && layout(w_.output)) todo.push_back(&w_.output);
  if (todo.empty()) return;
  // One buffer for the shard (one 2 MiB rounding, huge pages across matrix
  // boundaries); each matrix 64-byte aligned inside it.
  std::vector<size_t> at;
  size_t total = 0;
  for (const Matrix* m : todo) {
    at.push_back(total);
    const size_t bytes = layout(*m) == 8 ? static_cast<size_t>(m->rows / 8) * x8_group_bytes(m->type, m->cols)
                                         : static_cast<size_t>(m->rows / 4) * x4_group_bytes(m->type, m->cols);
    total += (bytes + 63) / 64 * 64;
  }
  repacked_ = WeightBuffer(total, res.huge_pages);
  const long page = ::sysconf(_SC_PAGESIZE);
  for (size_t i = 0; i < todo.size(); ++i) {
    Matrix& m = *todo[i];
    uint8_t* dst = repacked_.data() + at[i];
    if (layout(m) == 8) {
      pool_.parallel_for(m.rows / 8, 16, [&](int64_t g0, int64_t g1) {
        repack_x8_groups(m.type, m.data, m.row_bytes, m.cols, g0, g1, dst);
      });
      m.x8 = dst;
    } else {
      pool_.parallel_for(m.rows / 4, 32, [&](int64_t g0, int64_t g1) {
        repack_x4_groups(m.type, m.data, m.row_bytes, m.cols, g0, g1, dst);
      });
      m.x4 = dst;
    }
    // The kernels read the copy from now on: give the mapping's pages of
    // this tensor back, so resident memory counts the weights once. (A tied
    // output head is also the embedding: a lookup faults its one row back in
    // from the page cache.)
    const auto begin = reinterpret_cast<uintptr_t>(m.data);
    const uintptr_t lo = (begin + page - 1) / page * page;
    const uintptr_t hi = (begin + m.rows * m.row_bytes) / page * page;
    if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
  }
}

void LlamaEngine::lock_weights() {
  // What decode reads every token: the repacked copy and the matrices still
  // read from the mapping (the embedding is read a row per token: not locked).
  std::vector<std::pair<const void*, size_t>> spans;
  if (repacked_.size()) spans.emplace_back(repacked_.data(), repacked_.size());
  auto add = [&](const Matrix& m) {
    if (m.data && !m.x8 && !m.x4) spans.emplace_back(m.data, static_cast<size_t>(m.rows) * m.row_bytes);
  };
  for (const auto& L : w_.layers)
    for (const Matrix* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) add(*m);
  if (spec_.head) add(w_.output);
  for (size_t i = 0; i < spans.size(); ++i) {
    lock_error_ = lock_pages(spans[i].first, spans[i].second);
    if (!lock_error_.empty()) {
      // All or nothing: a partly locked shard would only hide the problem.
      for (size_t j = 0; j < i; ++j) unlock_pages(spans[j].first, spans[j].second);
      lock_error_ = "mlock of " + std::to_string(locked_bytes_ + spans[i].second) + " bytes of weights failed: " + lock_error_;
      locked_bytes_ = 0;
      return;
    }
    locked_bytes_ += spans[i].second;
  }
}

void LlamaEngine::embed(std::span<const int32_t> tokens, float* hidden) {
  if (!spec_.embedding) throw Error("this shard does not own the token embedding");
  const auto& tr = quant::traits(w_.tok_embd.type);
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t t = tokens[i];
    if (t < 0 || t >= cfg_.n_vocab)
      throw Error("token id " + std::to_string(t) + " is outside the vocabulary (0.." + std::to_string(cfg_.n_vocab - 1) + ")");
    tr.to_float(w_.tok_embd.row(t), hidden + i * cfg_.n_embd, cfg_.n_embd);
  }
}

void LlamaEngine::quantize_for(const Matrix& w, const float* x, int64_t n) {
  const quant::Type at = act_type_for(w.type);
  // The same normed rows feed several matrices (Q, K, V; gate, up): quantize
  // them once per activation format.
  if (acts_src_ == x && acts_.type() == at && acts_.rows() == n && acts_.cols() == w.cols) return;
  acts_.quantize(x, n, w.cols, at, pool_);
  acts_src_ = x;
}

void LlamaEngine::run_layers(float* hidden, int32_t n, int32_t seq, int32_t pos0) {
  if (n <= 0) return;
  if (pos0 < 0 || pos0 + n > kv_.config().n_ctx)
    throw Error("context full: positions " + std::to_string(pos0) + ".." + std::to_string(pos0 + n - 1) +
                " exceed the context size " + std::to_string(kv_.config().n_ctx));
  rows_.resize(n);
  for (int32_t i = 0; i < n; ++i) rows_[i] = {seq, pos0 + i};
  run_layers(hidden, rows_);
}

void LlamaEngine::run_layers(float* hidden, std::span<const RowPos> rows) {
  const int32_t n = static_cast<int32_t>(rows.size());
  if (n <= 0) return;
  for (const RowPos& r : rows) {
    if (r.seq < 0 || r.seq >= kv_.config().n_seq)
      throw Error("sequence slot " + std::to_string(r.seq) + " out of range (0.." + std::to_string(kv_.config().n_seq - 1) + ")");
    if (r.pos < 0 || r.pos >= kv_.config().n_ctx)
      throw Error("context full: position " + std::to_string(r.pos) + " exceeds the context size " +
                  std::to_string(kv_.config().n_ctx));
  }
  // Runs of consecutive rows of one sequence: each run's matmul rows take
  // the float steps llama.cpp takes for that sequence alone (matmul.h).
  runs_.clear();
  for (int32_t i = 0; i < n; ++i) {
    if (i > 0 && rows[i].seq == rows[i - 1].seq) ++runs_.back();
    else runs_.push_back(1);
  }
  const int64_t d = cfg_.n_embd;
  xn_.resize(n * d);
  q_.resize(static_cast<size_t>(n) * cfg_.q_dim());
  k_.resize(static_cast<size_t>(n) * cfg_.kv_dim());
  v_.resize(static_cast<size_t>(n) * cfg_.kv_dim());
  attn_.resize(static_cast<size_t>(n) * cfg_.q_dim());
  proj_.resize(n * d);
  gate_.resize(static_cast<size_t>(n) * cfg_.n_ff);
  up_.resize(static_cast<size_t>(n) * cfg_.n_ff);
  const int32_t half = cfg_.rope_dims / 2;
  cos_.resize(static_cast<size_t>(n) * half);
  sin_.resize(static_cast<size_t>(n) * half);
  for (int32_t i = 0; i < n; ++i) rope_angles(rows[i].pos, cfg_, w_.rope_freqs, &cos_[i * half], &sin_[i * half]);

  for (size_t l = 0; l < w_.layers.size(); ++l) {
    const LayerWeights& L = w_.layers[l];
    // --- attention sub-block ---
    for (int32_t i = 0; i < n; ++i) rms_norm(hidden + i * d, L.attn_norm, &xn_[i * d], d, cfg_.rms_eps);
    acts_src_ = nullptr;
    quantize_for(L.wq, xn_.data(), n);
    matmul(L.wq, acts_, q_.data(), pool_, runs_);
    quantize_for(L.wk, xn_.data(), n);
    matmul(L.wk, acts_, k_.data(), pool_, runs_);
    quantize_for(L.wv, xn_.data(), n);
    matmul(L.wv, acts_, v_.data(), pool_, runs_);
    if (L.bq) {
      for (int32_t i = 0; i < n; ++i) {
        for (int32_t j = 0; j < cfg_.q_dim(); ++j) q_[i * cfg_.q_dim() + j] += L.bq[j];
        for (int32_t j = 0; j < cfg_.kv_dim(); ++j) k_[i * cfg_.kv_dim() + j] += L.bk[j];
        for (int32_t j = 0; j < cfg_.kv_dim(); ++j) v_[i * cfg_.kv_dim() + j] += L.bv[j];
      }
    }
    attention(static_cast<int32_t>(l), rows);
    acts_src_ = nullptr;
    quantize_for(L.wo, attn_.data(), n);
    matmul(L.wo, acts_, proj_.data(), pool_, runs_);
    for (int64_t i = 0; i < n * d; ++i) hidden[i] += proj_[i];

    // --- feed-forward sub-block (SwiGLU) ---
    for (int32_t i = 0; i < n; ++i) rms_norm(hidden + i * d, L.ffn_norm, &xn_[i * d], d, cfg_.rms_eps);
    acts_src_ = nullptr;
    quantize_for(L.w_gate, xn_.data(), n);
    matmul(L.w_gate, acts_, gate_.data(), pool_, runs_);
    quantize_for(L.w_up, xn_.data(), n);
    matmul(L.w_up, acts_, up_.data(), pool_, runs_);
    swiglu(gate_.data(), up_.data(), static_cast<int64_t>(n) * cfg_.n_ff);
    acts_src_ = nullptr;
    quantize_for(L.w_down, gate_.data(), n);
    matmul(L.w_down, acts_, proj_.data(), pool_, runs_);
    for (int64_t i = 0; i < n * d; ++i) hidden[i] += proj_[i];
  }
}

void LlamaEngine::attention(int32_t l, std::span<const RowPos> rows) {
  const int32_t n = static_cast<int32_t>(rows.size());
  const int32_t hd = cfg_.head_dim;
  const int32_t q_dim = cfg_.q_dim(), kv_dim = cfg_.kv_dim();
  const int32_t group = cfg_.n_head / cfg_.n_head_kv;
  const int32_t half = cfg_.rope_dims / 2;

  // RoPE, then append this batch's K and V rows to the cache.
  for (int32_t i = 0; i < n; ++i) {
    for (int32_t h = 0; h < cfg_.n_head; ++h)
      rope_apply(&q_[i * q_dim + h * hd], &cos_[i * half], &sin_[i * half], cfg_.rope_dims, cfg_.rope_style);
    for (int32_t h = 0; h < cfg_.n_head_kv; ++h)
      rope_apply(&k_[i * kv_dim + h * hd], &cos_[i * half], &sin_[i * half], cfg_.rope_dims, cfg_.rope_style);
    k_codec_.store(&k_[i * kv_dim], kv_.k_row(l, rows[i].seq, rows[i].pos), kv_dim);
    v_codec_.store(&v_[i * kv_dim], kv_.v_row(l, rows[i].seq, rows[i].pos), kv_dim);
  }

  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const size_t khb = kv_.k_head_bytes(), vhb = kv_.v_head_bytes();
  // Consecutive positions of one KV head are a whole cache row apart.
  const size_t k_stride = khb * cfg_.n_head_kv, v_stride = vhb * cfg_.n_head_kv;
  auto& scratch = *attn_scratch_;
  pool_.parallel_for(static_cast<int64_t>(n) * cfg_.n_head, 1, [&](int64_t b, int64_t e) {
    AttentionScratch& s = scratch.local();
    for (int64_t task = b; task < e; ++task) {
      const int32_t i = static_cast<int32_t>(task / cfg_.n_head);
      const int32_t h = static_cast<int32_t>(task % cfg_.n_head);
      const int32_t kvh = h / group;  // GQA: `group` query heads share one KV head
      const int32_t seq = rows[i].seq;
      attend_one(&q_[i * q_dim + h * hd], hd, rows[i].pos + 1, scale, k_codec_, kv_.k_row(l, seq, 0) + kvh * khb,
                 k_stride, v_codec_, kv_.v_row(l, seq, 0) + kvh * vhb, v_stride, s, &attn_[i * q_dim + h * hd]);
    }
  });
}

void LlamaEngine::head(const float* hidden, int32_t n, float* logits, const std::vector<int32_t>& runs) {
  if (!spec_.head) throw Error("this shard does not own the output head");
  const int64_t d = cfg_.n_embd;
  xn_.resize(n * d);
  for (int32_t i = 0; i < n; ++i) rms_norm(hidden + i * d, w_.output_norm, &xn_[i * d], d, cfg_.rms_eps);
  acts_src_ = nullptr;
  quantize_for(w_.output, xn_.data(), n);
  matmul(w_.output, acts_, logits, pool_, runs);
}

void LlamaEngine::forward(std::span<const int32_t> tokens, int32_t seq, int32_t pos0, bool all_logits,
                          std::vector<float>& logits) {
  const int32_t n = static_cast<int32_t>(tokens.size());
  if (n == 0) throw Error("forward: empty batch");
  std::vector<float> hidden(static_cast<size_t>(n) * cfg_.n_embd);  // [n × n_embd] residual stream
  embed(tokens, hidden.data());
  run_layers(hidden.data(), n, seq, pos0);
  if (all_logits) {
    logits.resize(static_cast<size_t>(n) * cfg_.n_vocab);
    head(hidden.data(), n, logits.data());
  } else {
    logits.resize(cfg_.n_vocab);
    head(hidden.data() + static_cast<size_t>(n - 1) * cfg_.n_embd, 1, logits.data());
  }
}

}  // namespace tandem::cpu
