#include "tools/cli_common.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <thread>

#include "core/error.h"
#include "core/model_paths.h"

namespace tandem::cli {

std::string default_model_path() { return core::default_model_path(); }
std::string resolve_model(const std::string& given) { return core::resolve_model(given); }

void RunOptions::add_to(CLI::App& app) {
  app.add_option("-m,--model", model, "GGUF model file (default: the cached SmolLM2-135M-Instruct Q4_1)");
  app.add_option("-t,--threads", threads, "CPU threads (default: all cores)")->check(CLI::Range(0, 1024));
  app.add_option("-c,--ctx", ctx, "context size in tokens")->check(CLI::Range(1, 1 << 24));
  app.add_option("-b,--batch", batch, "prefill batch size in tokens")->check(CLI::Range(1, 1 << 16));
  app.add_option("--cache-type-k", cache_type_k, "K cache type: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1");
  app.add_option("--cache-type-v", cache_type_v, "V cache type: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1");
  app.add_flag("--pin-threads", pin_threads, "bind compute thread i to the i-th CPU this process may use");
  app.add_flag("--mlock", mlock, "lock the weights in RAM (needs `ulimit -l` or CAP_IPC_LOCK)");
  app.add_flag("--huge-pages", huge_pages, "transparent huge pages (madvise) for the repacked weights");
}

std::unique_ptr<core::Tokenizer> load_tokenizer(const core::gguf::File& file) {
  return std::make_unique<core::Tokenizer>(core::vocab_from_gguf(file));
}

namespace {

core::quant::Type parse_cache_type(const std::string& s, const char* which) {
  auto t = core::quant::type_from_name(s);
  if (!t) throw core::Error(std::string("unknown cache type for ") + which + ": '" + s + "'");
  return *t;
}

}  // namespace

LoadedModel load_model(const RunOptions& opt) {
  LoadedModel m;
  m.file = std::shared_ptr<core::gguf::File>(core::gguf::File::open(resolve_model(opt.model)));
  m.tokenizer = load_tokenizer(*m.file);
  cpu::EngineOptions eo;
  eo.threads = opt.threads > 0 ? opt.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  eo.kv.n_ctx = opt.ctx;
  eo.kv.n_seq = 1;
  eo.kv.k_type = parse_cache_type(opt.cache_type_k, "--cache-type-k");
  eo.kv.v_type = parse_cache_type(opt.cache_type_v, "--cache-type-v");
  eo.pin_threads = opt.pin_threads;
  eo.residency.mlock = opt.mlock;
  eo.residency.huge_pages = opt.huge_pages;
  m.engine = std::make_unique<cpu::LlamaEngine>(m.file, cpu::ShardSpec{}, eo);
  if (!m.engine->lock_error().empty())
    std::fprintf(stderr, "warning: %s; the weights stay unlocked\n", m.engine->lock_error().c_str());
  if (m.tokenizer->n_vocab() > m.engine->config().n_vocab)
    throw core::Error(m.file->path() + ": tokenizer has " + std::to_string(m.tokenizer->n_vocab()) +
                      " tokens but the embedding only " + std::to_string(m.engine->config().n_vocab));
  return m;
}

void print_json(const nlohmann::json& j) {
  std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  std::cout.flush();
}

}  // namespace tandem::cli
