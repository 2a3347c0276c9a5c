#pragma once
// Continuous batching over the pipeline. Requests wait in a bounded queue,
// get a KV sequence slot when one is free, and from then on every step
// carries one row per decoding request plus as many prompt rows of
// prefilling requests as fit max_batch_tokens. Rows are independent (the
// kernels reduce each output row in a fixed order whatever the batch), so a
// request's tokens never depend on what else is running.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/support/status.h>

#include "core/sampler.h"
#include "core/stop_strings.h"
#include "core/tokenizer.h"
#include "cpu_worker/llama_engine.h"
#include "services/coordinator/coordinator_metrics.h"
#include "services/coordinator/pipeline.h"
#include "services/coordinator/request_validation.h"
#include "tandem/v1/inference.pb.h"

namespace tandem::services {

using Clock = std::chrono::steady_clock;

// One streamed request. The scheduler thread fills `events`; the gRPC
// handler thread drains them. Status OK + final message ends the stream.
class Request {
 public:
  struct Event {
    tandem::v1::GenerateResponse message;
    bool last = false;
    grpc::Status status;  // meaningful when last
  };

  Request(std::vector<int32_t> prompt, GenerationSettings s, std::optional<Clock::time_point> deadline)
      : prompt(std::move(prompt)), settings(std::move(s)), deadline(deadline) {}

  // Handler side: waits up to `timeout` for events; returns false on timeout.
  bool wait_events(std::deque<Event>& out, std::chrono::milliseconds timeout);
  void cancel() { cancelled = true; }

  // Scheduler side.
  void push(Event e);

  const std::vector<int32_t> prompt;
  const GenerationSettings settings;
  const std::optional<Clock::time_point> deadline;
  std::atomic<bool> cancelled{false};

 private:
  friend class Scheduler;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> events_;

  // Scheduler-thread state:
  int32_t slot = -1;
  int32_t fed = 0;            // positions already sent through the pipeline
  int32_t next_token = -1;    // the token the next decode row embeds
  int32_t generated = 0;
  std::unique_ptr<core::Sampler> sampler;
  std::unique_ptr<core::StreamDecoder> detok;
  std::unique_ptr<core::StopMatcher> stops;
  Clock::time_point t_accept = Clock::now(), t_scheduled{}, t_first_token{}, t_prefill_done{}, t_last_token{};
};

struct SchedulerConfig {
  int32_t max_sequences = 8;
  int32_t max_queue = 64;
  int32_t max_batch_tokens = 512;
  int32_t context = 4096;
};

class Scheduler {
 public:
  // embedder: an embedding-only engine over the model (the coordinator does the lookup).
  Scheduler(SchedulerConfig cfg, Pipeline& pipeline, const core::Tokenizer& tok, cpu::LlamaEngine& embedder,
            CoordinatorMetrics& metrics);
  ~Scheduler();

  // Queues a request. Returns OK, RESOURCE_EXHAUSTED (queue full) or
  // UNAVAILABLE (pipeline down). Validates settings (INVALID_ARGUMENT).
  grpc::Status submit(const std::shared_ptr<Request>& r);
  void stop();
  const SchedulerConfig& config() const { return cfg_; }

 private:
  void loop();
  void admit();
  void finish(Request& r, grpc::Status status, tandem::v1::FinishReason reason, const char* outcome);
  void fail_all(const grpc::Status& status, const char* outcome, bool include_waiting);
  void on_logits(Request& r, const float* logits);
  void emit(Request& r, const std::string& text, int32_t token, const float* logits);
  void release_slot(Request& r);

  SchedulerConfig cfg_;
  Pipeline& pipeline_;
  const core::Tokenizer& tok_;
  cpu::LlamaEngine& embedder_;
  CoordinatorMetrics& m_;
  int32_t n_vocab_;
  int32_t n_embd_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Request>> waiting_;
  bool stopping_ = false;

  // Scheduler thread only:
  std::vector<std::shared_ptr<Request>> running_;
  std::vector<int32_t> free_slots_;
  uint64_t batch_id_ = 0;
  std::vector<core::wire::RowMeta> meta_;     // [n] rows of the step
  std::vector<int32_t> tokens_;               // [n]
  std::vector<float> hidden_;                 // [n × n_embd] embedded rows
  std::vector<core::wire::RowMeta> out_meta_; // [k]
  std::vector<float> logits_;                 // [k × n_vocab]
  std::thread thread_;
};

}  // namespace tandem::services
