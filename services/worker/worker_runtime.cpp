#include "services/worker/worker_runtime.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "core/batch_wire.h"
#include "core/error.h"
#include "core/plan/memory_plan.h"
#include "core/shm_ring.h"
#include "services/common/metrics_server.h"
#include "services/common/process_memory.h"
#include "services/common/signals.h"
#include "tandem/v1/worker.grpc.pb.h"

namespace tandem::services {

namespace {

namespace pb = tandem::v1;
namespace wire = core::wire;
namespace shm = core::shm;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// The two rings of one pipeline incarnation, as this stage sees them.
struct Pipe {
  shm::Ring in, out;
  uint64_t generation = 0;
};

struct WorkerMetrics {
  explicit WorkerMetrics(prometheus::Registry& r, const std::string& role)
      : stage(prometheus::BuildHistogram()
                  .Name("tandem_worker_stage_seconds")
                  .Help("Time per batch in each stage of the worker: compute (the layers and head), ring_wait "
                        "(waiting for a free slot in the output ring), copy (decoding input, encoding output)")
                  .Labels({{"worker", role}})
                  .Register(r)),
        compute(stage.Add({{"stage", "compute"}}, latency_buckets())),
        ring_wait(stage.Add({{"stage", "ring_wait"}}, latency_buckets())),
        copy(stage.Add({{"stage", "copy"}}, latency_buckets())),
        tokens(prometheus::BuildCounter()
                   .Name("tandem_worker_tokens_total")
                   .Help("Rows (token positions) processed by this worker's layers")
                   .Labels({{"worker", role}})
                   .Register(r)
                   .Add({})),
        batches(prometheus::BuildCounter()
                    .Name("tandem_worker_batches_total")
                    .Help("Batches processed")
                    .Labels({{"worker", role}})
                    .Register(r)
                    .Add({})),
        errors(prometheus::BuildCounter()
                   .Name("tandem_worker_batch_errors_total")
                   .Help("Batches answered with an error message")
                   .Labels({{"worker", role}})
                   .Register(r)
                   .Add({})),
        resident(prometheus::BuildGauge()
                     .Name("tandem_worker_memory_bytes")
                     .Help("Memory this worker holds: kind=weights_resident (pages of the model this process has "
                           "touched in RAM, or bytes uploaded to VRAM), kind=kv_reserved (the KV cache allocation), kind=scratch (device activations and workspace), "
                           "kind=locked (weights mlocked by --mlock), kind=huge_pages (anonymous memory on transparent "
                           "huge pages, --huge-pages)")
                     .Labels({{"worker", role}})
                     .Register(r)),
        layers(prometheus::BuildGauge()
                   .Name("tandem_worker_layer_range")
                   .Help("The worker's layer range: bound=begin (first layer) and bound=end (one past the last)")
                   .Labels({{"worker", role}})
                   .Register(r)),
        layer_begin(layers.Add({{"bound", "begin"}})),
        layer_end(layers.Add({{"bound", "end"}})),
        head(prometheus::BuildGauge()
                 .Name("tandem_worker_owns_head")
                 .Help("1 when this worker runs the final norm and output head")
                 .Labels({{"worker", role}})
                 .Register(r)
                 .Add({})),
        sequences(prometheus::BuildGauge()
                      .Name("tandem_worker_sequences_active")
                      .Help("Sequence slots holding cached positions")
                      .Labels({{"worker", role}})
                      .Register(r)
                      .Add({})) {}
  prometheus::Family<prometheus::Histogram>& stage;
  prometheus::Histogram &compute, &ring_wait, &copy;
  prometheus::Counter &tokens, &batches, &errors;
  prometheus::Family<prometheus::Gauge>& resident;
  prometheus::Family<prometheus::Gauge>& layers;
  prometheus::Gauge &layer_begin, &layer_end, &head, &sequences;
};

class Worker final : public pb::Worker::Service {
 public:
  Worker(const WorkerOptions& opt, StageFactory factory, MetricsServer& metrics)
      : opt_(opt), factory_(std::move(factory)), metrics_server_(metrics), m_(metrics.registry(), opt.role) {
    compute_ = std::thread([this] { compute_loop(); });
    heartbeat_ = std::thread([this] { heartbeat_loop(); });
  }
  ~Worker() override { stop(); }

