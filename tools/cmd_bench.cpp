// `tandem bench`: what this machine does with our kernels, measured in one
// process so the numbers compare — the memory read bandwidth (a decode
// step's ceiling: it reads every weight once), each quantized matrix-vector
// kernel's weight throughput, and a model's prefill and decode speed.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "cpu_worker/llama_engine.h"
#include "cpu_worker/throughput_probe.h"
#include "tools/cli_common.h"

namespace tandem::cli {

namespace {

using Clock = std::chrono::steady_clock;
namespace quant = core::quant;

std::vector<int> parse_threads(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    int v = 0;
    try {
      v = std::stoi(item);
    } catch (const std::exception&) {
      throw core::Error("--threads: '" + item + "' is not a number (e.g. --threads 1,2)");
    }
    if (v < 1 || v > 1024) throw core::Error("--threads: " + item + " is out of range 1..1024");
    out.push_back(v);
  }
  if (out.empty()) throw core::Error("--threads: give at least one thread count");
  return out;
}

struct BenchOptions {
  std::string threads = "1,2";
  bool json = false;
  // kernels
  std::string types = "Q4_0,Q4_1,Q5_0,Q8_0,Q2_K,Q3_K,Q4_K,Q5_K,Q6_K,F16";
  int64_t rows = 8192, cols = 8192;
  // model
  std::string model;
  int prompt = 64;
  int gen = 32;
  int ctx = 1024;
  std::string kv = "f16";
  bool mlock = false, huge_pages = false, pin_threads = false;
};

int run_bandwidth(const BenchOptions& o) {
  nlohmann::json rows = nlohmann::json::array();
  for (int t : parse_threads(o.threads)) {
    const double g = cpu::read_probe_gbps(t);
    rows.push_back({{"threads", t}, {"read_gbps", g}});
    if (!o.json) std::printf("read probe, %d thread%s: %.1f GB/s\n", t, t == 1 ? "" : "s", g);
  }
  if (o.json) print_json({{"bandwidth", rows}});
  return 0;
}

int run_kernels(const BenchOptions& o) {
  std::vector<quant::Type> types;
  std::stringstream ss(o.types);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto t = quant::type_from_name(item);
    if (!t) throw core::Error("--types: unknown type '" + item + "'");
    cpu::check_matvec(*t, o.cols);  // before any measuring
    types.push_back(*t);
  }
  const std::vector<int> threads = parse_threads(o.threads);
  nlohmann::json out = nlohmann::json::array();
  std::vector<double> probe;
  for (int t : threads) probe.push_back(cpu::read_probe_gbps(t));
  if (!o.json) {
    std::printf("matrix-vector %lld x %lld, weight GB/s (%% of the read probe at the same thread count)\n",
                static_cast<long long>(o.rows), static_cast<long long>(o.cols));
    std::printf("%-8s", "type");
    for (size_t i = 0; i < threads.size(); ++i) std::printf(" %10d thr", threads[i]);
    std::printf("\n%-8s", "probe");
    for (double p : probe) std::printf(" %9.1f GB/s", p);
    std::printf("\n");
  }
  for (quant::Type type : types) {
    if (!o.json) std::printf("%-8s", std::string(quant::type_name(type)).c_str());
    for (size_t i = 0; i < threads.size(); ++i) {
      const cpu::KernelThroughput k = cpu::matvec_throughput(type, o.rows, o.cols, threads[i]);
      out.push_back({{"type", quant::type_name(type)}, {"threads", threads[i]}, {"gbps", k.gbps},
                     {"probe_gbps", probe[i]}, {"fraction_of_probe", k.gbps / probe[i]}});
      if (!o.json) std::printf(" %6.1f (%3.0f%%)", k.gbps, 100.0 * k.gbps / probe[i]);
      std::fflush(stdout);
    }
    if (!o.json) std::printf("\n");
  }
  if (o.json) print_json({{"rows", o.rows}, {"cols", o.cols}, {"kernels", out}});
  return 0;
}

// Bytes a decode step reads: every matrix of the layers and the head once
// (the token embedding is a row lookup, unless it doubles as the head).
uint64_t weight_bytes_per_token(const core::gguf::File& f) {
  uint64_t total = 0;
  const bool tied = f.find_tensor("output.weight") == nullptr;
  for (const auto& t : f.tensors())
    if (t.name != "token_embd.weight" || tied) total += t.size_bytes;
  return total;
}

