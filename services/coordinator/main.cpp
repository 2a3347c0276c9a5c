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
#include <thread>

#include "core/error.h"
#include "core/gguf_file.h"
#include "core/model_config.h"
#include "core/model_paths.h"
#include "core/quant_types.h"
#include "core/tokenizer.h"
#include "services/common/metrics_server.h"
#include "services/common/signals.h"
#include "services/coordinator/inference_service.h"
#include "services/coordinator/supervisor.h"

namespace {

using namespace tandem;
using namespace tandem::services;

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
  bool mlock = false, huge_pages = false;  // handed to the workers this process starts
};

std::string self_dir() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : p.parent_path().string();
}

// Stage order follows the head: the worker that owns it runs last (it turns
// the final hidden rows into logits). --gpu-layers N puts N layers on the GPU
// worker: the last N when the GPU owns the head (as llama.cpp's -ngl), else the first N.
std::vector<StagePlan> plan_stages(const Options& o, int n_layer) {
  if (o.gpu_layers == "auto")
    throw core::Error("--gpu-layers auto needs the memory planner, which is not built yet; give a number of layers");
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
  StagePlan gpu{"gpu", 0, 0, false, o.threads_gpu}, cpu{"cpu", 0, 0, false, o.threads_cpu};
  if (o.head == "gpu") {
    cpu.layer_begin = 0, cpu.layer_end = n_layer - n_gpu;
    gpu.layer_begin = n_layer - n_gpu, gpu.layer_end = n_layer, gpu.head = true;
    return {cpu, gpu};
  }
  if (o.head == "cpu") {
    gpu.layer_begin = 0, gpu.layer_end = n_gpu;
    cpu.layer_begin = n_gpu, cpu.layer_end = n_layer, cpu.head = true;
    return {gpu, cpu};
  }
  throw core::Error("--head must be gpu or cpu (got '" + o.head + "')");
}

int run(const Options& o) {
  block_shutdown_signals();
  const std::string model = core::resolve_model(o.model);
  std::shared_ptr<core::gguf::File> file = core::gguf::File::open(model);
  const core::ModelConfig cfg = core::config_from_gguf(*file);
  auto tok = std::make_unique<core::Tokenizer>(core::vocab_from_gguf(*file));
  if (tok->n_vocab() > cfg.n_vocab)
    throw core::Error(model + ": tokenizer has " + std::to_string(tok->n_vocab()) + " tokens but the embedding only " +
                      std::to_string(cfg.n_vocab));
  for (const auto& [name, t] : {std::pair{"--cache-type-k", o.cache_type_k}, std::pair{"--cache-type-v", o.cache_type_v}})
    if (!core::quant::type_from_name(t)) throw core::Error(std::string("unknown cache type for ") + name + ": '" + t + "'");
  if (o.max_sequences < 1 || o.max_batch_tokens < 1 || o.max_queue < 0 || o.ctx < 2)
    throw core::Error("--max-sequences and --max-batch-tokens must be >= 1, --max-queue >= 0, --ctx >= 2");
  const std::vector<StagePlan> stages = plan_stages(o, cfg.n_layer);

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
  Pipeline pipeline(pc, stages);

  MetricsServer metrics(o.metrics);
  CoordinatorMetrics cm(metrics.registry());

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
      procs.push_back(w);
    }
  } else {
    for (const StagePlan& s : stages) addresses.push_back(s.role == "gpu" ? o.attach_gpu : o.attach_cpu);
  }

  SchedulerConfig sc{o.max_sequences, o.max_queue, o.max_batch_tokens, o.ctx};
  Scheduler scheduler(sc, pipeline, *tok, embedder, cm);
  InferenceService service(*file, *tok, scheduler, pipeline, cm);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(o.listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) throw core::Error("cannot listen on '" + o.listen + "' (address in use or invalid)");
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  auto set_serving = [health](bool up) {
    health->SetServingStatus(up);  // "" (the whole server)
    health->SetServingStatus(tandem::v1::Inference::service_full_name(), up);
  };
  set_serving(false);
  pipeline.on_state_change([&](bool up, const std::string& why) {
    cm.pipeline_up.Set(up ? 1 : 0);
    set_serving(up);
    if (!up) std::fprintf(stderr, "tandem-coordinator: pipeline down: %s\n", why.c_str());
  });

  Supervisor supervisor(pipeline, procs, addresses, !attach);
  supervisor.on_restart([&](const std::string& role) { cm.restarts.Add({{"worker", role}}).Increment(); });
  supervisor.start();

  const std::string host = o.listen.substr(0, o.listen.rfind(':'));
  std::printf("tandem-coordinator: serving tandem.v1.Inference on %s:%d (gRPC, health, reflection)\n", host.c_str(), port);
  std::printf("tandem-coordinator: metrics on %s\n", metrics.url().c_str());
  for (const StagePlan& s : stages)
    std::printf("tandem-coordinator: %s worker: layers [%d, %d)%s\n", s.role.c_str(), s.layer_begin, s.layer_end,
                s.head ? " + output head" : "");
  std::fflush(stdout);

  std::atomic<bool> never{false};
  const int sig = wait_for_shutdown(never);
  std::fprintf(stderr, "tandem-coordinator: shutting down (signal %d)\n", sig);
  set_serving(false);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
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
  app.add_option("--metrics", o.metrics, "Prometheus endpoint HOST:PORT (port 0: any free port)");
  app.add_option("--gpu-layers", o.gpu_layers, "layers on the GPU worker (a number; auto: the memory planner)");
  app.add_option("--head", o.head, "which worker runs the output head and therefore goes last: gpu or cpu");
  app.add_option("-c,--ctx", o.ctx, "context size per sequence (positions)");
  app.add_option("--max-sequences", o.max_sequences, "concurrent sequences (KV slots)");
  app.add_option("--max-queue", o.max_queue, "requests allowed to wait for a slot; more get RESOURCE_EXHAUSTED");
  app.add_option("--max-batch-tokens", o.max_batch_tokens, "rows per pipeline step (prefill chunk)");
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
  app.add_option("--step-timeout", o.step_timeout_s, "seconds one pipeline step may take before the pipeline is reset");
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