  void stop() {
    {
      std::lock_guard lk(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    if (compute_.joinable()) compute_.join();
    if (heartbeat_.joinable()) heartbeat_.join();
  }

  std::atomic<bool> shutdown_requested{false};

  static std::string mib(uint64_t b) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1 << 20));
    return buf;
  }

  // The coordinator's plan next to what the backend really reserved: the
  // planner's figures are checked on every load, in the log.
  void log_plan_against_allocation(const pb::LoadShardRequest& req, const core::StageMemory& mem) const {
    if (req.planned_weight_bytes() == 0 && req.planned_kv_bytes() == 0) return;
    const uint64_t plan = req.planned_weight_bytes() + req.planned_kv_bytes() + req.planned_scratch_bytes();
    const uint64_t real = mem.weight_bytes + mem.kv_bytes + mem.scratch_bytes;
    std::fprintf(stderr,
                 "tandem-%s-worker: plan: weights %s, KV %s, scratch %s = %s; allocated: weights %s, KV %s, scratch %s = %s%s\n",
                 opt_.role.c_str(), mib(req.planned_weight_bytes()).c_str(), mib(req.planned_kv_bytes()).c_str(),
                 mib(req.planned_scratch_bytes()).c_str(), mib(plan).c_str(), mib(mem.weight_bytes).c_str(),
                 mib(mem.kv_bytes).c_str(), mib(mem.scratch_bytes).c_str(), mib(real).c_str(),
                 real > plan ? " (over the plan)" : "");
  }

  grpc::Status LoadShard(grpc::ServerContext*, const pb::LoadShardRequest* req, pb::LoadShardResponse* resp) override {
    ShardRequest s;
    s.model_path = req->model_path();
    s.layer_begin = req->layer_begin();
    s.layer_end = req->layer_end();
    s.embedding = req->embedding();
    s.head = req->head();
    s.kv_type_k = req->kv_type_k().empty() ? "f16" : req->kv_type_k();
    s.kv_type_v = req->kv_type_v().empty() ? "f16" : req->kv_type_v();
    s.context = req->context();
    s.max_sequences = req->max_sequences();
    s.threads = req->threads() > 0 ? req->threads() : opt_.threads;
    s.huge_pages = opt_.huge_pages;
    s.mlock = opt_.mlock;
    s.pin_threads = opt_.pin_threads;
    s.max_batch_tokens = req->max_batch_tokens();
    if (s.model_path.empty()) return {grpc::StatusCode::INVALID_ARGUMENT, "model_path is empty"};
    if (s.context <= 0) return {grpc::StatusCode::INVALID_ARGUMENT, "context must be > 0"};
    if (s.max_sequences <= 0) return {grpc::StatusCode::INVALID_ARGUMENT, "max_sequences must be > 0"};
    if (s.max_batch_tokens <= 0) return {grpc::StatusCode::INVALID_ARGUMENT, "max_batch_tokens must be > 0"};
    std::unique_ptr<core::StageBackend> stage;
    try {
      std::shared_ptr<const core::gguf::File> file = core::gguf::File::open(s.model_path);
      stage = factory_(file, s);
    } catch (const core::OutOfMemory& e) {
      return {grpc::StatusCode::RESOURCE_EXHAUSTED, e.what()};
    } catch (const core::Error& e) {
      return {grpc::StatusCode::INVALID_ARGUMENT, e.what()};
    } catch (const std::bad_alloc&) {
      return {grpc::StatusCode::RESOURCE_EXHAUSTED, "out of memory loading the shard"};
    }
    const core::StageMemory mem = stage->memory();
    log_plan_against_allocation(*req, mem);
    const uint64_t real = mem.weight_bytes + mem.kv_bytes + mem.scratch_bytes;
    if (opt_.memory_limit > 0 && real > opt_.memory_limit)
      return {grpc::StatusCode::RESOURCE_EXHAUSTED,
              "layers [" + std::to_string(s.layer_begin) + ", " + std::to_string(s.layer_end) + ") need " + mib(real) +
                  " (weights " + mib(mem.weight_bytes) + ", KV " + mib(mem.kv_bytes) + ", scratch " + mib(mem.scratch_bytes) +
                  ") but --memory-limit is " + mib(opt_.memory_limit)};
    resp->set_device(mem.device);
    resp->set_weight_bytes(mem.weight_bytes);
    resp->set_kv_bytes(mem.kv_bytes);
    resp->set_scratch_bytes(mem.scratch_bytes);
    resp->set_n_embd(stage->config().n_embd);
    resp->set_n_vocab(stage->config().n_vocab);
    {
      // The compute thread holds a batch's stage only under this lock, so
      // swapping the stage waits for the batch in progress to finish.
      std::lock_guard lk(stage_mu_);
      std::lock_guard lk2(mu_);
      stage_ = std::move(stage);
      shard_ = s;
      seq_len_.assign(s.max_sequences, 0);
      m_.layer_begin.Set(s.layer_begin);
      m_.layer_end.Set(s.layer_end);
      m_.head.Set(s.head ? 1 : 0);
      m_.sequences.Set(0);
    }
    update_memory_metrics();
    std::fprintf(stderr, "tandem-%s-worker: loaded layers [%d, %d)%s%s of %s on %s\n", opt_.role.c_str(), s.layer_begin,
                 s.layer_end, s.embedding ? " + embedding" : "", s.head ? " + head" : "", s.model_path.c_str(),
                 mem.device.c_str());
    if (!mem.residency_warning.empty())
      std::fprintf(stderr, "tandem-%s-worker: warning: %s; the weights stay unlocked\n", opt_.role.c_str(),
                   mem.residency_warning.c_str());
    else if (mem.locked_bytes > 0)
      std::fprintf(stderr, "tandem-%s-worker: %.1f MiB of weights locked in RAM\n", opt_.role.c_str(),
                   static_cast<double>(mem.locked_bytes) / (1 << 20));
    return grpc::Status::OK;
  }

