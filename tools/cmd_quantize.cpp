// `tandem quantize`: re-quantizes a GGUF model into one type or a
// llama-quantize mix with our reference kernels, so a model can be tried in
// another format without llama.cpp at hand. Every matrix goes through f32,
// so the result is never more precise than the input.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "core/error.h"
#include "core/quant_mix.h"
#include "core/quant_types.h"
#include "core/requantize.h"
#include "tools/cli_common.h"

namespace tandem::cli {

namespace {

struct QuantizeOptions {
  std::string in;
  std::string out;
  std::string type;
  std::string mix;
  int threads = 0;
};

double mib(uint64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

int run_quantize(const QuantizeOptions& o) {
  if (o.mix.empty() == o.type.empty()) throw core::Error("give exactly one of --type (e.g. Q8_0) or --mix (e.g. Q4_K_M)");
  core::RequantizeOptions r;
  r.threads = o.threads;
  if (!o.mix.empty()) {
    r.mix = core::mix_from_name(o.mix);
    if (!r.mix) throw core::Error("unknown --mix '" + o.mix + "'");
  } else {
    r.type = core::quant::type_from_name(o.type);
    if (!r.type) throw core::Error("unknown --type '" + o.type + "'");
  }
  const core::RequantizeReport rep = core::requantize_gguf(o.in, o.out, r);
  std::printf("%s: %d tensors converted, %d kept, %.2f MiB -> %.2f MiB\n", o.out.c_str(), rep.converted, rep.kept,
              mib(rep.bytes_in), mib(rep.bytes_out));
  return 0;
}

}  // namespace

void register_quantize(CLI::App& app, Action& action) {
  auto o = std::make_shared<QuantizeOptions>();
  auto* cmd = app.add_subcommand("quantize", "re-quantize a GGUF model into another type or llama-quantize mix");
  cmd->add_option("input", o->in, "GGUF file to read")->required();
  cmd->add_option("output", o->out, "GGUF file to write (not the input)")->required();
  cmd->add_option("--type", o->type, "one type for every matrix, e.g. Q8_0, Q4_0, F16");
  cmd->add_option("--mix", o->mix, "llama-quantize file type, e.g. Q4_K_M, Q3_K_M (per-tensor rules)");
  cmd->add_option("--threads", o->threads, "conversion threads (0 = all cores)")->capture_default_str();
  cmd->callback([o, &action] { action = [o] { return run_quantize(*o); }; });
}

}  // namespace tandem::cli
