#pragma once
// The worker process shared by tandem-gpu-worker and tandem-cpu-worker: a
// gRPC control plane (tandem.v1.Worker), one compute thread that moves
// batches from the input ring through the stage to the output ring, a
// heartbeat thread, and Prometheus metrics. What runs the layers is a
// core::StageBackend made by the caller's factory.
#include <functional>
#include <memory>
#include <string>

#include "core/gguf_file.h"
#include "core/stage_backend.h"

namespace tandem::services {

struct ShardRequest {
  std::string model_path;
  int32_t layer_begin = 0, layer_end = 0;
  bool embedding = false, head = false;
  std::string kv_type_k = "f16", kv_type_v = "f16";
  int32_t context = 4096, max_sequences = 1, threads = 1, max_batch_tokens = 512;
  // From the worker's command line, not the request: how this host keeps
  // weights resident (see cpu::Residency).
  bool huge_pages = false, mlock = false, pin_threads = false;
};

using StageFactory =
    std::function<std::unique_ptr<core::StageBackend>(std::shared_ptr<const core::gguf::File>, const ShardRequest&)>;

struct WorkerOptions {
  std::string role;          // "gpu" | "cpu": names the process in logs and metrics
  std::string listen;        // control plane: "unix:/path" or "HOST:PORT"
  std::string metrics_bind;  // "HOST:PORT" (0: any free port)
  std::string health_listen; // "" or HOST:PORT: grpc.health.v1 alone, plaintext, for probes (control stays on `listen`)
  int threads = 0;           // default for LoadShard requests that say 0
  bool huge_pages = false;   // transparent huge pages for repacked weights
  bool mlock = false;        // lock the shard's weights in RAM
  bool pin_threads = false;  // one CPU per compute thread
  uint64_t memory_limit = 0; // refuse a shard needing more (weights + KV + scratch); 0: no limit
  double drain_timeout_s = 25; // SIGTERM while connected: keep serving the coordinator this long at most
};

// Runs until Shutdown (RPC) or SIGINT/SIGTERM; returns the exit code.
int run_worker(const WorkerOptions& opt, StageFactory factory);

// Parses the command line shared by both workers and runs; main() of each
// worker binary is this plus its factory.
int worker_main(int argc, char** argv, const std::string& role, StageFactory factory);

}  // namespace tandem::services
