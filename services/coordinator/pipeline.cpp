#include "services/coordinator/pipeline.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>

#include "core/error.h"

namespace tandem::services {

namespace pb = tandem::v1;
namespace shm = core::shm;
namespace wire = core::wire;
using namespace std::chrono_literals;

struct Pipeline::Rings {
  shm::Ring to_first;   // coordinator -> stage 0: embedded rows
  shm::Ring between;    // stage 0 -> stage 1: hidden rows
  shm::Ring to_coord;   // stage 1 -> coordinator: logits
  uint64_t generation = 0;
  std::string down_reason;
};

namespace {

std::chrono::system_clock::time_point in(std::chrono::milliseconds d) { return std::chrono::system_clock::now() + d; }

std::string rpc_error(const std::string& what, const grpc::Status& s) {
  return what + ": " + s.error_message() + " (gRPC code " + std::to_string(static_cast<int>(s.error_code())) + ")";
}

}  // namespace

Pipeline::Pipeline(PipelineConfig cfg, std::vector<StagePlan> stages) : cfg_(std::move(cfg)), plans_(std::move(stages)) {
  if (plans_.size() != 2 || plans_[0].head || !plans_[1].head)
    throw core::Error("a pipeline has two stages and the second owns the head");
  status_.resize(plans_.size());
  stubs_.resize(plans_.size());
  addresses_.resize(plans_.size());
  for (size_t i = 0; i < plans_.size(); ++i) status_[i].plan = plans_[i];
  heartbeat_ = std::thread([this] {
    while (!heartbeat_stop_.load()) {
      std::shared_ptr<Rings> r;
      {
        std::lock_guard lk(mu_);
        r = rings_;
      }
      if (r) {
        r->to_first.beat(shm::Side::Producer);
        r->to_coord.beat(shm::Side::Consumer);
      }
      std::this_thread::sleep_for(50ms);
    }
  });
}

Pipeline::~Pipeline() {
  heartbeat_stop_ = true;
  if (heartbeat_.joinable()) heartbeat_.join();
}

void Pipeline::bring_up(const std::vector<std::string>& addresses) {
  if (addresses.size() != plans_.size()) throw core::Error("bring_up: one address per stage");
  std::unique_lock lk(mu_);
  for (size_t i = 0; i < plans_.size(); ++i) {
    const StagePlan& p = plans_[i];
    status_[i].plan = p;
    if (!stubs_[i] || addresses_[i] != addresses[i]) {
      stubs_[i] = pb::Worker::NewStub(grpc::CreateChannel(addresses[i], grpc::InsecureChannelCredentials()));
      addresses_[i] = addresses[i];
      status_[i].address = addresses[i];
    }
    pb::WorkerHealth h;
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(in(10s));
      ctx.set_wait_for_ready(true);
      auto s = stubs_[i]->Health(&ctx, pb::WorkerHealthRequest(), &h);
      if (!s.ok()) throw core::Error(rpc_error(p.role + " worker at " + addresses[i] + " does not answer", s));
    }
    status_[i].metrics_url = h.metrics_url();
    const bool same_process = h.pid() == status_[i].pid && h.incarnation() == status_[i].incarnation;
    if (status_[i].incarnation != 0 && h.incarnation() != status_[i].incarnation && on_restart_) on_restart_(p.role);
    status_[i].incarnation = h.incarnation();
    // A worker that kept its process also kept its shard: reloading a 40 GB
    // shard because the *other* worker restarted would be waste.
    if (h.loaded() && status_[i].up && same_process) continue;
    pb::LoadShardRequest req;
    const std::string& model = p.model_path.empty() ? cfg_.model_path : p.model_path;
    req.set_model_path(model);
    req.set_planned_weight_bytes(p.planned_weight_bytes);
    req.set_planned_kv_bytes(p.planned_kv_bytes);
    req.set_planned_scratch_bytes(p.planned_scratch_bytes);
    req.set_layer_begin(p.layer_begin);
    req.set_layer_end(p.layer_end);
    req.set_embedding(false);
    req.set_head(p.head);
    req.set_kv_type_k(cfg_.kv_type_k);
    req.set_kv_type_v(cfg_.kv_type_v);
    req.set_context(cfg_.context);
    req.set_max_sequences(cfg_.max_sequences);
    req.set_threads(p.threads);
    req.set_max_batch_tokens(cfg_.max_batch_tokens);
    pb::LoadShardResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(in(30min));
    auto s = stubs_[i]->LoadShard(&ctx, req, &resp);
    if (!s.ok() && s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED && p.role == "gpu" && cfg_.back_off &&
        cfg_.back_off(plans_, s.error_message())) {
      // One layer fewer on the GPU: both stages' ranges changed, so load both again.
      for (StageStatus& st : status_) st.pid = 0;
      i = static_cast<size_t>(-1);
      continue;
    }
    if (!s.ok()) throw core::Error(rpc_error(p.role + " worker could not load layers [" + std::to_string(p.layer_begin) + ", " +
                                                 std::to_string(p.layer_end) + ")",
                                             s));
    if (resp.n_embd() != cfg_.n_embd || resp.n_vocab() != cfg_.n_vocab)
      throw core::Error(p.role + " worker loaded a model with n_embd " + std::to_string(resp.n_embd()) + ", n_vocab " +
                        std::to_string(resp.n_vocab()) + " (the coordinator's has " + std::to_string(cfg_.n_embd) + ", " +
                        std::to_string(cfg_.n_vocab) + ")");
    status_[i].pid = h.pid();
    status_[i].model_path = model;
    status_[i].device = resp.device();
    status_[i].weight_bytes = resp.weight_bytes();
    status_[i].kv_bytes = resp.kv_bytes();
  }

