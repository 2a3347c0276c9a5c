// `tandem plan`: before anything is loaded, where every byte would go — the
// split between the GPU worker and the CPU worker under --vram and --ram, the
// bytes per device, the predicted speed — and, for the model's shape, the
// same at each common quantization with three recommendations.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "core/error.h"
#include "core/model_compat.h"
#include "core/model_config.h"
#include "core/plan/advice.h"
#include "core/plan/memory_plan.h"
#include "cpu_worker/throughput_probe.h"
#include "tools/cli_common.h"

namespace tandem::cli {

namespace {

namespace plan = core::plan;
using nlohmann::json;

struct PlanOptions {
  std::string model, gpu_model, cpu_model;
  std::string preset, quant;
  std::string vram = "0", ram;  // ram empty: this machine's MemTotal
  int ctx = 4096;
  std::string kv, cache_type_k = "f16", cache_type_v = "f16";
  int sequences = 1, batch = 512;
  std::string head = "auto";
  int gpu_layers = -1;
  double gpu_bw = 1008, gpu_eff = 0.75, gpu_tflops = 165;
  double cpu_bw = 0, cpu_eff = 0.55, cpu_gflops = 0;
  double step_ms = 1.9;
  int threads = 0;
  std::string cuda_overhead = "512MiB", vram_reserve = "512MiB", ram_reserve = "1GiB";
  double min_tps = 2.0;
  bool compare = true, json = false;
  // Hyperparameters: override the preset's, or with --preset custom give them all.
  int n_layer = 0, n_embd = 0, n_ff = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_vocab = 0;
  std::string arch;
  bool tied = false;
};

// --preset custom or a preset with some hyperparameters changed.
plan::ModelShape shape_for(const PlanOptions& o) {
  plan::ModelShape s;
  if (o.preset == "custom") {
    s.name = "custom";
    if (o.n_layer <= 0 || o.n_embd <= 0 || o.n_ff <= 0 || o.n_head <= 0 || o.n_head_kv <= 0 || o.n_vocab <= 0)
      throw core::Error("--preset custom needs --n-layer, --n-embd, --n-ff, --n-head, --n-head-kv and --n-vocab");
  } else {
    const plan::ModelShape* p = plan::find_preset(o.preset);
    if (!p) throw core::Error("unknown --preset '" + o.preset + "' (known: " + plan::preset_names() + ", custom)");
    s = *p;
  }
  auto set = [&s](int v, int32_t& field) {
    if (v > 0) field = v, s.smaller.clear();  // another shape: the family's sibling no longer applies
  };
  set(o.n_layer, s.n_layer), set(o.n_embd, s.n_embd), set(o.n_ff, s.n_ff), set(o.n_head, s.n_head);
  set(o.n_head_kv, s.n_head_kv), set(o.n_vocab, s.n_vocab), set(o.head_dim, s.head_dim);
  if (o.head_dim <= 0 && (o.n_embd > 0 || o.n_head > 0 || s.head_dim == 0)) s.head_dim = s.n_embd / s.n_head;
  if (!o.arch.empty()) {
    if (o.arch != "llama" && o.arch != "qwen2") throw core::Error("--arch must be llama or qwen2 (got '" + o.arch + "')");
    s.arch = o.arch;
    s.qkv_bias = o.arch == "qwen2";
  }
  if (o.tied) s.tied_output = true, s.smaller.clear();
  if (s.n_head_kv > s.n_head || s.n_head % s.n_head_kv != 0)
    throw core::Error("--n-head-kv must divide --n-head (" + std::to_string(s.n_head) + " heads, " +
                      std::to_string(s.n_head_kv) + " KV heads)");
  if (s.head_dim <= 0) throw core::Error("head_dim must be positive (give --head-dim)");
  return s;
}

uint64_t mem_total() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit)
    if (key == "MemTotal:") return kib * 1024;
  throw core::Error("cannot read MemTotal from /proc/meminfo: give --ram");
}

