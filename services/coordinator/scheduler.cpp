#include "services/coordinator/scheduler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "core/error.h"

namespace tandem::services {

namespace pb = tandem::v1;
namespace wire = core::wire;
using namespace std::chrono_literals;

namespace {
double secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
}  // namespace

bool Request::wait_events(std::deque<Event>& out, std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  if (!cv_.wait_for(lk, timeout, [&] { return !events_.empty(); })) return false;
  while (!events_.empty()) {
    out.push_back(std::move(events_.front()));
    events_.pop_front();
  }
  return true;
}

void Request::push(Event e) {
  {
    std::lock_guard lk(mu_);
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

Scheduler::Scheduler(SchedulerConfig cfg, Pipeline& pipeline, const core::Tokenizer& tok, cpu::LlamaEngine& embedder,
                     CoordinatorMetrics& metrics)
    : cfg_(cfg),
      pipeline_(pipeline),
      tok_(tok),
      embedder_(embedder),
      m_(metrics),
      n_vocab_(embedder.config().n_vocab),
      n_embd_(embedder.config().n_embd) {
  // Slots handed out lowest first (a stack popped from the back).
  for (int32_t s = cfg_.max_sequences - 1; s >= 0; --s) free_slots_.push_back(s);
  m_.kv_slots_total.Set(cfg_.max_sequences);
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() { stop(); }

void Scheduler::stop() {
  {
    std::lock_guard lk(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

grpc::Status Scheduler::submit(const std::shared_ptr<Request>& r) {
  {
    std::lock_guard lk(mu_);
    if (stopping_) return {grpc::StatusCode::UNAVAILABLE, "the server is shutting down"};
    if (!pipeline_.up()) {
      const std::string why = pipeline_.down_reason();
      return {grpc::StatusCode::UNAVAILABLE,
              "the pipeline is down (" + (why.empty() ? std::string("the workers are starting") : why) + "); retry shortly"};
    }
    if (static_cast<int32_t>(waiting_.size()) >= cfg_.max_queue)
      return {grpc::StatusCode::RESOURCE_EXHAUSTED,
              "queue full: " + std::to_string(waiting_.size()) + " requests already wait (--max-queue " +
                  std::to_string(cfg_.max_queue) + ")"};
    waiting_.push_back(r);
    m_.waiting.Set(static_cast<double>(waiting_.size()));
  }
  cv_.notify_all();
  return grpc::Status::OK;
}

void Scheduler::admit() {
  std::lock_guard lk(mu_);
  const auto now = Clock::now();
  // Queued requests whose client left or whose deadline passed never start.
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    Request& r = **it;
    if (r.cancelled || (r.deadline && now > *r.deadline)) {
      const bool cancelled = !(r.deadline && now > *r.deadline);
      r.push({{}, true,
              cancelled ? grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client")
                        : grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "deadline passed while queued")});
      m_.request_done(cancelled ? "cancelled" : "deadline_exceeded");
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  while (!waiting_.empty() && !free_slots_.empty()) {
    std::shared_ptr<Request> r = std::move(waiting_.front());
    waiting_.pop_front();
    r->slot = free_slots_.back();
    free_slots_.pop_back();
    r->sampler = std::make_unique<core::Sampler>(r->settings.sampling, n_vocab_);
    for (int32_t id : r->prompt) r->sampler->accept(id);
    r->detok = std::make_unique<core::StreamDecoder>(tok_);
    r->stops = std::make_unique<core::StopMatcher>(r->settings.stop);
    r->t_scheduled = now;
    m_.queue_time.Observe(secs(now - r->t_accept));
    m_.prompt_tokens.Increment(static_cast<double>(r->prompt.size()));
    running_.push_back(std::move(r));
  }
  m_.waiting.Set(static_cast<double>(waiting_.size()));
  m_.running.Set(static_cast<double>(running_.size()));
  m_.kv_slots_used.Set(static_cast<double>(cfg_.max_sequences - free_slots_.size()));
}

void Scheduler::release_slot(Request& r) {
  if (r.slot < 0) return;
  pipeline_.release_sequence(r.slot);
  free_slots_.push_back(r.slot);
  r.slot = -1;
  m_.kv_slots_used.Set(static_cast<double>(cfg_.max_sequences - free_slots_.size()));
}

void Scheduler::finish(Request& r, grpc::Status status, pb::FinishReason reason, const char* outcome) {
  const auto now = Clock::now();
  Request::Event e;
  e.last = true;
  e.status = status;
  if (status.ok()) {
    if (!r.stops->stopped()) e.message.set_text(r.stops->push(r.detok->flush()).text + r.stops->flush());
    pb::FinalInfo* f = e.message.mutable_final();
    f->set_finish_reason(reason);
    f->set_prompt_tokens(static_cast<int32_t>(r.prompt.size()));
    f->set_generated_tokens(r.generated);
    f->set_seed(r.sampler->seed());
    pb::Timings* t = f->mutable_timings();
    const auto prefill_done = r.t_prefill_done == Clock::time_point{} ? now : r.t_prefill_done;
    t->set_queue_seconds(secs(r.t_scheduled - r.t_accept));
    t->set_time_to_first_token_seconds(r.generated > 0 || r.t_first_token != Clock::time_point{}
                                           ? secs(r.t_first_token - r.t_accept)
                                           : 0.0);
    t->set_prefill_seconds(secs(prefill_done - r.t_scheduled));
    t->set_decode_seconds(secs(now - prefill_done));
    t->set_prefill_tokens_per_second(t->prefill_seconds() > 0 ? r.prompt.size() / t->prefill_seconds() : 0.0);
    t->set_decode_tokens_per_second(t->decode_seconds() > 0 && r.generated > 0 ? r.generated / t->decode_seconds() : 0.0);
    t->set_total_seconds(secs(now - r.t_accept));
  }
  r.push(std::move(e));
  m_.request_done(outcome);
  m_.e2e.Observe(secs(now - r.t_accept));
  release_slot(r);
  running_.erase(std::remove_if(running_.begin(), running_.end(), [&](const auto& p) { return p.get() == &r; }),
                 running_.end());
  m_.running.Set(static_cast<double>(running_.size()));
}

void Scheduler::fail_all(const grpc::Status& status, const char* outcome, bool include_waiting) {
  while (!running_.empty()) finish(*running_.front(), status, pb::FINISH_REASON_UNSPECIFIED, outcome);
  if (!include_waiting) return;
  std::lock_guard lk(mu_);
  for (auto& r : waiting_) {
    r->push({{}, true, status});
    m_.request_done(outcome);
  }
  waiting_.clear();
  m_.waiting.Set(0);
}

void Scheduler::emit(Request& r, const std::string& text, int32_t token, const float* logits) {
  Request::Event e;
  e.message.set_text(text);
  pb::GeneratedToken* gt = e.message.add_tokens();
  gt->set_token_id(token);
  if (r.settings.logprobs > 0) {
    pb::TokenLogprob* c = gt->mutable_chosen();
    c->set_token_id(token);
    c->set_piece(tok_.token_piece(token, true));
    c->set_logprob(r.sampler->last_logprob());
    // The n best alternatives under the model's raw distribution (log-softmax).
    const float mx = *std::max_element(logits, logits + n_vocab_);
    double sum = 0;
    for (int32_t i = 0; i < n_vocab_; ++i) sum += std::exp(static_cast<double>(logits[i] - mx));
    const double lse = mx + std::log(sum);
    std::vector<int32_t> idx(n_vocab_);
    std::iota(idx.begin(), idx.end(), 0);
    const int32_t k = std::min(r.settings.logprobs, n_vocab_);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
      return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
    });
    for (int32_t i = 0; i < k; ++i) {
      pb::TokenLogprob* t = gt->add_top();
      t->set_token_id(idx[i]);
      t->set_piece(tok_.token_piece(idx[i], true));
      t->set_logprob(static_cast<float>(logits[idx[i]] - lse));
    }
  }
  r.push(std::move(e));
}

void Scheduler::on_logits(Request& r, const float* logits) {
  const int32_t id = r.sampler->sample(std::span<const float>(logits, n_vocab_));
  r.sampler->accept(id);
  const auto now = Clock::now();
  if (r.t_first_token == Clock::time_point{}) {
    r.t_first_token = now;
    m_.ttft.Observe(secs(now - r.t_accept));
  } else {
    m_.inter_token.Observe(secs(now - r.t_last_token));
  }
  r.t_last_token = now;
  if (!r.settings.ignore_eos && tok_.is_end_of_generation(id)) {
    finish(r, grpc::Status::OK, pb::FINISH_REASON_EOS, "ok");
    return;
  }
  ++r.generated;
  m_.generated_tokens.Increment();
  auto piece = r.stops->push(r.detok->push(id));
  emit(r, piece.text, id, logits);
  if (piece.stopped) finish(r, grpc::Status::OK, pb::FINISH_REASON_STOP, "ok");
  else if (r.settings.max_tokens >= 0 && r.generated >= r.settings.max_tokens)
    finish(r, grpc::Status::OK, pb::FINISH_REASON_LENGTH, "ok");
  else if (r.fed >= cfg_.context) finish(r, grpc::Status::OK, pb::FINISH_REASON_CONTEXT, "ok");
  else r.next_token = id;
}

void Scheduler::loop() {
  struct Part {
    std::shared_ptr<Request> r;
    int32_t rows;
  };
  std::vector<Part> parts;
  while (true) {
    {
      std::unique_lock lk(mu_);
      cv_.wait_for(lk, 100ms, [&] { return stopping_ || !waiting_.empty() || !running_.empty(); });
      if (stopping_) break;
    }
    admit();
    const auto now = Clock::now();
    for (size_t i = 0; i < running_.size();) {
      Request& r = *running_[i];
      // Deadline first: gRPC also cancels a call whose deadline passed.
      if (r.deadline && now > *r.deadline)
        finish(r, {grpc::StatusCode::DEADLINE_EXCEEDED, "deadline exceeded after " + std::to_string(r.generated) + " tokens"},
               pb::FINISH_REASON_UNSPECIFIED, "deadline_exceeded");
      else if (r.cancelled) finish(r, {grpc::StatusCode::CANCELLED, "cancelled by the client"}, pb::FINISH_REASON_UNSPECIFIED, "cancelled");
      else ++i;
    }
    if (running_.empty()) continue;

    // Decode rows first (one per request past its prompt), then prompt rows.
    meta_.clear();
    tokens_.clear();
    parts.clear();
    int32_t budget = cfg_.max_batch_tokens;
    for (auto& rp : running_) {
      Request& r = *rp;
      if (r.fed < static_cast<int32_t>(r.prompt.size()) || budget == 0) continue;
      meta_.push_back({r.slot, r.fed, wire::kWantLogits, r.next_token});
      tokens_.push_back(r.next_token);
      parts.push_back({rp, 1});
      --budget;
    }
    // Prompts go in whole chunks of prompt_chunk tokens (the last one
    // shorter), never cut to what the decode rows left of the budget: a
    // prompt's chunks, and so the float steps its matmul rows take
    // (cpu_worker/matmul.h), never depend on the load. The first prompt in
    // line always fits: at most max_sequences - 1 rows decode beside it.
    const int32_t prompt_chunk = std::max<int32_t>(1, cfg_.max_batch_tokens - (cfg_.max_sequences - 1));
    for (auto& rp : running_) {
      Request& r = *rp;
      const int32_t left = static_cast<int32_t>(r.prompt.size()) - r.fed;
      if (left <= 0) continue;
      const int32_t k = std::min(left, prompt_chunk);
      if (k > budget) continue;
      for (int32_t j = 0; j < k; ++j) {
        const bool last = r.fed + j + 1 == static_cast<int32_t>(r.prompt.size());
        meta_.push_back({r.slot, r.fed + j, last ? wire::kWantLogits : 0u, r.prompt[r.fed + j]});
        tokens_.push_back(r.prompt[r.fed + j]);
      }
      parts.push_back({rp, k});
      budget -= k;
    }
    if (meta_.empty()) continue;

    hidden_.resize(tokens_.size() * static_cast<size_t>(n_embd_));
    const auto t0 = Clock::now();
    try {
      embedder_.embed(tokens_, hidden_.data());  // throws only on a token outside the vocabulary
      pipeline_.step(++batch_id_, meta_, hidden_.data(), out_meta_, logits_);
    } catch (const core::Error& e) {
      std::fprintf(stderr, "tandem-coordinator: batch %llu refused: %s\n", static_cast<unsigned long long>(batch_id_), e.what());
      for (auto& p : parts)
        if (p.r->slot >= 0) finish(*p.r, {grpc::StatusCode::INTERNAL, e.what()}, pb::FINISH_REASON_UNSPECIFIED, "internal");
      continue;
    } catch (const StepError& e) {
      std::fprintf(stderr, "tandem-coordinator: step %llu failed: %s\n", static_cast<unsigned long long>(batch_id_), e.what());
      if (e.pipeline_down) {
        fail_all({grpc::StatusCode::UNAVAILABLE, std::string("a worker failed: ") + e.what()}, "unavailable", true);
      } else {
        for (auto& p : parts)
          if (p.r->slot >= 0) finish(*p.r, {grpc::StatusCode::INTERNAL, e.what()}, pb::FINISH_REASON_UNSPECIFIED, "internal");
      }
      continue;
    }
    m_.step.Observe(secs(Clock::now() - t0));
    m_.batch_rows.Observe(static_cast<double>(meta_.size()));
    for (auto& p : parts) {
      p.r->fed += p.rows;
      if (p.r->fed == static_cast<int32_t>(p.r->prompt.size()) && p.r->t_prefill_done == Clock::time_point{})
        p.r->t_prefill_done = Clock::now();
    }
    // Logits rows come back in input order, one per row that asked.
    for (size_t i = 0; i < out_meta_.size(); ++i) {
      for (auto& p : parts) {
        if (p.r->slot != out_meta_[i].seq) continue;
        on_logits(*p.r, logits_.data() + i * static_cast<size_t>(n_vocab_));
        break;
      }
    }
  }
  fail_all({grpc::StatusCode::UNAVAILABLE, "the server is shutting down"}, "unavailable", true);
}

}  // namespace tandem::services
