// `tandem client bench`: a load generator for a running coordinator. N
// client threads each stream Generate requests back to back for T seconds,
// with prompts and output lengths drawn from a mix and an optional share of
// requests cancelled part-way. Reports throughput and TTFT / inter-token /
// end-to-end latency percentiles as the client saw them, and outcomes by
// status. --verify first runs every prompt alone (greedy) and then checks
// that each stream under load produced exactly those tokens (a prefix of
// them when cancelled): no token lost, duplicated or changed.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "core/error.h"
#include "tandem/v1/inference.grpc.pb.h"
#include "tools/cli_common.h"
#include "tools/client_connection.h"

namespace tandem::cli {

namespace {

namespace pb = tandem::v1;
using Clock = std::chrono::steady_clock;

struct ClientBenchOptions {
  ConnectionOptions conn;
  int concurrency = 8;
  double duration_s = 30;
  std::string prompts_file;      // one prompt per line; default: a built-in mix of lengths
  int min_tokens = 16, max_tokens = 128;
  double cancel_rate = 0;        // share of requests cancelled after a random number of tokens
  uint64_t seed = 1;
  bool verify = false;
  bool json = false;
};

// Short questions to a long passage: prefill from a few to ~250 tokens.
const std::vector<std::string> kBuiltinPrompts = {
    "What is the capital of France?",
    "Name three rivers in Africa.",
    "Write a haiku about the sea.",
    "Explain in two sentences why the sky is blue.",
    "List the planets of the solar system in order from the sun, and give one fact about each of them.",
    "Summarise the following text in one sentence. The water cycle describes how water evaporates from the surface "
    "of the earth, rises into the atmosphere, cools and condenses into clouds, and falls again to the surface as "
    "precipitation. The water falling on land collects in rivers and lakes, soil, and porous layers of rock, and "
    "much of it flows back into the oceans, where it will once more evaporate.",
    "You are a helpful assistant. A user asks: I have a small garden with clay soil that stays wet in spring and "
    "dries out and cracks in summer. I would like to grow vegetables, mostly tomatoes, beans and lettuce, and "
    "perhaps some herbs. I can spend a weekend preparing the beds and a few hours every week afterwards. What "
    "should I do to improve the soil, which plants should go where, and how should I water them through the year? "
    "Please answer step by step, with the most important things first, and say what I should avoid doing.",
    "Continue the story: The lighthouse keeper had not seen a ship in forty days when, one grey morning, a small "
    "boat with a torn red sail drifted into the bay. There was no one at the oars, but on the bench lay a "
    "leather satchel, tied shut with a fishing line, and a dog that watched him without barking.",
};

double pct(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size())));
  return v[i];
}

struct Sample {
  double ttft = -1, e2e = 0;
  std::vector<double> gaps;      // seconds between token-carrying messages, per token
  std::vector<int32_t> ids;
  grpc::StatusCode code = grpc::StatusCode::OK;
  bool cancelled_by_us = false;
};

// One streamed request; cancel_after >= 0 cancels once that many tokens came.
Sample one_request(pb::Inference::Stub& stub, const ConnectionOptions& conn, const std::string& prompt, int max_tokens,
                   int cancel_after) {
  pb::GenerateRequest req;
  req.set_prompt(prompt);
  req.mutable_options()->set_max_tokens(max_tokens);
  req.mutable_options()->set_ignore_eos(true);  // lengths as asked, so runs compare
  req.mutable_options()->mutable_sampling()->set_temperature(0);
  grpc::ClientContext ctx;
  prepare_call(ctx, conn, 600);
  Sample s;
  const auto t0 = Clock::now();
  auto last = t0;
  auto reader = stub.Generate(&ctx, req);
  pb::GenerateResponse msg;
  while (reader->Read(&msg)) {
    if (msg.tokens_size() == 0) continue;
    const auto now = Clock::now();
    if (s.ttft < 0) {
      s.ttft = std::chrono::duration<double>(now - t0).count();
    } else {
      const double gap = std::chrono::duration<double>(now - last).count() / msg.tokens_size();
      for (int i = 0; i < msg.tokens_size(); ++i) s.gaps.push_back(gap);
    }
    last = now;
    for (const auto& t : msg.tokens()) s.ids.push_back(t.token_id());
    if (cancel_after >= 0 && static_cast<int>(s.ids.size()) >= cancel_after && !s.cancelled_by_us) {
      s.cancelled_by_us = true;
      ctx.TryCancel();
    }
  }
  s.code = reader->Finish().error_code();
  s.e2e = std::chrono::duration<double>(Clock::now() - t0).count();
  return s;
}