// Both workers can run the type: the CPU worker needs a dot product, the GPU
// worker a CUDA kernel (gpu_worker/cuda/gemv.cu lists what it reads). Every
// weight type with a dot product has both, the i-quants included: their CUDA
// kernels (gemv_iquants.cu) are compiled and their block decoders checked
// bit for bit against the reference on the host, but they have not yet run
// on a GPU.
bool servable(const std::string& type_name) {
  const auto t = core::quant::type_from_name(type_name);
  if (!t) return false;  // "2.40bpw": a format Tandem does not read
  const core::quant::TypeTraits& tr = core::quant::traits(*t);
  return !tr.quantized || tr.vec_dot != nullptr;
}

core::quant::Type kv_type(const std::string& name, const char* flag) {
  const auto t = core::quant::type_from_name(name);
  if (!t) throw core::Error(std::string("unknown KV cache type for ") + flag + ": '" + name + "'");
  return *t;
}

struct Source {
  std::string description;  // what the plan was made from, in words
  plan::ModelShape shape;
  plan::Inventory gpu, cpu;
};

Source load_source(const PlanOptions& o) {
  Source s;
  const bool files = !o.model.empty() || !o.gpu_model.empty() || !o.cpu_model.empty();
  if (files && !o.preset.empty())
    throw core::Error("give a model (--model FILE, or --gpu-model A --cpu-model B) or a --preset, not both");
  const bool shape_flags = o.n_layer || o.n_embd || o.n_ff || o.n_head || o.n_head_kv || o.head_dim || o.n_vocab ||
                           !o.arch.empty() || o.tied;
  if (shape_flags && o.preset.empty())
    throw core::Error("--n-layer, --n-embd, ... change a --preset (or describe a --preset custom), not a file");
  if (!o.preset.empty()) {
    if (o.quant.empty()) throw core::Error("--preset needs --quant (a llama-quantize mix such as Q4_K_M or IQ2_XXS)");
    const auto mix = core::mix_from_name(o.quant);
    if (!mix) throw core::Error("unknown --quant '" + o.quant + "' (a llama-quantize mix such as Q4_K_M)");
    s.shape = shape_for(o);
    s.gpu = plan::inventory_from_mix(s.shape, *mix);
    s.cpu = s.gpu;
    s.description = s.shape.name + (shape_flags ? " (preset, changed)" : " (preset)") + " at " +
                    std::string(core::mix_name(*mix)) + " (llama-quantize's per-tensor rules)";
    return s;
  }
  if (!o.quant.empty()) throw core::Error("--quant is for --preset; a file's tensors already have their types");
  // As in the service: -m is both shards' file unless --gpu-model or
  // --cpu-model names another; nothing named is the default model.
  const std::string gpath = resolve_model(o.gpu_model.empty() ? o.model : o.gpu_model);
  const std::string cpath = resolve_model(o.cpu_model.empty() ? o.model : o.cpu_model);
  const auto gf = core::gguf::File::open(gpath);
  std::unique_ptr<core::gguf::File> cf;
  if (cpath != gpath) {
    cf = core::gguf::File::open(cpath);
    core::check_same_model(*gf, *cf);
  }
  s.shape = plan::shape_from_config(core::config_from_gguf(*gf));
  for (const plan::ModelShape& p : plan::presets())  // a known model keeps its family's smaller sibling
    if (p.arch == s.shape.arch && p.n_layer == s.shape.n_layer && p.n_embd == s.shape.n_embd && p.n_ff == s.shape.n_ff &&
        p.n_vocab == s.shape.n_vocab)
      s.shape.smaller = p.smaller;
  s.gpu = plan::inventory_from_gguf(*gf);
  s.cpu = cf ? plan::inventory_from_gguf(*cf) : s.gpu;
  s.description = cf ? "GPU layers from " + gpath + ", CPU layers from " + cpath : gpath;
  return s;
}

std::string gib(uint64_t b) { return plan::format_gib(b); }

std::string layers_text(const plan::StageBytes& b) {
  std::string t = b.layers() > 0 ? "[" + std::to_string(b.layer_begin) + ", " + std::to_string(b.layer_end) + ") " +
                                       std::to_string(b.layers())
                                 : "none";
  return t + (b.head ? " + head" : "");
}