  grpc::Status ConnectRings(grpc::ServerContext*, const pb::ConnectRingsRequest* req, pb::ConnectRingsResponse*) override {
    if (req->input_ring().empty() || req->output_ring().empty())
      return {grpc::StatusCode::INVALID_ARGUMENT, "input_ring and output_ring must be named"};
    {
      std::lock_guard lk(mu_);
      if (!stage_) return {grpc::StatusCode::FAILED_PRECONDITION, "no shard loaded (call LoadShard first)"};
    }
    std::shared_ptr<Pipe> pipe;
    try {
      pipe = std::make_shared<Pipe>(
          Pipe{shm::Ring::open(req->input_ring()), shm::Ring::open(req->output_ring()), req->generation()});
    } catch (const core::Error& e) {
      return {grpc::StatusCode::INVALID_ARGUMENT, e.what()};
    }
    pipe->in.beat(shm::Side::Consumer);
    pipe->out.beat(shm::Side::Producer);
    {
      std::lock_guard lk(mu_);
      pipe_ = std::move(pipe);
      generation_.store(req->generation());
      std::fill(seq_len_.begin(), seq_len_.end(), 0);
      m_.sequences.Set(0);
    }
    cv_.notify_all();
    return grpc::Status::OK;
  }

  grpc::Status Health(grpc::ServerContext*, const pb::WorkerHealthRequest*, pb::WorkerHealth* h) override {
    std::lock_guard lk(mu_);
    h->set_loaded(stage_ != nullptr);
    h->set_connected(pipe_ != nullptr);
    h->set_pid(::getpid());
    h->set_device(stage_ ? device_ : "");
    h->set_metrics_url(metrics_server_.url());
    h->set_role(opt_.role);
    h->set_incarnation(incarnation_);
    return grpc::Status::OK;
  }

