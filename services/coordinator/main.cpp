// tandem-coordinator (also `tandem serve`): serves tandem.v1.Inference over
// gRPC and drives the GPU and CPU workers through shared-memory rings.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <stdlib.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/gguf_file.h"
#include "core/model_compat.h"
#include "core/model_config.h"
#include "core/plan/memory_plan.h"
#include "core/model_paths.h"
#include "core/quant_mix.h"
#include "core/quant_types.h"
#include "core/tokenizer.h"
#include "services/common/metrics_server.h"
#include "services/common/signals.h"
#include "services/coordinator/api_credentials.h"
#include "services/coordinator/bearer_auth.h"
#include "services/coordinator/inference_service.h"
#include "services/coordinator/supervisor.h"

namespace {

using namespace tandem;
using namespace tandem::services;
namespace plan = tandem::core::plan;

struct Options {
  std::string model;
  std::string listen = "127.0.0.1:50051";
  std::string metrics = "127.0.0.1:9400";
  std::string gpu_layers = "0";
  std::string head = "gpu";
  int ctx = 4096;
  int max_sequences = 8;
  int max_queue = 64;
  int max_batch_tokens = 512;
  std::string cache_type_k = "f16", cache_type_v = "f16";
  std::string wire = "f32";
  int threads_gpu = 0, threads_cpu = 0;
  std::string attach_gpu, attach_cpu;
  std::string worker_dir;
  std::string gpu_worker_metrics = "127.0.0.1:0", cpu_worker_metrics = "127.0.0.1:0";
  double step_timeout_s = 600;
  double worker_hang_timeout_s = 30;
  double drain_timeout_s = 25;  // SIGTERM: how long streams in flight may still run
  TlsOptions tls;               // the API port's TLS / mTLS
  std::string auth_token_file;  // bearer tokens (also TANDEM_AUTH_TOKENS)
  std::string health_listen;    // a second, plaintext port with only grpc.health.v1
  RequestLimits limits;
  int max_message_bytes = 4 << 20;  // largest request message (gRPC refuses more: RESOURCE_EXHAUSTED)
  bool mlock = false, huge_pages = false;  // handed to the workers this process starts
  std::string gpu_model, cpu_model;        // per-shard files (default: --model)
  std::string vram;                        // --gpu-layers auto: the card's memory ("" : nvidia-smi)
  std::string gpu_memory_limit;            // handed to the GPU worker as --memory-limit
  std::string model_name;                  // tandem_model_info{model}: default the file name without .gguf
};

// The file type llama.cpp wrote (general.file_type) as its mix name: Q4_K_M, IQ2_XXS, ...
std::string file_type_name(const core::gguf::File& f) {
  const auto ft = f.get_int("general.file_type");
  if (!ft) return "unknown";
  for (core::QuantMix m : core::all_mixes())
    if (core::mix_file_type(m) == static_cast<uint32_t>(*ft)) return std::string(core::mix_name(m));
  return "file_type_" + std::to_string(*ft);
}

std::string self_dir() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : p.parent_path().string();
}

// Stage order follows the head: the worker that owns it runs last (it turns
// the final hidden rows into logits). n_gpu layers go to the GPU worker: the
// last n when the GPU owns the head (as llama.cpp's -ngl), else the first n.
// Each stage carries its share of the memory plan, which its worker logs
// beside what it really allocates.
std::vector<StagePlan> stages_for(const Options& o, const plan::PlanRequest& req, int n_gpu, bool head_gpu,
                                  const std::string& gpu_model, const std::string& cpu_model) {
  const plan::StageBytes g = plan::gpu_stage_bytes(req, n_gpu, head_gpu), c = plan::cpu_stage_bytes(req, n_gpu, head_gpu);
  StagePlan gpu{"gpu", g.layer_begin, g.layer_end, g.head, o.threads_gpu, gpu_model, g.weights, g.kv, g.scratch};
  StagePlan cpu{"cpu", c.layer_begin, c.layer_end, c.head, o.threads_cpu, cpu_model, c.weights, c.kv, c.scratch};
  if (head_gpu) return {cpu, gpu};
  return {gpu, cpu};
}