json stage_json(const plan::StageBytes& b, uint64_t budget) {
  return {{"layer_begin", b.layer_begin}, {"layer_end", b.layer_end}, {"head", b.head},     {"weights_bytes", b.weights},
          {"kv_bytes", b.kv},             {"scratch_bytes", b.scratch}, {"fixed_bytes", b.fixed}, {"total_bytes", b.total()},
          {"budget_bytes", budget},       {"free_bytes", static_cast<int64_t>(budget) - static_cast<int64_t>(b.total())}};
}

json speed_json(const std::optional<plan::SpeedEstimate>& e) {
  if (!e) return nullptr;
  return {{"decode_tps", e->decode_tps}, {"decode_tps_full_context", e->decode_tps_full}, {"prefill_tps", e->prefill_tps},
          {"gpu_ms_per_token", e->gpu_ms}, {"cpu_ms_per_token", e->cpu_ms}};
}

json row_json(const plan::ComparisonRow& r) {
  return {{"quant", r.choice.label},
          {"bits_per_weight", r.bits},
          {"size_bytes", r.size},
          {"served_by_tandem", r.servable},
          {"fully_on_gpu", r.plan.fully_on_gpu()},
          {"fits", r.plan.fits_vram && r.plan.fits_ram},
          {"gpu_layers", r.plan.n_gpu_layers},
          {"head_on_gpu", r.plan.head_on_gpu},
          {"speed", speed_json(r.speed)}};
}

void print_stage_table(const plan::MemoryPlan& p, uint64_t vram, uint64_t ram) {
  auto line = [](const char* what, const std::string& g, const std::string& c) {
    std::printf("  %-22s %-22s %-22s\n", what, g.c_str(), c.c_str());
  };
  line("", "GPU worker (VRAM)", "CPU worker + coord (RAM)");
  line("layers", layers_text(p.gpu), layers_text(p.cpu));
  line("weights", gib(p.gpu.weights), gib(p.cpu.weights));
  line("KV cache", gib(p.gpu.kv), gib(p.cpu.kv));
  line("scratch", gib(p.gpu.scratch), gib(p.cpu.scratch));
  line("fixed", gib(p.gpu.fixed) + (vram ? " (CUDA)" : ""), gib(p.cpu.fixed) + " (embd, rings)");
  line("total", gib(p.gpu.total()), gib(p.cpu.total()));
  auto free_text = [](uint64_t budget, uint64_t used) {
    if (budget == 0) return std::string("-");
    return used <= budget ? gib(budget - used) + " of " + gib(budget) : "-" + gib(used - budget) + " of " + gib(budget);
  };
  line("free", free_text(vram, p.gpu.total()), ram ? free_text(ram, p.cpu.total()) : "unlimited");
}

