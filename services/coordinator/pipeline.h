#pragma once
// The coordinator's view of the two-stage pipeline:
//
//   coordinator --ring 0--> stage 0 --ring 1--> stage 1 --ring 2--> coordinator
//
// Each incarnation (generation) gets three fresh shared-memory rings (mode
// 0600, unique names, unlinked as soon as both workers have mapped them, so
// nothing is left in /dev/shm whoever dies). A step writes one batch of
// embedded rows into ring 0 and waits for the logits on ring 2. A worker that
// stops beating its rings, exits, or stops answering its control plane takes
// the pipeline down: the step in flight fails at once and the supervisor
// brings a new incarnation up.
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/batch_wire.h"
#include "core/shm_ring.h"
#include "tandem/v1/worker.grpc.pb.h"

namespace tandem::services {

struct StagePlan {
  std::string role;  // "gpu" | "cpu"
  int32_t layer_begin = 0, layer_end = 0;
  bool head = false;
  int32_t threads = 0;  // 0: the worker's default
  std::string model_path;  // the GGUF this stage loads ("" : PipelineConfig::model_path)
  // The memory plan of this stage (core/plan), sent along so the worker logs
  // it beside what it really allocates; 0: no plan.
  uint64_t planned_weight_bytes = 0, planned_kv_bytes = 0, planned_scratch_bytes = 0;
};

struct PipelineConfig {
  std::string model_path;
  std::string kv_type_k = "f16", kv_type_v = "f16";
  int32_t context = 4096;
  int32_t max_sequences = 8;
  int32_t max_batch_tokens = 512;
  int32_t n_embd = 0, n_vocab = 0;
  core::wire::DType wire = core::wire::DType::F32;
  std::chrono::milliseconds step_timeout{std::chrono::minutes(10)};
  std::chrono::milliseconds peer_timeout{1000};
  // --gpu-layers auto: when the GPU worker refuses its shard for lack of
  // memory (RESOURCE_EXHAUSTED), this moves one layer from it to the CPU
  // stage in `stages` (and re-plans their bytes) and returns true; false
  // when there is nothing left to move. Unset: such a refusal fails bring_up.
  std::function<bool(std::vector<StagePlan>& stages, const std::string& refusal)> back_off;
};

// A step failed. pipeline_down: a worker is gone (clients get UNAVAILABLE);
// otherwise a stage refused the batch (INTERNAL) and the pipeline is fine.
class StepError : public std::runtime_error {
 public:
  StepError(const std::string& what, bool down) : std::runtime_error(what), pipeline_down(down) {}
  bool pipeline_down;
};

struct StageStatus {
  StagePlan plan;
  std::string address;
  int64_t pid = 0;
  uint64_t incarnation = 0;  // WorkerHealth.incarnation of the process that holds the shard
  std::string device, memory, metrics_url, model_path;
  uint64_t weight_bytes = 0, kv_bytes = 0;
  bool up = false;
};

class Pipeline {
 public:
  Pipeline(PipelineConfig cfg, std::vector<StagePlan> stages);
  ~Pipeline();

  const PipelineConfig& config() const { return cfg_; }
  const std::vector<StagePlan>& stages() const { return plans_; }

  // Called with true when an incarnation comes up, false when it goes down.
  void on_state_change(std::function<void(bool up, const std::string& why)> cb) { on_state_ = std::move(cb); }
  // Called from bring_up when a worker answers as another process than the
  // one seen before (its incarnation changed): a restart the coordinator did
  // not cause itself, as when Kubernetes restarts a worker container.
  void on_worker_restart(std::function<void(const std::string& role)> cb) { on_restart_ = std::move(cb); }

  // Loads the shards (skipped for a worker that still holds them: same pid,
  // loaded) and connects fresh rings. Throws core::Error saying which worker
  // failed and why. addresses: control plane of each stage, in stage order.
  void bring_up(const std::vector<std::string>& addresses);
  void mark_down(const std::string& why);
  bool up() const { return up_.load(); }
  // Why the pipeline is down: the failure that took it down, or the latest
  // failed bring_up (a worker that cannot load its shard, /dev/shm full);
  // "" while up or before the first attempt. Clients are told this.
  std::string down_reason();
  void note_bring_up_failure(const std::string& why);

  // Checks the workers' control planes (attach mode): false + why when one
  // does not answer, is not loaded, or restarted (pid changed).
  bool probe(std::string& why);

  // One batch through both stages. meta/hidden: [n] rows, [n × n_embd] f32.
  // out_meta/logits: the rows that asked for logits, [k × n_vocab]. Throws StepError.
  void step(uint64_t batch_id, std::span<const core::wire::RowMeta> meta, const float* hidden,
            std::vector<core::wire::RowMeta>& out_meta, std::vector<float>& logits);

  // Best effort: tells every worker the slot is empty (for their stats).
  void release_sequence(int32_t seq);

  std::vector<StageStatus> status();
  void shutdown_workers();  // Shutdown RPC to each (attach mode exit leaves them running: not called there)

 private:
  struct Rings;
  bool workers_alive(std::string& why) const;

  PipelineConfig cfg_;
  std::vector<StagePlan> plans_;
  std::function<void(bool, const std::string&)> on_state_;
  std::function<void(const std::string&)> on_restart_;

  std::mutex mu_;  // guards stubs_, status_, rings_ swaps
  std::vector<std::string> addresses_;
  std::vector<std::unique_ptr<tandem::v1::Worker::Stub>> stubs_;
  std::vector<StageStatus> status_;
  std::shared_ptr<Rings> rings_;
  // Its own lock: bring_up holds mu_ through shard loads (minutes), and a
  // request refused meanwhile must still learn why at once.
  std::mutex reason_mu_;
  std::string down_reason_;
  std::atomic<bool> up_{false};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> heartbeat_stop_{false};
  std::thread heartbeat_;
};

}  // namespace tandem::services
