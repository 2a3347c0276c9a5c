// `tandem synth`: writes a GGUF model with random weights and real shapes
// (a few Llama-3-70B layers, say) quantized as llama-quantize would for a
// given mix, for benchmarks and tests that need a model no one can download
// in CI. Same spec and seed, same file.
#include <cstdio>
#include <map>
#include <string>

#include "core/error.h"
#include "core/synthetic_model.h"
#include "tools/cli_common.h"

namespace tandem::cli {

namespace {

struct SynthOptions {
  std::string out;
  std::string preset = "llama-3-70b";
  int32_t layers = 2;
  std::string mix;
  std::string type;
  int32_t vocab = 32000;
  uint64_t seed = 1;
  int threads = 0;
};

struct Shape {
  int32_t n_embd, n_ff, n_head, n_head_kv, n_ctx_train;
  float rope_base;
};

const std::map<std::string, Shape>& presets() {
  static const std::map<std::string, Shape> p = {
      {"llama-3-70b", {8192, 28672, 64, 8, 8192, 500000.0f}},
      {"llama-2-70b", {8192, 28672, 64, 8, 4096, 10000.0f}},
      {"llama-3-8b", {4096, 14336, 32, 8, 8192, 500000.0f}},
      {"tiny", {256, 512, 4, 2, 2048, 10000.0f}},
  };
  return p;
}

int run_synth(const SynthOptions& o) {
  const auto it = presets().find(o.preset);
  if (it == presets().end()) {
    std::string names;
    for (const auto& [k, v] : presets()) names += (names.empty() ? "" : ", ") + k;
    throw core::Error("unknown preset '" + o.preset + "' (known: " + names + ")");
  }
  if (o.layers < 1) throw core::Error("--layers must be at least 1");
  if (o.mix.empty() == o.type.empty()) throw core::Error("give exactly one of --mix (e.g. Q4_K_M) or --type (e.g. Q4_0)");
  core::SyntheticModelSpec s;
  s.n_layer = o.layers;
  s.n_embd = it->second.n_embd;
  s.n_ff = it->second.n_ff;
  s.n_head = it->second.n_head;
  s.n_head_kv = it->second.n_head_kv;
  s.n_ctx_train = it->second.n_ctx_train;
  s.rope_freq_base = it->second.rope_base;
  s.n_vocab = o.vocab;
  s.seed = o.seed;
  s.threads = o.threads;
  if (!o.mix.empty()) {
    s.mix = core::mix_from_name(o.mix);
    if (!s.mix) throw core::Error("unknown --mix '" + o.mix + "'");
  } else {
    const auto t = core::quant::type_from_name(o.type);
    if (!t) throw core::Error("unknown --type '" + o.type + "'");
    s.weight_type = *t;
    s.embd_type = *t;
    s.tied_output = false;
  }
  core::write_synthetic_model(o.out, s);
  std::printf("%s\n", o.out.c_str());
  return 0;
}

}  // namespace

void register_synth(CLI::App& app, Action& action) {
  auto o = std::make_shared<SynthOptions>();
  auto* cmd = app.add_subcommand("synth", "write a GGUF model with random weights and real shapes (for benchmarks)");
  cmd->add_option("-o,--output", o->out, "GGUF file to write")->required();
  cmd->add_option("--preset", o->preset, "shapes: llama-3-70b, llama-2-70b, llama-3-8b, tiny")->capture_default_str();
  cmd->add_option("--layers", o->layers, "number of layers")->capture_default_str();
  cmd->add_option("--mix", o->mix, "llama-quantize file type, e.g. Q4_K_M, Q3_K_M (per-tensor rules)");
  cmd->add_option("--type", o->type, "one type for every matrix, e.g. Q4_0");
  cmd->add_option("--vocab", o->vocab, "vocabulary size (byte-level tokens padded with control tokens)")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "random seed")->capture_default_str();
  cmd->add_option("--threads", o->threads, "generation threads (0 = all cores)")->capture_default_str();
  cmd->callback([o, &action] { action = [o] { return run_synth(*o); }; });
}

}  // namespace tandem::cli