int run_plan(const PlanOptions& o) {
  Source src = load_source(o);
  plan::PlanRequest req;
  req.shape = src.shape;
  req.gpu_source = src.gpu;
  req.cpu_source = src.cpu;
  if (o.ctx < 1 || o.sequences < 1 || o.batch < 1) throw core::Error("--ctx, --max-sequences and --max-batch-tokens must be >= 1");
  req.run.ctx = o.ctx;
  req.run.sequences = o.sequences;
  req.run.batch = o.batch;
  req.run.kv_k = kv_type(o.kv.empty() ? o.cache_type_k : o.kv, o.kv.empty() ? "--cache-type-k" : "--kv");
  req.run.kv_v = kv_type(o.kv.empty() ? o.cache_type_v : o.kv, o.kv.empty() ? "--cache-type-v" : "--kv");
  if (o.head != "gpu" && o.head != "cpu" && o.head != "auto") throw core::Error("--head must be gpu, cpu or auto (got '" + o.head + "')");
  req.head = o.head == "gpu" ? plan::HeadPlace::Gpu : o.head == "cpu" ? plan::HeadPlace::Cpu : plan::HeadPlace::Auto;
  req.gpu_layers = o.gpu_layers;
  req.vram = plan::parse_bytes(o.vram);
  req.ram = o.ram.empty() ? mem_total() : plan::parse_bytes(o.ram);
  req.cuda_overhead = plan::parse_bytes(o.cuda_overhead);
  req.vram_reserve = plan::parse_bytes(o.vram_reserve);
  req.ram_reserve = plan::parse_bytes(o.ram_reserve);

  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  plan::SpeedInputs in;
  in.gpu_gbps = o.gpu_bw, in.gpu_efficiency = o.gpu_eff, in.gpu_tflops = o.gpu_tflops;
  in.cpu_efficiency = o.cpu_eff, in.step_overhead_ms = o.step_ms;
  const bool measured = o.cpu_bw <= 0;
  in.cpu_gbps = measured ? cpu::read_probe_gbps(threads, size_t{256} << 20, 3) : o.cpu_bw;
  // 50 GFLOPS per thread: the CPU worker's Q4_K_M prefill on the 70B-shaped
  // file, 26.6 tok/s × 3.95 GFLOP per token on 2 Zen 1 threads (PERFORMANCE.md).
  in.cpu_gflops = o.cpu_gflops > 0 ? o.cpu_gflops : 50.0 * threads;

  const plan::MemoryPlan p = plan::plan_memory(req);
  std::optional<plan::SpeedEstimate> speed;
  if (p.fits_vram && p.fits_ram) speed = plan::predict_speed(req, p, in);
  std::vector<plan::ComparisonRow> rows;
  std::vector<plan::Recommendation> recs;
  if (o.compare) {
    rows = plan::compare_quantizations(req, in, plan::comparison_choices(), servable);
    recs = plan::recommend(req, in, rows, o.min_tps, servable);
  }
  const uint64_t kv_tok = plan::kv_bytes_per_token(src.shape, req.run.kv_k, req.run.kv_v);
  const std::string kv_names = std::string(core::quant::type_name(req.run.kv_k)) + "/" +
                               std::string(core::quant::type_name(req.run.kv_v));

  if (o.json) {
    json j = {{"model", src.description},
              {"shape",
               {{"name", src.shape.name}, {"arch", src.shape.arch}, {"n_layer", src.shape.n_layer},
                {"n_embd", src.shape.n_embd}, {"n_ff", src.shape.n_ff}, {"n_head", src.shape.n_head},
                {"n_head_kv", src.shape.n_head_kv}, {"n_vocab", src.shape.n_vocab}, {"params", src.shape.params()}}},
              {"weights_bytes", {{"gpu_source", src.gpu.total_bytes()}, {"cpu_source", src.cpu.total_bytes()}}},
              {"run", {{"ctx", o.ctx}, {"sequences", o.sequences}, {"batch", o.batch}, {"kv", kv_names},
                       {"kv_bytes_per_token_per_layer", kv_tok}}},
              {"split", {{"gpu_layers", p.n_gpu_layers}, {"head_on_gpu", p.head_on_gpu}, {"fits_vram", p.fits_vram},
                         {"fits_ram", p.fits_ram}, {"why", p.why}}},
              {"gpu", stage_json(p.gpu, req.vram)},
              {"cpu", stage_json(p.cpu, req.ram)},
              {"speed", speed_json(speed)},
              {"speed_inputs", {{"gpu_gbps", in.gpu_gbps}, {"gpu_efficiency", in.gpu_efficiency}, {"gpu_tflops", in.gpu_tflops},
                                {"cpu_gbps", in.cpu_gbps}, {"cpu_gbps_measured", measured}, {"cpu_efficiency", in.cpu_efficiency},
                                {"cpu_gflops", in.cpu_gflops}, {"step_overhead_ms", in.step_overhead_ms}}}};
    json cmp = json::array(), rj = json::array();
    for (const auto& r : rows) cmp.push_back(row_json(r));
    for (const auto& r : recs)
      rj.push_back({{"kind", r.kind}, {"model", r.model}, {"title", r.title}, {"row", r.row ? row_json(*r.row) : json(nullptr)}});
    j["comparison"] = cmp;
    j["recommendations"] = rj;
    print_json(j);
    return p.fits_vram && p.fits_ram ? 0 : 3;
  }

  const plan::ModelShape& s = src.shape;
  std::printf("model    %s\n", src.description.c_str());
  std::printf("shape    %d layers, d %d, ffn %d, %d heads / %d KV heads, vocab %d: %.2f B weights\n", s.n_layer, s.n_embd,
              s.n_ff, s.n_head, s.n_head_kv, s.n_vocab, static_cast<double>(s.params()) / 1e9);
  std::printf("weights  %s (%.2f bpw)%s\n", gib(src.gpu.total_bytes()).c_str(), plan::bits_per_weight(src.gpu, s),
              src.cpu.total_bytes() != src.gpu.total_bytes() ? (", CPU file " + gib(src.cpu.total_bytes())).c_str() : "");
  std::printf("run      context %d x %d sequence(s), KV %s (%.1f KiB per token over all layers), batch %d\n\n", o.ctx,
              o.sequences, kv_names.c_str(), static_cast<double>(kv_tok) * s.n_layer / 1024.0, o.batch);
  print_stage_table(p, req.vram, req.ram);
  std::printf("\nsplit    --gpu-layers %d --head %s%s\n", p.n_gpu_layers, p.head_on_gpu ? "gpu" : "cpu",
              p.fully_on_gpu() ? "   (fully on the GPU)" : "");
  if (!p.why.empty()) std::printf("DOES NOT FIT: %s\n", p.why.c_str());
  if (speed)
    std::printf("speed    decode %.1f tok/s (empty context), %.1f tok/s (at %d); prefill %.0f tok/s (batches of %d)\n",
                speed->decode_tps, speed->decode_tps_full, o.ctx, speed->prefill_tps, o.batch);
  std::printf("         from GPU %.0f GB/s x %.2f, %.0f TFLOPS (given); CPU %.1f GB/s x %.2f (%s), %.0f GFLOPS; %.1f ms per step\n",
              in.gpu_gbps, in.gpu_efficiency, in.gpu_tflops, in.cpu_gbps, in.cpu_efficiency,
              measured ? ("measured here, " + std::to_string(threads) + " threads").c_str() : "given", in.cpu_gflops,
              in.step_overhead_ms);
  if (!rows.empty()) {
    std::printf("\n%s at each quantization (VRAM %s, RAM %s, context %d, KV %s):\n", s.name.c_str(), gib(req.vram).c_str(),
                gib(req.ram).c_str(), o.ctx, kv_names.c_str());
    std::printf("  %-13s %6s %11s  %-13s %-16s %s\n", "quant", "bpw", "size", "on the GPU", "split", "decode");
    for (const auto& r : rows) {
      const std::string where = r.plan.fully_on_gpu() ? "fully" : (r.plan.fits_vram && r.plan.fits_ram) ? "partly" : "does not fit";
      const std::string split = r.plan.fits_vram && r.plan.fits_ram
                                    ? std::to_string(r.plan.n_gpu_layers) + "/" + std::to_string(s.n_layer) +
                                          (r.plan.head_on_gpu ? " + head" : "")
                                    : "-";
      char dec[48] = "-";
      if (r.speed) std::snprintf(dec, sizeof dec, "%.1f tok/s", r.speed->decode_tps);
      std::printf("  %-13s %6.2f %11s  %-13s %-16s %s%s\n", r.choice.label.c_str(), r.bits, gib(r.size).c_str(),
                  where.c_str(), split.c_str(), dec, r.servable ? "" : "  (not served by Tandem yet)");
    }
    std::printf("\nrecommendations:\n");
    for (const auto& r : recs) {
      std::printf("  - %s\n", r.title.c_str());
      if (r.row && r.row->speed)
        std::printf("      %s, %.2f bpw, --gpu-layers %d --head %s, prefill %.0f tok/s\n", gib(r.row->size).c_str(),
                    r.row->bits, r.row->plan.n_gpu_layers, r.row->plan.head_on_gpu ? "gpu" : "cpu", r.row->speed->prefill_tps);
    }
  }
  return p.fits_vram && p.fits_ram ? 0 : 3;
}

}  // namespace