int run_model(const BenchOptions& o) {
  if (o.prompt < 1 || o.gen < 1) throw core::Error("--prompt and --gen must be at least 1");
  if (o.prompt + o.gen > o.ctx) throw core::Error("--prompt + --gen exceeds --ctx");
  const std::string path = resolve_model(o.model);
  std::shared_ptr<const core::gguf::File> file = core::gguf::File::open(path);
  const auto kv = quant::type_from_name(o.kv);
  if (!kv) throw core::Error("--kv: unknown type '" + o.kv + "'");
  const uint64_t bytes = weight_bytes_per_token(*file);
  nlohmann::json out = nlohmann::json::array();
  if (!o.json)
    std::printf("%s: %.2f GB of weights read per decoded token; prompt %d tokens, %d decoded\n", path.c_str(),
                static_cast<double>(bytes) / 1e9, o.prompt, o.gen);
  for (int t : parse_threads(o.threads)) {
    cpu::EngineOptions eo;
    eo.threads = t;
    eo.kv.n_ctx = o.ctx;
    eo.kv.k_type = eo.kv.v_type = *kv;
    eo.pin_threads = o.pin_threads;
    eo.residency.mlock = o.mlock;
    eo.residency.huge_pages = o.huge_pages;
    cpu::LlamaEngine engine(file, {}, eo);
    if (!engine.lock_error().empty()) std::fprintf(stderr, "warning: %s\n", engine.lock_error().c_str());
    const int32_t n_vocab = engine.config().n_vocab;
    // Valid ids spread over the vocabulary; content does not change the speed.
    std::vector<int32_t> prompt(static_cast<size_t>(o.prompt));
    for (int i = 0; i < o.prompt; ++i) prompt[i] = static_cast<int32_t>((7 + 31 * i) % std::min(n_vocab, 256));
    std::vector<float> logits;
    const auto t0 = Clock::now();
    engine.forward(prompt, 0, 0, false, logits);
    const double prefill_s = std::chrono::duration<double>(Clock::now() - t0).count();
    int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    const auto t1 = Clock::now();
    for (int i = 0; i < o.gen; ++i) {
      const int32_t tok[1] = {next};
      engine.forward(tok, 0, o.prompt + i, false, logits);
      next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    const double decode_s = std::chrono::duration<double>(Clock::now() - t1).count();
    const double probe = cpu::read_probe_gbps(t);
    const double pf = o.prompt / prefill_s, dec = o.gen / decode_s;
    const double gbps = dec * static_cast<double>(bytes) / 1e9;
    out.push_back({{"threads", t}, {"prefill_tokens_per_s", pf}, {"decode_tokens_per_s", dec},
                   {"decode_weight_gbps", gbps}, {"probe_gbps", probe}, {"fraction_of_probe", gbps / probe}});
    if (!o.json)
      std::printf("%d thread%s: prefill %.1f tok/s, decode %.2f tok/s = %.1f GB/s of weights, %.0f%% of the %.1f GB/s read probe\n",
                  t, t == 1 ? " " : "s", pf, dec, gbps, 100.0 * gbps / probe, probe);
  }
  if (o.json)
    print_json({{"model", path}, {"weight_bytes_per_token", bytes}, {"prompt_tokens", o.prompt}, {"decoded_tokens", o.gen},
                {"runs", out}});
  return 0;
}

}  // namespace

void register_bench(CLI::App& app, Action& action) {
  auto o = std::make_shared<BenchOptions>();
  auto* cmd = app.add_subcommand("bench", "measure memory bandwidth, kernel throughput and model speed here");
  cmd->require_subcommand(1);
  auto* bw = cmd->add_subcommand("bandwidth", "memory read bandwidth (the ceiling of a decode step)");
  auto* kern = cmd->add_subcommand("kernels", "weight GB/s of each matrix-vector kernel beside the read probe");
  auto* model = cmd->add_subcommand("model", "prefill and decode tok/s of a model, and the fraction of the probe");
  for (CLI::App* c : {bw, kern, model}) {
    c->add_option("--threads", o->threads, "comma-separated thread counts")->capture_default_str();
    c->add_flag("--json", o->json, "one JSON document");
  }
  kern->add_option("--types", o->types, "comma-separated weight types")->capture_default_str();
  kern->add_option("--rows", o->rows, "matrix rows (outputs)")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  kern->add_option("--cols", o->cols, "matrix columns (inputs; a multiple of 256)")
      ->capture_default_str()
      ->check(CLI::Range(256, 1 << 20));
  model->add_option("-m,--model", o->model, "GGUF file (default: the cached SmolLM2)");
  model->add_option("--prompt", o->prompt, "prompt tokens (one prefill batch)")->capture_default_str();
  model->add_option("--gen", o->gen, "tokens decoded one at a time")->capture_default_str();
  model->add_option("--ctx", o->ctx, "context size")->capture_default_str();
  model->add_option("--kv", o->kv, "KV cache type: f16, q8_0, q4_0")->capture_default_str();
  model->add_flag("--mlock", o->mlock, "lock the weights in RAM");
  model->add_flag("--pin-threads", o->pin_threads, "bind compute thread i to the i-th CPU this process may use");
  model->add_flag("--huge-pages", o->huge_pages, "transparent huge pages (madvise) for the repacked weights");
  bw->callback([o, &action] { action = [o] { return run_bandwidth(*o); }; });
  kern->callback([o, &action] { action = [o] { return run_kernels(*o); }; });
  model->callback([o, &action] { action = [o] { return run_model(*o); }; });
}

}  // namespace tandem::cli