  // What the standard health service reports for "" and tandem.v1.Worker:
  // a shard loaded and rings connected (Kubernetes readiness).
  bool ready() {
    std::lock_guard lk(mu_);
    return stage_ != nullptr && pipe_ != nullptr;
  }
  bool connected() {
    std::lock_guard lk(mu_);
    return pipe_ != nullptr;
  }

  grpc::Status Stats(grpc::ServerContext*, const pb::WorkerStatsRequest*, pb::WorkerStats* st) override {
    update_memory_metrics();
    std::lock_guard lk(mu_);
    if (!stage_) return {grpc::StatusCode::FAILED_PRECONDITION, "no shard loaded"};
    st->set_layer_begin(shard_.layer_begin);
    st->set_layer_end(shard_.layer_end);
    st->set_head(shard_.head);
    st->set_weight_bytes(memory_.weight_bytes);
    st->set_weight_resident_bytes(weight_resident_);
    st->set_kv_bytes(memory_.kv_bytes);
    st->set_tokens_processed(tokens_);
    st->set_batches(batches_);
    st->set_sequences_active(active_sequences_locked());
    st->set_device(memory_.device);
    st->set_memory(memory_.memory);
    return grpc::Status::OK;
  }

  grpc::Status ReleaseSequence(grpc::ServerContext*, const pb::ReleaseSequenceRequest* req,
                               pb::ReleaseSequenceResponse*) override {
    std::lock_guard lk(mu_);
    if (req->sequence() < 0 || req->sequence() >= static_cast<int32_t>(seq_len_.size()))
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "sequence " + std::to_string(req->sequence()) + " is outside 0.." + std::to_string(seq_len_.size()) + ")"};
    seq_len_[req->sequence()] = 0;
    m_.sequences.Set(active_sequences_locked());
    return grpc::Status::OK;
  }

  grpc::Status Shutdown(grpc::ServerContext*, const pb::ShutdownRequest*, pb::ShutdownResponse*) override {
    shutdown_requested = true;
    return grpc::Status::OK;
  }

 private:
  int active_sequences_locked() const {
    int n = 0;
    for (int32_t l : seq_len_) n += l > 0;
    return n;
  }

  void update_memory_metrics() {
    std::string path;
    {
      std::lock_guard lk(mu_);
      if (!stage_) return;
      memory_ = stage_->memory();
      device_ = memory_.device;
      path = shard_.model_path;
    }
    // Weights in RAM: the pages of the mapped GGUF this process has touched
    // (its own layers only); in VRAM: the bytes uploaded.
    // Pages of the mapping plus the weights repacked into RAM at load.
    const uint64_t ram_weights = resident_bytes_of_file(path) + memory_.repacked_bytes;
    std::lock_guard lk(mu_);
    weight_resident_ = memory_.memory == "vram" ? memory_.weight_bytes : ram_weights;
    m_.resident.Add({{"kind", "weights_resident"}, {"memory", memory_.memory}}).Set(static_cast<double>(weight_resident_));
    m_.resident.Add({{"kind", "kv_reserved"}, {"memory", memory_.memory}}).Set(static_cast<double>(memory_.kv_bytes));
    if (memory_.scratch_bytes > 0)
      m_.resident.Add({{"kind", "scratch"}, {"memory", memory_.memory}}).Set(static_cast<double>(memory_.scratch_bytes));
    if (memory_.memory == "vram")
      m_.resident.Add({{"kind", "weights_resident"}, {"memory", "ram"}}).Set(static_cast<double>(ram_weights));
    else {
      // Residency the operator asked for (--mlock, huge pages): what took.
      m_.resident.Add({{"kind", "locked"}, {"memory", "ram"}}).Set(static_cast<double>(memory_.locked_bytes));
      m_.resident.Add({{"kind", "huge_pages"}, {"memory", "ram"}}).Set(static_cast<double>(anon_huge_page_bytes()));
    }
  }