// The card's memory for --gpu-layers auto without --vram: nvidia-smi's
// memory.total of device 0 (the coordinator itself never links CUDA); 0 when
// there is no NVIDIA driver, which plans every layer onto the CPU.
uint64_t detect_vram() {
  FILE* p = ::popen("nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits -i 0 2>/dev/null", "r");
  if (!p) return 0;
  char buf[64] = {0};
  const bool got = std::fgets(buf, sizeof buf, p) != nullptr;
  ::pclose(p);
  if (!got) return 0;
  char* end = nullptr;
  const unsigned long long mib = std::strtoull(buf, &end, 10);
  return end != buf ? mib << 20 : 0;
}

int parse_gpu_layers(const Options& o, int n_layer) {
  int n_gpu = 0;
  try {
    size_t used = 0;
    n_gpu = std::stoi(o.gpu_layers, &used);
    if (used != o.gpu_layers.size()) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    throw core::Error("--gpu-layers must be a number of layers or auto (got '" + o.gpu_layers + "')");
  }
  if (n_gpu < 0 || n_gpu > n_layer)
    throw core::Error("--gpu-layers " + std::to_string(n_gpu) + " is outside 0.." + std::to_string(n_layer) +
                      " (the model has " + std::to_string(n_layer) + " layers)");
  return n_gpu;
}

