#pragma once
// What the `tandem` subcommands share: model path resolution, the options
// every model-running command takes, and loading a model for generation.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>

#include "core/gguf_file.h"
#include "core/tokenizer.h"
#include "cpu_worker/llama_engine.h"

namespace tandem::cli {

// A subcommand registers its options and stores what to run here.
using Action = std::function<int()>;

// The default model in the cache ($TANDEM_MODEL_DIR or ~/.cache/tandem/models).
std::string default_model_path();
// Resolves "-m" (empty → default model); throws core::Error with a hint when absent.
std::string resolve_model(const std::string& given);

struct RunOptions {
  std::string model;
  int threads = 0;      // 0: all cores
  int ctx = 4096;       // context size (positions per sequence)
  int batch = 512;      // prefill batch (tokens per forward call)
  std::string cache_type_k = "f16";
  std::string cache_type_v = "f16";
  bool mlock = false;       // lock the weights in RAM
  bool pin_threads = false; // one CPU per compute thread
  bool huge_pages = false;  // transparent huge pages for repacked weights
  void add_to(CLI::App& app);
};

struct LoadedModel {
  std::shared_ptr<core::gguf::File> file;
  std::unique_ptr<core::Tokenizer> tokenizer;
  std::unique_ptr<cpu::LlamaEngine> engine;
};

LoadedModel load_model(const RunOptions& opt);
std::unique_ptr<core::Tokenizer> load_tokenizer(const core::gguf::File& file);

// Prints a JSON document on stdout (one line per document).
void print_json(const nlohmann::json& j);

void register_inspect(CLI::App& app, Action& action);
void register_tokenize(CLI::App& app, Action& action);
void register_generate(CLI::App& app, Action& action);
void register_perplexity(CLI::App& app, Action& action);
void register_client(CLI::App& app, Action& action);
void register_client_bench(CLI::App& client, Action& action);  // `tandem client bench`, under `client`
void register_serve(CLI::App& app, Action& action);
void register_synth(CLI::App& app, Action& action);
void register_quantize(CLI::App& app, Action& action);
void register_plan(CLI::App& app, Action& action);
void register_bench(CLI::App& app, Action& action);

}  // namespace tandem::cli