  void heartbeat_loop() {
    auto next_memory = Clock::now();
    std::unique_lock lk(mu_);
    while (!stopping_) {
      if (pipe_) {
        pipe_->in.beat(shm::Side::Consumer);
        pipe_->out.beat(shm::Side::Producer);
      }
      if (Clock::now() >= next_memory) {
        lk.unlock();
        update_memory_metrics();
        lk.lock();
        next_memory = Clock::now() + 2s;
      }
      cv_.wait_for(lk, 50ms, [&] { return stopping_; });
    }
  }

  void compute_loop() {
    for (;;) {
      std::shared_ptr<Pipe> pipe;
      {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return stopping_ || pipe_ != nullptr; });
        if (stopping_) return;
        pipe = pipe_;
      }
      shm::WaitOptions w;
      w.timeout = 250ms;
      w.peer_timeout = 1000ms;
      w.keep_waiting = [&] { return !stopping_flag() && generation_.load() == pipe->generation; };
      std::span<const uint8_t> msg;
      try {
        msg = pipe->in.peek(w);
      } catch (const shm::RingTimeout&) {
        continue;  // idle
      } catch (const shm::RingAborted&) {
        continue;  // new rings or stopping
      } catch (const shm::PeerDead& e) {
        drop_pipe(pipe, e.what());
        continue;
      } catch (const core::Error& e) {
        drop_pipe(pipe, e.what());
        continue;
      }
      try {
        process(*pipe, msg, w);
      } catch (const shm::RingAborted&) {
      } catch (const core::Error& e) {
        // Only ring failures get here (batch errors travel downstream).
        drop_pipe(pipe, e.what());
      }
    }
  }

  bool stopping_flag() {
    std::lock_guard lk(mu_);
    return stopping_;
  }

  void drop_pipe(const std::shared_ptr<Pipe>& pipe, const std::string& why) {
    std::fprintf(stderr, "tandem-%s-worker: pipeline %llu dropped: %s\n", opt_.role.c_str(),
                 static_cast<unsigned long long>(pipe->generation), why.c_str());
    std::lock_guard lk(mu_);
    if (pipe_ == pipe) pipe_.reset();
  }

  // One batch: decode the input rows, free the input slot (so the producer
  // can prepare the next batch), run the layers, write the output.
  void process(Pipe& pipe, std::span<const uint8_t> msg, const shm::WaitOptions& w) {
    const auto t0 = Clock::now();
    wire::BatchView v;
    std::string error;
    uint64_t batch_id = 0;
    try {
      v = wire::parse(msg);
      batch_id = v.header.batch_id;
      if (v.kind() == wire::Kind::Error) error = std::string(v.text);
      else if (v.kind() != wire::Kind::Hidden) error = "stage received a message that is not hidden rows";
      else if (v.header.generation != pipe.generation) error = "batch from another pipeline generation";
    } catch (const core::Error& e) {
      error = std::string("malformed batch: ") + e.what();
    }
    std::unique_lock stage_lock(stage_mu_);
    const core::StageBackend* stage = stage_.get();
    wire::DType dtype = wire::DType::F32;
    if (error.empty()) {
      dtype = static_cast<wire::DType>(v.header.dtype);
      error = validate(v, *stage);
    }
    const uint32_t n = error.empty() ? v.header.n_rows : 0;
    if (error.empty()) {
      rows_meta_.assign(v.rows.begin(), v.rows.end());
      hidden_.resize(size_t{n} * v.header.row_width);  // [n × n_embd]
      wire::read_rows(v, hidden_.data());
    }
    pipe.in.release();
    const auto t1 = Clock::now();

    std::vector<wire::RowMeta> out_meta;
    if (error.empty()) {
      try {
        run(*stage_, out_meta);
      } catch (const core::Error& e) {
        error = e.what();
      }
    }
    const auto t2 = Clock::now();
    std::span<uint8_t> slot = pipe.out.acquire(w_output(w));
    const auto t3 = Clock::now();
    size_t bytes;
    if (!error.empty()) {
      m_.errors.Increment();
      bytes = wire::write_error(slot, pipe.generation, batch_id, "tandem-" + opt_.role + "-worker: " + error);
    } else if (stage->has_head()) {
      bytes = wire::write_rows(slot, wire::Kind::Logits, pipe.generation, batch_id, out_meta, logits_.data(),
                               static_cast<uint32_t>(stage->config().n_vocab), wire::DType::F32);
    } else {
      bytes = wire::write_rows(slot, wire::Kind::Hidden, pipe.generation, batch_id, rows_meta_, hidden_.data(),
                               static_cast<uint32_t>(stage->config().n_embd), dtype);
    }
    pipe.out.publish(bytes);
    const auto t4 = Clock::now();
    stage_lock.unlock();
    m_.copy.Observe(seconds((t1 - t0) + (t4 - t3)));
    m_.ring_wait.Observe(seconds(t3 - t2));
    if (error.empty()) {
      m_.compute.Observe(seconds(t2 - t1));
      m_.tokens.Increment(n);
      m_.batches.Increment();
      std::lock_guard lk(mu_);
      tokens_ += n;
      ++batches_;
    }
  }

  static shm::WaitOptions w_output(const shm::WaitOptions& w) {
    shm::WaitOptions o = w;
    o.timeout = 30s;  // the consumer is slow only if it is dead, which the heartbeat tells sooner
    return o;
  }

  // Checks the batch against the shard and the cached positions; "" when fine.
  std::string validate(const wire::BatchView& v, const core::StageBackend& stage) {
    if (v.header.row_width != static_cast<uint32_t>(stage.config().n_embd))
      return "rows of " + std::to_string(v.header.row_width) + " values, the model's n_embd is " +
             std::to_string(stage.config().n_embd);
    if (v.header.n_rows == 0) return "empty batch";
    std::lock_guard lk(mu_);
    if (v.header.n_rows > static_cast<uint32_t>(shard_.max_batch_tokens))
      return "batch of " + std::to_string(v.header.n_rows) + " rows exceeds max_batch_tokens " +
             std::to_string(shard_.max_batch_tokens);
    // Positions of a sequence must continue its cache (or restart it at 0).
    std::vector<int32_t> len = seq_len_;
    for (const wire::RowMeta& r : v.rows) {
      if (r.seq < 0 || r.seq >= static_cast<int32_t>(len.size()))
        return "sequence slot " + std::to_string(r.seq) + " is outside 0.." + std::to_string(len.size() - 1);
      if (r.pos >= shard_.context)
        return "position " + std::to_string(r.pos) + " is beyond the context of " + std::to_string(shard_.context);
      if (r.pos != 0 && r.pos != len[r.seq])
        return "sequence " + std::to_string(r.seq) + ": position " + std::to_string(r.pos) + " does not follow its " +
               std::to_string(len[r.seq]) + " cached positions";
      len[r.seq] = r.pos + 1;
    }
    seq_len_ = std::move(len);
    m_.sequences.Set(active_sequences_locked());
    return "";
  }

  void run(core::StageBackend& stage, std::vector<wire::RowMeta>& out_meta) {
    const auto n = rows_meta_.size();
    stage_rows_.resize(n);
    for (size_t i = 0; i < n; ++i) stage_rows_[i] = {rows_meta_[i].seq, rows_meta_[i].pos};
    stage.run_layers(hidden_.data(), stage_rows_);
    if (!stage.has_head()) return;
    // Gather the rows that asked for logits: [k × n_embd] -> logits [k × n_vocab].
    const int64_t d = stage.config().n_embd;
    picked_.clear();
    for (size_t i = 0; i < n; ++i) {
      if (!(rows_meta_[i].flags & wire::kWantLogits)) continue;
      out_meta.push_back(rows_meta_[i]);
      picked_.insert(picked_.end(), hidden_.begin() + i * d, hidden_.begin() + (i + 1) * d);
    }
    logits_.resize(out_meta.size() * static_cast<size_t>(stage.config().n_vocab));
    if (!out_meta.empty()) stage.head(picked_.data(), static_cast<int32_t>(out_meta.size()), logits_.data());
  }

  WorkerOptions opt_;
  StageFactory factory_;
  MetricsServer& metrics_server_;
  WorkerMetrics m_;

  std::mutex mu_;  // guards everything below except the compute thread's scratch
  std::condition_variable cv_;
  bool stopping_ = false;
  std::unique_ptr<core::StageBackend> stage_;
  ShardRequest shard_;
  core::StageMemory memory_;
  std::string device_;
  uint64_t weight_resident_ = 0;
  std::shared_ptr<Pipe> pipe_;
  std::atomic<uint64_t> generation_{0};
  const uint64_t incarnation_ = std::random_device{}() | (uint64_t{std::random_device{}()} << 32);
  std::vector<int32_t> seq_len_;  // [max_sequences] cached positions per slot
  uint64_t tokens_ = 0, batches_ = 0;

  std::mutex stage_mu_;  // held by the compute thread while it uses stage_

  // Compute-thread scratch:
  std::vector<wire::RowMeta> rows_meta_;  // [n] rows of the batch in progress
  std::vector<core::StageRow> stage_rows_;  // [n]
  std::vector<float> hidden_;  // [n × n_embd]
  std::vector<float> picked_;  // [k × n_embd] rows that want logits
  std::vector<float> logits_;  // [k × n_vocab]

  std::thread compute_, heartbeat_;
};

}  // namespace