  // Fresh rings for this incarnation. Slots: 2 per ring, so a stage can fill
  // one while its consumer still reads the other.
  const size_t hidden_cap = std::max(wire::message_bytes(cfg_.max_batch_tokens, cfg_.n_embd, wire::DType::F32),
                                     sizeof(wire::BatchHeader) + wire::kMaxErrorText);
  const size_t logits_cap = std::max(wire::message_bytes(cfg_.max_sequences, cfg_.n_vocab, wire::DType::F32),
                                     sizeof(wire::BatchHeader) + wire::kMaxErrorText);
  // One at a time, so that when a later one cannot be made (a full
  // /dev/shm) the names made before it are removed again, not left behind.
  std::vector<shm::Ring> made;
  try {
    made.push_back(shm::Ring::create(shm::unique_name("in"), 2, hidden_cap));
    made.push_back(shm::Ring::create(shm::unique_name("mid"), 2, hidden_cap));
    made.push_back(shm::Ring::create(shm::unique_name("out"), 2, logits_cap));
  } catch (...) {
    for (auto& ring : made) ring.unlink();
    throw;
  }
  auto r = std::make_shared<Rings>(Rings{std::move(made[0]), std::move(made[1]), std::move(made[2]), ++generation_, ""});
  const std::string names[3] = {r->to_first.name(), r->between.name(), r->to_coord.name()};
  auto unlink_all = [&] {
    r->to_first.unlink();
    r->between.unlink();
    r->to_coord.unlink();
  };
  for (size_t i = 0; i < plans_.size(); ++i) {
    pb::ConnectRingsRequest req;
    req.set_input_ring(names[i]);
    req.set_output_ring(names[i + 1]);
    req.set_generation(r->generation);
    pb::ConnectRingsResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(in(10s));
    auto s = stubs_[i]->ConnectRings(&ctx, req, &resp);
    if (!s.ok()) {
      unlink_all();
      throw core::Error(rpc_error(plans_[i].role + " worker could not attach the rings", s));
    }
  }
  unlink_all();  // both ends have mapped them; no name is left to leak
  r->to_first.beat(shm::Side::Producer);
  r->to_coord.beat(shm::Side::Consumer);
  rings_ = r;
  {
    std::lock_guard rl(reason_mu_);
    down_reason_.clear();
  }
  for (auto& st : status_) st.up = true;
  up_ = true;
  lk.unlock();
  if (on_state_) on_state_(true, "");
}

void Pipeline::mark_down(const std::string& why) {
  {
    std::lock_guard lk(mu_);
    if (!up_.exchange(false)) return;
    if (rings_) rings_->down_reason = why;
  }
  {
    std::lock_guard rl(reason_mu_);
    down_reason_ = why;
  }
  if (on_state_) on_state_(false, why);
}

std::string Pipeline::down_reason() {
  std::lock_guard rl(reason_mu_);
  return up_ ? std::string() : down_reason_;
}

void Pipeline::note_bring_up_failure(const std::string& why) {
  std::lock_guard rl(reason_mu_);
  down_reason_ = why;
}

bool Pipeline::probe(std::string& why) {
  std::lock_guard lk(mu_);
  for (size_t i = 0; i < plans_.size(); ++i) {
    if (!stubs_[i]) continue;
    pb::WorkerHealth h;
    grpc::ClientContext ctx;
    ctx.set_deadline(in(1s));
    auto s = stubs_[i]->Health(&ctx, pb::WorkerHealthRequest(), &h);
    if (!s.ok()) {
      why = rpc_error(plans_[i].role + " worker does not answer", s);
      status_[i].up = false;
      return false;
    }
    if (up_ && (!h.loaded() || !h.connected() || h.pid() != status_[i].pid || h.incarnation() != status_[i].incarnation)) {
      why = plans_[i].role + " worker restarted or lost its shard (pid " + std::to_string(h.pid()) + ")";
      status_[i].up = false;
      return false;
    }
  }
  return true;
}