int run_client_bench(const ClientBenchOptions& o) {
  if (o.concurrency < 1) throw core::Error("--concurrency must be at least 1");
  if (o.min_tokens < 1 || o.max_tokens < o.min_tokens) throw core::Error("need 1 <= --min-tokens <= --max-tokens");
  if (o.cancel_rate < 0 || o.cancel_rate > 1) throw core::Error("--cancel-rate must be in 0..1");
  std::vector<std::string> prompts = kBuiltinPrompts;
  if (!o.prompts_file.empty()) {
    std::ifstream in(o.prompts_file);
    if (!in) throw core::Error("--prompts " + o.prompts_file + ": cannot read it");
    prompts.clear();
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) prompts.push_back(line);
    if (prompts.empty()) throw core::Error("--prompts " + o.prompts_file + ": no prompt in it");
  }
  // Each prompt has one output length, so that --verify can compare runs.
  std::vector<int> lengths(prompts.size());
  std::mt19937_64 rng(o.seed);
  for (int& n : lengths) n = std::uniform_int_distribution<int>(o.min_tokens, o.max_tokens)(rng);

  std::vector<std::vector<int32_t>> reference(prompts.size());
  if (o.verify) {
    auto stub = pb::Inference::NewStub(make_channel(o.conn));
    for (size_t i = 0; i < prompts.size(); ++i) {
      Sample s = one_request(*stub, o.conn, prompts[i], lengths[i], -1);
      if (s.code != grpc::StatusCode::OK)
        throw core::Error("--verify: the reference run of prompt " + std::to_string(i) + " failed with gRPC code " +
                          std::to_string(static_cast<int>(s.code)));
      reference[i] = std::move(s.ids);
    }
  }

  std::mutex mu;
  std::vector<double> ttft, gaps, e2e;
  std::map<std::string, int> outcomes;
  long long tokens = 0, mismatches = 0, checked = 0;
  std::string first_mismatch;
  const auto t_start = Clock::now();
  const auto t_end = t_start + std::chrono::milliseconds(static_cast<int64_t>(o.duration_s * 1000));
  std::vector<std::thread> clients;
  for (int c = 0; c < o.concurrency; ++c) {
    clients.emplace_back([&, c] {
      auto stub = pb::Inference::NewStub(make_channel(o.conn, /*own_connection=*/true));
      std::mt19937_64 r(o.seed * 7919 + static_cast<uint64_t>(c));
      while (Clock::now() < t_end) {
        const size_t p = std::uniform_int_distribution<size_t>(0, prompts.size() - 1)(r);
        const bool cancel = std::uniform_real_distribution<double>(0, 1)(r) < o.cancel_rate;
        const int cancel_after = cancel ? std::uniform_int_distribution<int>(1, lengths[p])(r) : -1;
        Sample s = one_request(*stub, o.conn, prompts[p], lengths[p], cancel_after);
        std::lock_guard lk(mu);
        const bool ok = s.code == grpc::StatusCode::OK;
        const std::string outcome = s.cancelled_by_us ? "cancelled_by_client"
                                    : ok              ? "ok"
                                                      : "code_" + std::to_string(static_cast<int>(s.code));
        ++outcomes[outcome];
        tokens += static_cast<long long>(s.ids.size());
        if (s.ttft >= 0) ttft.push_back(s.ttft);
        gaps.insert(gaps.end(), s.gaps.begin(), s.gaps.end());
        if (ok) e2e.push_back(s.e2e);
        if (o.verify && (ok || s.cancelled_by_us)) {
          ++checked;
          const auto& want = reference[p];
          const bool good = ok ? s.ids == want
                               : s.ids.size() <= want.size() && std::equal(s.ids.begin(), s.ids.end(), want.begin());
          if (!good) {
            if (mismatches++ == 0)
              first_mismatch = "prompt " + std::to_string(p) + ": got " + std::to_string(s.ids.size()) +
                               " tokens, reference " + std::to_string(want.size());
          }
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - t_start).count();
  int requests = 0;
  for (const auto& [k, n] : outcomes) requests += n;

  nlohmann::json out = {
      {"concurrency", o.concurrency},
      {"duration_s", elapsed},
      {"requests", requests},
      {"outcomes", outcomes},
      {"generated_tokens", tokens},
      {"tokens_per_s", tokens / elapsed},
      {"requests_per_s", requests / elapsed},
      {"ttft_s", {{"p50", pct(ttft, 50)}, {"p95", pct(ttft, 95)}, {"p99", pct(ttft, 99)}}},
      {"inter_token_s", {{"p50", pct(gaps, 50)}, {"p95", pct(gaps, 95)}, {"p99", pct(gaps, 99)}}},
      {"e2e_s", {{"p50", pct(e2e, 50)}, {"p95", pct(e2e, 95)}, {"p99", pct(e2e, 99)}}},
  };
  if (o.verify) out["verify"] = {{"checked", checked}, {"mismatches", mismatches}, {"first_mismatch", first_mismatch}};
  if (o.json) {
    print_json(out);
  } else {
    std::printf("%d clients, %.1f s: %d requests (%.2f/s), %lld tokens (%.1f tok/s)\n", o.concurrency, elapsed, requests,
                requests / elapsed, tokens, tokens / elapsed);
    for (const auto& [k, n] : outcomes) std::printf("  %-22s %d\n", k.c_str(), n);
    std::printf("  %-22s p50 %7.1f ms  p95 %7.1f ms  p99 %7.1f ms\n", "time to first token", out["ttft_s"]["p50"].get<double>() * 1e3,
                out["ttft_s"]["p95"].get<double>() * 1e3, out["ttft_s"]["p99"].get<double>() * 1e3);
    std::printf("  %-22s p50 %7.1f ms  p95 %7.1f ms  p99 %7.1f ms\n", "inter-token latency",
                out["inter_token_s"]["p50"].get<double>() * 1e3, out["inter_token_s"]["p95"].get<double>() * 1e3,
                out["inter_token_s"]["p99"].get<double>() * 1e3);
    std::printf("  %-22s p50 %7.1f ms  p95 %7.1f ms  p99 %7.1f ms\n", "end to end (ok)", out["e2e_s"]["p50"].get<double>() * 1e3,
                out["e2e_s"]["p95"].get<double>() * 1e3, out["e2e_s"]["p99"].get<double>() * 1e3);
    if (o.verify)
      std::printf("  verify: %lld streams checked against single-request greedy outputs, %lld mismatches%s%s\n", checked,
                  mismatches, mismatches ? ": first " : "", first_mismatch.c_str());
  }
  // Non-zero when a request failed for a reason other than our own cancel, or a stream was wrong.
  const bool failures = std::any_of(outcomes.begin(), outcomes.end(), [](const auto& kv) {
    return kv.first != "ok" && kv.first != "cancelled_by_client";
  });
  return (failures || mismatches > 0) ? 1 : 0;
}

}  // namespace

void register_client_bench(CLI::App& client, Action& action) {
  auto o = std::make_shared<ClientBenchOptions>();
  auto* b = client.add_subcommand("bench", "load: N concurrent streaming clients for T seconds; throughput and latency percentiles");
  add_connection_options(*b, o->conn);
  b->add_option("-c,--concurrency", o->concurrency, "concurrent streaming clients (one connection each)");
  b->add_option("-d,--duration", o->duration_s, "seconds to keep sending requests (streams in flight then finish)");
  b->add_option("--prompts", o->prompts_file, "file with one prompt per line (default: a built-in mix, 7 to ~250 tokens)");
  b->add_option("--min-tokens", o->min_tokens, "shortest output (each prompt gets one length in [min, max])");
  b->add_option("--max-tokens", o->max_tokens, "longest output");
  b->add_option("--cancel-rate", o->cancel_rate, "share of requests the client cancels after a random number of tokens");
  b->add_option("--seed", o->seed, "seed of the prompt, length and cancel draws");
  b->add_flag("--verify", o->verify, "check every stream against the prompt's greedy output run alone");
  b->add_flag("--json", o->json, "one JSON document on stdout");
  b->callback([o, &action] { action = [o] { return run_client_bench(*o); }; });
}

}  // namespace tandem::cli