int run_worker(const WorkerOptions& opt, StageFactory factory) {
  block_shutdown_signals();
  MetricsServer metrics(opt.metrics_bind);
  Worker worker(opt, std::move(factory), metrics);
  grpc::EnableDefaultHealthCheckService(true);
  // Reflection also gives a --health-listen server a synchronous service,
  // without which gRPC would not run the default health service there.
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(opt.listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&worker);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) throw core::Error("cannot listen on '" + opt.listen + "' (address in use or invalid)");
  std::string addr = opt.listen;
  if (opt.listen.rfind("unix:", 0) != 0 && port > 0) addr = opt.listen.substr(0, opt.listen.rfind(':')) + ":" + std::to_string(port);
  std::printf("tandem-%s-worker: control on %s, metrics on %s, pid %d\n", opt.role.c_str(), addr.c_str(),
              metrics.url().c_str(), static_cast<int>(::getpid()));
  std::fflush(stdout);
  // grpc.health.v1: "liveness" answers SERVING while the process runs; ""
  // and tandem.v1.Worker follow ready(). Polled: loads and ring changes
  // happen on several threads, and probes come every few seconds at most.
  // --health-listen: the same answers on a port of their own, so that the
  // control plane can stay on loopback or a Unix socket while an
  // orchestrator probes from outside (Kubernetes: the kubelet, via the pod IP).
  std::unique_ptr<grpc::Server> health_server;
  if (!opt.health_listen.empty()) {
    grpc::ServerBuilder hb;
    int hport = 0;
    hb.AddListeningPort(opt.health_listen, grpc::InsecureServerCredentials(), &hport);
    health_server = hb.BuildAndStart();
    if (!health_server || hport == 0)
      throw core::Error("cannot listen on --health-listen '" + opt.health_listen + "' (address in use or invalid)");
    std::printf("tandem-%s-worker: health on %s:%d\n", opt.role.c_str(),
                opt.health_listen.substr(0, opt.health_listen.rfind(':')).c_str(), hport);
    std::fflush(stdout);
  }
  std::vector<grpc::HealthCheckServiceInterface*> healths = {server->GetHealthCheckService()};
  if (health_server) healths.push_back(health_server->GetHealthCheckService());
  for (auto* h : healths) h->SetServingStatus("liveness", true);
  std::atomic<bool> health_stop{false};
  std::thread health_poll([&] {
    int last = -1;
    while (!health_stop) {
      const int now = worker.ready() ? 1 : 0;
      if (now != last) {
        for (auto* h : healths) {
          h->SetServingStatus("", now == 1);  // not the bool overload: that one sets "liveness" too
          h->SetServingStatus(pb::Worker::service_full_name(), now == 1);
        }
        last = now;
      }
      std::this_thread::sleep_for(100ms);
    }
  });
  const int sig = wait_for_shutdown(worker.shutdown_requested);
  // A signal while the coordinator's pipeline runs through us: keep serving
  // it, so that its own drain can finish the streams in flight. Kubernetes
  // sends SIGTERM to all three containers of the pod at once, and a terminal's
  // Ctrl-C reaches the whole process group. The drain ends when the
  // coordinator lets go of the rings (it exited: its heartbeat stops), at a
  // second signal or a Shutdown RPC (the supervisor stopping us), or after
  // --drain-timeout.
  if (sig > 0 && opt.drain_timeout_s > 0 && worker.connected()) {
    std::fprintf(stderr, "tandem-%s-worker: draining: serving the pipeline until the coordinator lets go (at most %.0f s)\n",
                 opt.role.c_str(), opt.drain_timeout_s);
    const auto until = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(opt.drain_timeout_s * 1000));
    while (worker.connected() && Clock::now() < until)
      if (wait_for_shutdown_for(worker.shutdown_requested, 100ms) != -1) break;
  }
  health_stop = true;
  health_poll.join();
  std::fprintf(stderr, "tandem-%s-worker: shutting down (%s)\n", opt.role.c_str(), sig ? "signal" : "Shutdown RPC");
  server->Shutdown(std::chrono::system_clock::now() + 2s);
  if (health_server) health_server->Shutdown(std::chrono::system_clock::now());
  worker.stop();
  return 0;
}