void Pipeline::step(uint64_t batch_id, std::span<const wire::RowMeta> meta, const float* hidden,
                    std::vector<wire::RowMeta>& out_meta, std::vector<float>& logits) {
  std::shared_ptr<Rings> r;
  {
    std::lock_guard lk(mu_);
    r = rings_;
    if (!up_ || !r) throw StepError("the pipeline is down" + (r && !r->down_reason.empty() ? ": " + r->down_reason : std::string()), true);
  }
  const auto pt = cfg_.peer_timeout;
  std::string dead;
  shm::WaitOptions w;
  w.timeout = cfg_.step_timeout;
  w.peer_timeout = pt;
  // Whichever ring we wait on, watch every stage's heartbeat: stage 1 waiting
  // forever on a dead stage 0 must not hide stage 0's death from us.
  w.keep_waiting = [&] {
    if (!up_) return false;
    if (!r->to_first.peer_alive(shm::Side::Consumer, pt)) dead = plans_[0].role + " worker stopped beating";
    else if (!r->between.peer_alive(shm::Side::Producer, pt)) dead = plans_[0].role + " worker stopped beating";
    else if (!r->between.peer_alive(shm::Side::Consumer, pt)) dead = plans_[1].role + " worker stopped beating";
    else if (!r->to_coord.peer_alive(shm::Side::Producer, pt)) dead = plans_[1].role + " worker stopped beating";
    return dead.empty();
  };
  auto fail = [&](const std::string& why) -> StepError {
    mark_down(why);
    std::lock_guard lk(mu_);
    return StepError("the pipeline went down: " + (r->down_reason.empty() ? why : r->down_reason), true);
  };
  try {
    std::span<uint8_t> slot = r->to_first.acquire(w);
    r->to_first.publish(wire::write_rows(slot, wire::Kind::Hidden, r->generation, batch_id, meta, hidden,
                                         static_cast<uint32_t>(cfg_.n_embd), cfg_.wire));
    std::span<const uint8_t> msg = r->to_coord.peek(w);
    wire::BatchView v = wire::parse(msg);
    if (v.kind() == wire::Kind::Error) {
      std::string text(v.text);
      r->to_coord.release();
      throw StepError(text, false);
    }
    if (v.kind() != wire::Kind::Logits || v.header.row_width != static_cast<uint32_t>(cfg_.n_vocab) ||
        v.header.batch_id != batch_id) {
      r->to_coord.release();
      throw fail("the last stage answered batch " + std::to_string(batch_id) + " with an unexpected message");
    }
    out_meta.assign(v.rows.begin(), v.rows.end());
    logits.resize(size_t{v.header.n_rows} * v.header.row_width);
    wire::read_rows(v, logits.data());
    r->to_coord.release();
  } catch (const shm::RingAborted&) {
    throw fail(dead.empty() ? "aborted" : dead);
  } catch (const shm::PeerDead& e) {
    throw fail(e.what());
  } catch (const shm::RingTimeout& e) {
    throw fail(std::string("step timed out: ") + e.what());
  } catch (const core::Error& e) {
    throw fail(e.what());
  }
}

void Pipeline::release_sequence(int32_t seq) {
  std::lock_guard lk(mu_);
  for (auto& stub : stubs_) {
    if (!stub) continue;
    pb::ReleaseSequenceRequest req;
    req.set_sequence(seq);
    pb::ReleaseSequenceResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(in(500ms));
    (void)stub->ReleaseSequence(&ctx, req, &resp);  // stats only: a missed release is harmless
  }
}

std::vector<StageStatus> Pipeline::status() {
  std::lock_guard lk(mu_);
  for (size_t i = 0; i < plans_.size(); ++i) {
    if (!stubs_[i]) continue;
    pb::WorkerStats st;
    grpc::ClientContext ctx;
    ctx.set_deadline(in(1s));
    if (stubs_[i]->Stats(&ctx, pb::WorkerStatsRequest(), &st).ok()) {
      status_[i].weight_bytes = st.weight_resident_bytes();
      status_[i].kv_bytes = st.kv_bytes();
      status_[i].device = st.device();
      status_[i].memory = st.memory();
    } else {
      status_[i].up = false;
    }
    if (!up_) status_[i].up = false;
  }
  return status_;
}

void Pipeline::shutdown_workers() {
  std::lock_guard lk(mu_);
  for (auto& stub : stubs_) {
    if (!stub) continue;
    grpc::ClientContext ctx;
    ctx.set_deadline(in(1s));
    pb::ShutdownResponse resp;
    (void)stub->Shutdown(&ctx, pb::ShutdownRequest(), &resp);
  }
}

}  // namespace tandem::services