void register_plan(CLI::App& app, Action& action) {
  auto o = std::make_shared<PlanOptions>();
  auto* cmd = app.add_subcommand("plan", "what fits where before loading: split, bytes per device, predicted speed");
  cmd->add_option("-m,--model", o->model, "GGUF file to plan for (default: the cached SmolLM2)");
  cmd->add_option("--gpu-model", o->gpu_model, "GGUF file the GPU worker loads its layers from");
  cmd->add_option("--cpu-model", o->cpu_model, "GGUF file the CPU worker loads its layers from (same model, other quant)");
  cmd->add_option("--preset", o->preset, "plan without a file: " + core::plan::preset_names());
  cmd->add_option("--n-layer", o->n_layer, "with --preset: layers (--preset custom: give every --n-* option)");
  cmd->add_option("--n-embd", o->n_embd, "with --preset: model width");
  cmd->add_option("--n-ff", o->n_ff, "with --preset: feed-forward width");
  cmd->add_option("--n-head", o->n_head, "with --preset: attention heads");
  cmd->add_option("--n-head-kv", o->n_head_kv, "with --preset: KV heads (GQA)");
  cmd->add_option("--head-dim", o->head_dim, "with --preset: values per head (default n_embd / n_head)");
  cmd->add_option("--n-vocab", o->n_vocab, "with --preset: vocabulary size");
  cmd->add_option("--arch", o->arch, "with --preset: llama or qwen2 (Q/K/V biases)");
  cmd->add_flag("--tied", o->tied, "with --preset: the output head reuses the token embedding");
  cmd->add_option("--quant", o->quant, "with --preset: llama-quantize mix (Q4_K_M, Q3_K_M, IQ2_XXS, F16, ...)");
  cmd->add_option("--vram", o->vram, "the card's memory, e.g. 24GiB (0: no GPU)")->capture_default_str();
  cmd->add_option("--ram", o->ram, "RAM Tandem may use, e.g. 64GiB (default: this machine's total)");
  cmd->add_option("-c,--ctx", o->ctx, "context per sequence")->capture_default_str();
  cmd->add_option("--kv", o->kv, "KV cache type for K and V: f16, q8_0, q4_0, ...");
  cmd->add_option("--cache-type-k", o->cache_type_k, "K cache type")->capture_default_str();
  cmd->add_option("--cache-type-v", o->cache_type_v, "V cache type")->capture_default_str();
  cmd->add_option("--max-sequences", o->sequences, "concurrent sequences (KV slots)")->capture_default_str();
  cmd->add_option("--max-batch-tokens", o->batch, "rows per pipeline step")->capture_default_str();
  cmd->add_option("--head", o->head, "output head on gpu, cpu or auto (the GPU when it fits)")->capture_default_str();
  cmd->add_option("--gpu-layers", o->gpu_layers, "plan this many GPU layers instead of the most that fit");
  cmd->add_option("--gpu-bw", o->gpu_bw, "GPU memory bandwidth, GB/s (default: RTX 4090)")->capture_default_str();
  cmd->add_option("--gpu-efficiency", o->gpu_eff, "fraction of it a decode step reaches")->capture_default_str();
  cmd->add_option("--gpu-tflops", o->gpu_tflops, "GPU fp16 TFLOPS for prefill")->capture_default_str();
  cmd->add_option("--cpu-bw", o->cpu_bw, "CPU read bandwidth, GB/s (default: measured now, as tandem bench bandwidth)");
  cmd->add_option("--cpu-efficiency", o->cpu_eff, "fraction of it a decode step reaches")->capture_default_str();
  cmd->add_option("--cpu-gflops", o->cpu_gflops, "CPU worker prefill GFLOPS (default: 50 per thread)");
  cmd->add_option("-t,--threads", o->threads, "CPU worker threads (0: all cores)")->capture_default_str();
  cmd->add_option("--step-overhead-ms", o->step_ms, "coordinator + shared-memory cost per pipeline step")->capture_default_str();
  cmd->add_option("--cuda-overhead", o->cuda_overhead, "CUDA context and cuBLAS outside our allocations")->capture_default_str();
  cmd->add_option("--vram-reserve", o->vram_reserve, "VRAM the GPU worker keeps free")->capture_default_str();
  cmd->add_option("--ram-reserve", o->ram_reserve, "RAM kept for code, stacks, allocator slack")->capture_default_str();
  cmd->add_option("--min-tps", o->min_tps, "slowest decode the offload recommendation accepts")->capture_default_str();
  cmd->add_flag("!--no-compare", o->compare, "skip the comparison across quantizations");
  cmd->add_flag("--json", o->json, "one JSON document instead of the tables");
  cmd->callback([o, &action] { action = [o] { return run_plan(*o); }; });
}

}  // namespace tandem::cli