int worker_main(int argc, char** argv, const std::string& role, StageFactory factory) {
  CLI::App app{"tandem-" + role + "-worker: one stage of Tandem's layer pipeline (driven by tandem-coordinator)"};
  WorkerOptions opt;
  opt.role = role;
  opt.listen = "127.0.0.1:0";
  opt.metrics_bind = "127.0.0.1:0";
  app.add_option("--listen", opt.listen, "control-plane address: unix:/path or HOST:PORT (port 0: any free port)");
  app.add_option("--metrics", opt.metrics_bind, "Prometheus endpoint HOST:PORT (port 0: any free port)");
  app.add_option("--drain-timeout", opt.drain_timeout_s, "on SIGTERM/SIGINT while a pipeline runs through this worker: "
                 "seconds it keeps serving until the coordinator lets go (a second signal ends it)");
  app.add_option("--health-listen", opt.health_listen,
                 "also serve grpc.health.v1 (and reflection, nothing else) on this HOST:PORT, for probes while --listen stays on loopback");
  app.add_option("-t,--threads", opt.threads, "compute threads when the coordinator does not say (0: all cores)");
  app.add_flag("--pin-threads", opt.pin_threads, "bind compute thread i to the i-th CPU this process may use (its cpuset)");
  app.add_flag("--mlock", opt.mlock,
               "lock the shard's weights in RAM (needs `ulimit -l` or CAP_IPC_LOCK; a refusal is logged and "
               "tandem_worker_memory_bytes{kind=\"locked\"} stays 0)");
  app.add_flag("--huge-pages", opt.huge_pages,
               "transparent huge pages (madvise) for the repacked weights; see tandem_worker_memory_bytes{kind=\"huge_pages\"}");
  std::string memory_limit;
  app.add_option("--memory-limit", memory_limit,
                 "refuse (RESOURCE_EXHAUSTED) a shard whose weights + KV + scratch exceed this, e.g. 20GiB: share a card, "
                 "or cap RAM; the coordinator's --gpu-layers auto then puts a layer fewer here");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (!memory_limit.empty()) opt.memory_limit = core::plan::parse_bytes(memory_limit);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tandem-%s-worker: error: --memory-limit: %s\n", role.c_str(), e.what());
    return 1;
  }
  if (opt.threads <= 0) opt.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  try {
    return run_worker(opt, std::move(factory));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tandem-%s-worker: error: %s\n", role.c_str(), e.what());
    return 1;
  }
}

}  // namespace tandem::services
