#pragma once
// The Llama/Qwen2 forward pass on the CPU for one shard (a layer range plus
// optionally the embedding and the output head). Used by the CLI directly and,
// later, by the CPU worker process and the GPU worker's host fallback.
#include <tbb/enumerable_thread_specific.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/gguf_file.h"
#include "core/model_config.h"
#include "cpu_worker/attention.h"
#include "cpu_worker/kv_cache.h"
#include "cpu_worker/matmul.h"
#include "cpu_worker/thread_pool.h"
#include "cpu_worker/weight_buffer.h"
#include "cpu_worker/weights.h"

namespace tandem::cpu {

// Where one row of a batch belongs: its sequence slot and its position there.
struct RowPos {
  int32_t seq = 0;
  int32_t pos = 0;
};

struct EngineOptions {
  int threads = 1;
  bool pin_threads = false;  // see ThreadPool
  KvCacheConfig kv;
  Residency residency;
};

class LlamaEngine {
 public:
  // Throws core::Error (missing tensor, bad shape, bad KV type, ...).
  LlamaEngine(std::shared_ptr<const core::gguf::File> file, ShardSpec spec, EngineOptions opt);

  const core::ModelConfig& config() const { return cfg_; }
  const ShardSpec& shard() const { return spec_; }
  const KvCache& kv() const { return kv_; }
  // Bytes of weights copied into a kernel layout at load (RAM outside the
  // mapping, whose pages of those tensors are released).
  uint64_t repacked_bytes() const { return repacked_.size(); }
  // Bytes of weights mlocked (EngineOptions::residency.mlock), and why
  // locking failed ("" when it did not, or was not asked for).
  uint64_t locked_bytes() const { return locked_bytes_; }
  const std::string& lock_error() const { return lock_error_; }
  int threads() const { return pool_.threads(); }

  // hidden: [tokens.size() × n_embd] rows of the embedding table.
  void embed(std::span<const int32_t> tokens, float* hidden);

  // Runs the shard's layers over hidden rows [n × n_embd] in place: token i
  // of sequence `seq` sits at position pos0 + i and attends to positions
  // 0..pos0+i of that sequence (earlier ones must already be in the cache).
  void run_layers(float* hidden, int32_t n, int32_t seq, int32_t pos0);

  // The same over a batch mixing sequences (continuous batching): row i
  // belongs to rows[i].seq at rows[i].pos and attends to positions
  // 0..rows[i].pos of its sequence. Every row's K/V is stored before any row
  // attends, so rows of one sequence may share a batch in position order.
  // A row's result never depends on the other rows (same kernels, same
  // reduction order per output whatever the batch size).
  void run_layers(float* hidden, std::span<const RowPos> rows);

  // logits: [n × n_vocab] from hidden rows [n × n_embd] (final norm + head).
  // runs: the rows' runs of one sequence (matmul.h); empty = one sequence.
  void head(const float* hidden, int32_t n, float* logits, const std::vector<int32_t>& runs = {});

  // Embedding → layers → head for a whole-model shard. logits gets
  // [n_vocab] for the last token, or [n × n_vocab] when all_logits.
  void forward(std::span<const int32_t> tokens, int32_t seq, int32_t pos0, bool all_logits,
               std::vector<float>& logits);

 private:
  void attention(int32_t layer_local, std::span<const RowPos> rows);
  void quantize_for(const Matrix& w, const float* x, int64_t n);

  std::shared_ptr<const core::gguf::File> file_;
  core::ModelConfig cfg_;
  ShardSpec spec_;
  ModelWeights w_;
  ThreadPool pool_;
  KvCache kv_;

  // Scratch, grown to the largest batch seen (n = tokens in the batch):
  std::vector<float> xn_;     // [n × n_embd] normed input of a sub-block
  std::vector<float> q_;      // [n × q_dim]
  std::vector<float> k_;      // [n × kv_dim]
  std::vector<float> v_;      // [n × kv_dim]
  std::vector<float> attn_;   // [n × q_dim] attention output (heads concatenated)
  std::vector<float> proj_;   // [n × n_embd] output of wo / w_down
  std::vector<float> gate_;   // [n × n_ff]
  std::vector<float> up_;     // [n × n_ff]
  std::vector<float> cos_, sin_;  // [n × rope_dims/2] rotation per token
  std::vector<RowPos> rows_;      // [n] for the single-sequence overload
  std::vector<int32_t> runs_;     // lengths of the batch's runs of one sequence (matmul.h)
  QuantizedActs acts_;
  const float* acts_src_ = nullptr;  // rows acts_ was made from (reused while unchanged)
  KvRowCodec k_codec_, v_codec_;  // how K / V rows are stored, read and dotted
  std::unique_ptr<tbb::enumerable_thread_specific<AttentionScratch>> attn_scratch_;
  WeightBuffer repacked_;  // every Matrix::x8 of the shard, one after another (64-byte aligned)
  uint64_t locked_bytes_ = 0;
  std::string lock_error_;

  void repack_weights(const Residency& res);
  void lock_weights();
};

}  // namespace tandem::cpu