int run(const Options& o) {
  block_shutdown_signals();
  // Security settings first: a bad one fails before anything is loaded or started.
  const std::shared_ptr<grpc::ServerCredentials> api_credentials = api_server_credentials(o.tls);
  const BearerAuth auth = BearerAuth::from_sources(o.auth_token_file, "TANDEM_AUTH_TOKENS");
  // -m names the model; --gpu-model / --cpu-model give a shard another
  // quantization of it. The coordinator embeds and tokenizes from the CPU's file.
  const std::string model = std::filesystem::absolute(core::resolve_model(o.cpu_model.empty() ? o.model : o.cpu_model)).string();
  const std::string gpu_model =
      o.gpu_model.empty() ? model : std::filesystem::absolute(core::resolve_model(o.gpu_model)).string();
  std::shared_ptr<core::gguf::File> file = core::gguf::File::open(model);
  std::shared_ptr<core::gguf::File> gpu_file = gpu_model == model ? file : core::gguf::File::open(gpu_model);
  if (gpu_file != file) core::check_same_model(*gpu_file, *file);
  const core::ModelConfig cfg = core::config_from_gguf(*file);
  auto tok = std::make_unique<core::Tokenizer>(core::vocab_from_gguf(*file));
  if (tok->n_vocab() > cfg.n_vocab)
    throw core::Error(model + ": tokenizer has " + std::to_string(tok->n_vocab()) + " tokens but the embedding only " +
                      std::to_string(cfg.n_vocab));
  for (const auto& [name, t] : {std::pair{"--cache-type-k", o.cache_type_k}, std::pair{"--cache-type-v", o.cache_type_v}})
    if (!core::quant::type_from_name(t)) throw core::Error(std::string("unknown cache type for ") + name + ": '" + t + "'");
  if (o.max_sequences < 1 || o.max_batch_tokens < 1 || o.max_queue < 0 || o.ctx < 2)
    throw core::Error("--max-sequences and --max-batch-tokens must be >= 1, --max-queue >= 0, --ctx >= 2");
  if (o.head != "gpu" && o.head != "cpu") throw core::Error("--head must be gpu or cpu (got '" + o.head + "')");

  plan::PlanRequest req;
  req.shape = plan::shape_from_config(cfg);
  req.gpu_source = plan::inventory_from_gguf(*gpu_file);
  req.cpu_source = gpu_file == file ? req.gpu_source : plan::inventory_from_gguf(*file);
  req.run.ctx = o.ctx;
  req.run.sequences = o.max_sequences;
  req.run.batch = o.max_batch_tokens;
  req.run.kv_k = *core::quant::type_from_name(o.cache_type_k);
  req.run.kv_v = *core::quant::type_from_name(o.cache_type_v);
  req.head = o.head == "gpu" ? plan::HeadPlace::Gpu : plan::HeadPlace::Cpu;
  const bool auto_split = o.gpu_layers == "auto";
  int n_gpu = 0;
  bool head_gpu = o.head == "gpu";
  if (auto_split) {
    req.vram = o.vram.empty() ? detect_vram() : plan::parse_bytes(o.vram);
    const plan::MemoryPlan mp = plan::plan_memory(req);
    n_gpu = mp.n_gpu_layers;
    head_gpu = mp.head_on_gpu;
    if (req.vram == 0)
      std::printf("tandem-coordinator: plan: %s: every layer and the head on the CPU worker\n",
                  o.vram.empty() ? "no NVIDIA GPU found (nvidia-smi); give --vram to plan for a card" : "--vram 0");
    else
      std::printf("tandem-coordinator: plan for %s of VRAM%s: %d of %d layers%s on the GPU (%s of %s)\n",
                  plan::format_gib(req.vram).c_str(), o.vram.empty() ? " (nvidia-smi)" : "", n_gpu, cfg.n_layer,
                  head_gpu ? " + head" : "", plan::format_gib(mp.gpu.total()).c_str(), plan::format_gib(req.vram).c_str());
  } else {
    n_gpu = parse_gpu_layers(o, cfg.n_layer);
  }
  const std::vector<StagePlan> stages = stages_for(o, req, n_gpu, head_gpu, gpu_model, model);
  // The coordinator looks tokens up in the embedding itself (one row per
  // token; the table's pages are touched only for tokens actually used).
  cpu::EngineOptions eo;
  eo.threads = 1;
  eo.kv.n_ctx = 1;
  eo.kv.n_seq = 1;
  cpu::LlamaEngine embedder(file, cpu::ShardSpec{0, 0, true, false}, eo);

  PipelineConfig pc;
  pc.model_path = std::filesystem::absolute(model).string();
  pc.kv_type_k = o.cache_type_k;
  pc.kv_type_v = o.cache_type_v;
  pc.context = o.ctx;
  pc.max_sequences = o.max_sequences;
  pc.max_batch_tokens = o.max_batch_tokens;
  pc.n_embd = cfg.n_embd;
  pc.n_vocab = cfg.n_vocab;
  pc.wire = core::wire::dtype_from_name(o.wire);
  pc.step_timeout = std::chrono::milliseconds(static_cast<int64_t>(o.step_timeout_s * 1000));
  if (auto_split) {
    // Reality exceeded the plan on the GPU: a layer fewer there, one more on the CPU.
    pc.back_off = [o, req, gpu_model, model](std::vector<StagePlan>& st, const std::string& refusal) {
      const bool head_gpu = st.back().role == "gpu";
      const StagePlan& g = head_gpu ? st.back() : st.front();
      const int n = g.layer_end - g.layer_begin;
      if (n == 0) return false;
      std::fprintf(stderr, "tandem-coordinator: the GPU worker refused %d layers (%s); backing off to %d\n", n,
                   refusal.c_str(), n - 1);
      st = stages_for(o, req, n - 1, head_gpu, gpu_model, model);
      return true;
    };
  }
  Pipeline pipeline(pc, stages);

  MetricsServer metrics(o.metrics);
  CoordinatorMetrics cm(metrics.registry());
  {
    std::string stem = std::filesystem::path(model).filename().string();
    if (stem.size() > 5 && stem.ends_with(".gguf")) stem.resize(stem.size() - 5);
    cm.model_info
        .Add({{"model", o.model_name.empty() ? stem : o.model_name},
              {"file", std::filesystem::path(model).filename().string()},
              {"quant", file_type_name(*file)}})
        .Set(1);
  }

  const bool attach = !o.attach_gpu.empty() || !o.attach_cpu.empty();
  if (attach && (o.attach_gpu.empty() || o.attach_cpu.empty()))
    throw core::Error("attach mode needs both --attach-gpu and --attach-cpu");
  std::vector<WorkerProcess> procs;
  std::vector<std::string> addresses;
  std::string runtime_dir;
  if (!attach) {
    const std::string wdir = o.worker_dir.empty() ? self_dir() : o.worker_dir;
    const char* base = std::getenv("XDG_RUNTIME_DIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/tandem-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw core::Error("cannot create a runtime directory under " + tmpl);
    runtime_dir = tmpl;  // mode 0700: only we reach the workers' sockets
    for (const StagePlan& s : stages) {
      WorkerProcess w;
      w.role = s.role;
      w.binary = wdir + "/tandem-" + s.role + "-worker";
      if (!std::filesystem::exists(w.binary)) throw core::Error("worker binary " + w.binary + " not found (--worker-dir)");
      w.listen = "unix:" + runtime_dir + "/" + s.role + ".sock";
      w.metrics_bind = s.role == "gpu" ? o.gpu_worker_metrics : o.cpu_worker_metrics;
      w.threads = s.threads;
      if (o.mlock) w.extra_args.push_back("--mlock");
      if (o.huge_pages) w.extra_args.push_back("--huge-pages");
      if (s.role == "gpu" && !o.gpu_memory_limit.empty()) {
        w.extra_args.push_back("--memory-limit");
        w.extra_args.push_back(o.gpu_memory_limit);
      }
      procs.push_back(w);
    }
  } else {
    for (const StagePlan& s : stages) addresses.push_back(s.role == "gpu" ? o.attach_gpu : o.attach_cpu);
  }

  SchedulerConfig sc{o.max_sequences, o.max_queue, o.max_batch_tokens, o.ctx};
  Scheduler scheduler(sc, pipeline, *tok, embedder, cm);
  InferenceService service(*file, *tok, scheduler, pipeline, cm, auth, o.limits);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(o.listen, api_credentials, &port);
  builder.SetMaxReceiveMessageSize(o.max_message_bytes);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) throw core::Error("cannot listen on '" + o.listen + "' (address in use or invalid)");
  // --health-listen: the same health answers on a plaintext port of their
  // own, for probes that cannot present the API port's TLS client
  // certificate (Kubernetes' gRPC probes speak plaintext only).
  std::unique_ptr<grpc::Server> health_server;
  int health_port = 0;
  if (!o.health_listen.empty()) {
    grpc::ServerBuilder hb;
    hb.AddListeningPort(o.health_listen, grpc::InsecureServerCredentials(), &health_port);
    health_server = hb.BuildAndStart();
    if (!health_server || health_port == 0)
      throw core::Error("cannot listen on --health-listen '" + o.health_listen + "' (address in use or invalid)");
  }
  std::vector<grpc::HealthCheckServiceInterface*> healths = {server->GetHealthCheckService()};
  if (health_server) healths.push_back(health_server->GetHealthCheckService());
  // grpc.health.v1: "" and tandem.v1.Inference answer SERVING while the
  // pipeline is up (readiness); "liveness" while this process runs.
  bool draining = false;  // once set, nothing turns readiness back on
  std::mutex serving_mu;  // the pipeline's callbacks and the shutdown path both call set_serving
  auto set_serving = [&healths, &draining, &serving_mu](bool up) {
    std::lock_guard lk(serving_mu);
    if (up && draining) return;
    for (auto* h : healths) {
      h->SetServingStatus("", up);
      h->SetServingStatus(tandem::v1::Inference::service_full_name(), up);
    }
  };
  for (auto* h : healths) h->SetServingStatus("liveness", true);
  set_serving(false);
  pipeline.on_state_change([&](bool up, const std::string& why) {
    cm.pipeline_up.Set(up ? 1 : 0);
    set_serving(up);
    if (!up) std::fprintf(stderr, "tandem-coordinator: pipeline down: %s\n", why.c_str());
  });

  Supervisor supervisor(pipeline, procs, addresses, !attach,
                        std::chrono::milliseconds(static_cast<int64_t>(o.worker_hang_timeout_s * 1000)));
  // Both series exist from the start at 0, so rate()/increase() see the first restart.
  for (const StagePlan& s : stages) cm.restarts.Add({{"worker", s.role}});
  supervisor.on_restart([&](const std::string& role) { cm.restarts.Add({{"worker", role}}).Increment(); });
  if (attach) pipeline.on_worker_restart([&](const std::string& role) { cm.restarts.Add({{"worker", role}}).Increment(); });
  supervisor.start();

  const std::string host = o.listen.substr(0, o.listen.rfind(':'));
  std::printf("tandem-coordinator: serving tandem.v1.Inference on %s:%d (gRPC, health, reflection)\n", host.c_str(), port);
  std::printf("tandem-coordinator: API security: %s, %s\n",
              o.tls.cert.empty() ? "plaintext" : (o.tls.client_ca.empty() ? "TLS" : "mutual TLS"),
              auth.enabled() ? ("bearer tokens (" + std::to_string(auth.token_count()) + ")").c_str() : "no authentication");
  if (health_server)
    std::printf("tandem-coordinator: health on %s:%d (plaintext: grpc.health.v1 and reflection)\n",
                o.health_listen.substr(0, o.health_listen.rfind(':')).c_str(), health_port);
  std::printf("tandem-coordinator: metrics on %s\n", metrics.url().c_str());
  for (const StagePlan& s : stages)
    std::printf("tandem-coordinator: %s worker: layers [%d, %d)%s\n", s.role.c_str(), s.layer_begin, s.layer_end,
                s.head ? " + output head" : "");
  std::fflush(stdout);

  std::atomic<bool> never{false};
  const int sig = wait_for_shutdown(never);
  std::fprintf(stderr, "tandem-coordinator: shutting down (signal %d)\n", sig);
  {
    std::lock_guard lk(serving_mu);
    draining = true;
  }
  set_serving(false);
  // Drain: no new calls from here on (they get UNAVAILABLE); the streams in
  // flight, queued ones included, run to their end unless --drain-timeout
  // passes first, which cancels them. Kubernetes waits
  // terminationGracePeriodSeconds (30 s) before SIGKILL: the default 25 s fits.
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(o.drain_timeout_s * 1000)));
  if (health_server) health_server->Shutdown(std::chrono::system_clock::now());
  scheduler.stop();
  supervisor.stop();
  if (!runtime_dir.empty()) std::filesystem::remove_all(runtime_dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tandem-coordinator: Tandem's gRPC service over a GPU worker and a CPU worker"};
  Options o;
  app.add_option("-m,--model", o.model, "GGUF model (default: the cached SmolLM2-135M-Instruct Q4_1)");
  app.add_option("--listen", o.listen, "gRPC address HOST:PORT (port 0: any free port)");
  app.add_option("--model-name", o.model_name,
                 "the model's name in metrics (tandem_model_info{model}); default: the file name without .gguf");
  app.add_option("--metrics", o.metrics, "Prometheus endpoint HOST:PORT (port 0: any free port)");
  app.add_option("--gpu-layers", o.gpu_layers,
                 "layers on the GPU worker: a number, or auto (the memory planner under --vram; backs off a layer "
                 "when the GPU worker runs out of memory)");
  app.add_option("--gpu-model", o.gpu_model, "GGUF the GPU worker loads its layers from (another quantization of --model)");
  app.add_option("--cpu-model", o.cpu_model, "GGUF the CPU worker loads its layers from (default: --model)");
  app.add_option("--vram", o.vram, "--gpu-layers auto: the card's memory, e.g. 24GiB (default: nvidia-smi, else 0)");
  app.add_option("--gpu-memory-limit", o.gpu_memory_limit,
                 "supervisor mode: the GPU worker refuses shards needing more than this (tandem-gpu-worker --memory-limit)");
  app.add_option("--head", o.head, "which worker runs the output head and therefore goes last: gpu or cpu");
  app.add_option("-c,--ctx", o.ctx, "context size per sequence (positions)");
  app.add_option("--max-sequences", o.max_sequences, "concurrent sequences (KV slots)");
  app.add_option("--max-queue", o.max_queue, "requests allowed to wait for a slot; more get RESOURCE_EXHAUSTED");
  app.add_option("--max-batch-tokens", o.max_batch_tokens,
                 "rows per pipeline step; prompts go in chunks of this less (max-sequences - 1) tokens");
  app.add_option("--cache-type-k", o.cache_type_k, "K cache type: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1");
  app.add_option("--cache-type-v", o.cache_type_v, "V cache type");
  app.add_option("--wire-type", o.wire, "hidden rows between stages: f32 (exact) or f16 (half the bytes)");
  app.add_option("--threads-gpu", o.threads_gpu, "threads of the GPU worker's host kernels (0: all cores)");
  app.add_option("--threads-cpu", o.threads_cpu, "threads of the CPU worker (0: all cores)");
  app.add_flag("--mlock", o.mlock, "supervisor mode: the workers lock their RAM-resident weights (tandem-cpu-worker --mlock)");
  app.add_flag("--huge-pages", o.huge_pages, "supervisor mode: transparent huge pages for repacked weights in the workers");
  app.add_option("--attach-gpu", o.attach_gpu, "attach mode: control address of a running tandem-gpu-worker");
  app.add_option("--attach-cpu", o.attach_cpu, "attach mode: control address of a running tandem-cpu-worker");
  app.add_option("--worker-dir", o.worker_dir, "where the worker binaries are (default: next to this one)");
  app.add_option("--gpu-worker-metrics", o.gpu_worker_metrics, "supervisor mode: the GPU worker's metrics HOST:PORT");
  app.add_option("--cpu-worker-metrics", o.cpu_worker_metrics, "supervisor mode: the CPU worker's metrics HOST:PORT");
  app.add_option("--tls-cert", o.tls.cert, "PEM certificate chain: serve the API over TLS (with --tls-key)");
  app.add_option("--tls-key", o.tls.key, "PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", o.tls.client_ca,
                 "PEM CA bundle: mutual TLS, clients must present a certificate it signed");
  app.add_option("--auth-token-file", o.auth_token_file,
                 "file of bearer tokens, one per line: API calls need 'authorization: Bearer <token>' (also: "
                 "TANDEM_AUTH_TOKENS, comma-separated); health stays open");
  app.add_option("--health-listen", o.health_listen,
                 "also serve grpc.health.v1 (and reflection, not the API) on this plaintext HOST:PORT, for probes of a TLS API port");
  app.add_option("--max-prompt-tokens", o.limits.max_prompt_tokens,
                 "longest prompt accepted, in tokens (0: the context - 1)")->check(CLI::NonNegativeNumber);
  app.add_option("--max-new-tokens", o.limits.max_new_tokens,
                 "largest options.max_tokens accepted; -1 (until the context is full) is capped to it (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-stop-strings", o.limits.max_stop_strings, "most options.stop strings per request (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-message-bytes", o.max_message_bytes,
                 "largest request message; bigger ones get RESOURCE_EXHAUSTED")->check(CLI::PositiveNumber);
  app.add_option("--drain-timeout", o.drain_timeout_s,
                 "on SIGTERM/SIGINT: seconds the streams in flight may still run (new calls get UNAVAILABLE at once)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--step-timeout", o.step_timeout_s, "seconds one pipeline step may take before the pipeline is reset");
  app.add_option("--worker-hang-timeout", o.worker_hang_timeout_s,
                 "supervisor mode: seconds a worker may leave its control plane unanswered before it is killed and "
                 "restarted (0: never; after 5 s the pipeline already goes down)")
      ->check(CLI::NonNegativeNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tandem-coordinator: error: %s\n", e.what());
    return 1;
  }
}
