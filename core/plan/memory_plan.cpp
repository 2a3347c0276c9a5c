#include "core/plan/memory_plan.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace tandem::core::plan {

namespace {

struct Range {
  int32_t begin = 0, end = 0;
};

Range gpu_range(int32_t n_layer, int32_t n, bool head) { return head ? Range{n_layer - n, n_layer} : Range{0, n}; }
Range cpu_range(int32_t n_layer, int32_t n_gpu, bool head_on_gpu) {
  return head_on_gpu ? Range{0, n_layer - n_gpu} : Range{n_gpu, n_layer};
}

uint64_t layers_bytes(const Inventory& inv, Range r) {
  uint64_t b = 0;
  for (int32_t l = r.begin; l < r.end; ++l) b += inv.layer_bytes(l);
  return b;
}

// Weight values (not bytes) a token meets in the stage: the FLOPs of prefill.
double stage_values(const Inventory& inv, Range r, bool head) {
  double v = 0;
  const bool tied = inv.named_bytes("output.weight") == 0;
  for (const PlannedTensor& t : inv.tensors) {
    if (t.rows <= 1) continue;  // norms and biases
    const bool in_range = t.layer >= r.begin && t.layer < r.end && t.layer >= 0;
    const bool is_head = head && (t.name == "output.weight" || (tied && t.name == "token_embd.weight"));
    if (in_range || is_head) v += static_cast<double>(t.ne0) * static_cast<double>(t.rows);
  }
  return v;
}

std::string short_by(const char* what, uint64_t need, uint64_t have) {
  return std::string(what) + " needs " + format_gib(need) + " but has " + format_gib(have) + ": short by " +
         format_gib(need - have);
}

}  // namespace

StageBytes gpu_stage_bytes(const PlanRequest& r, int32_t n, bool head) {
  const ModelShape& s = r.shape;
  const Range g = gpu_range(s.n_layer, n, head);
  StageBytes b;
  b.layer_begin = g.begin, b.layer_end = g.end, b.head = head;
  b.weights = layers_bytes(r.gpu_source, g) + (head ? r.gpu_source.head_bytes() : 0) +
              r.gpu_source.global_bytes();
  b.kv = static_cast<uint64_t>(n) * kv_bytes_per_layer(s, r.run);
  if (n > 0 || head) {
    // The widest row and the tallest matrix the stage uploads (CudaStage::plan's max_cols / max_rows).
    int64_t max_cols = 0, max_rows = 0;
    if (n > 0) {
      max_cols = std::max<int64_t>({s.n_embd, s.q_dim(), s.n_ff});
      max_rows = std::max<int64_t>({s.n_embd, s.q_dim(), s.kv_dim(), s.n_ff});
    }
    if (head) max_cols = std::max<int64_t>(max_cols, s.n_embd), max_rows = std::max<int64_t>(max_rows, s.n_vocab);
    b.scratch = gpu_stage_scratch(s, r.run.batch, r.run.ctx, head, max_cols, max_rows).bytes;
  }
  // An empty GPU stage never touches the device: no context, no reserve.
  b.fixed = r.vram > 0 && (n > 0 || head) ? r.cuda_overhead + r.vram_reserve : 0;
  return b;
}

StageBytes cpu_stage_bytes(const PlanRequest& r, int32_t n_gpu, bool head_on_gpu) {
  const ModelShape& s = r.shape;
  const Range c = cpu_range(s.n_layer, n_gpu, head_on_gpu);
  const int32_t n = c.end - c.begin;
  StageBytes b;
  b.layer_begin = c.begin, b.layer_end = c.end, b.head = !head_on_gpu;
  b.weights = layers_bytes(r.cpu_source, c) + (b.head ? r.cpu_source.head_bytes() : 0) +
              r.cpu_source.global_bytes();
  b.kv = static_cast<uint64_t>(n) * kv_bytes_per_layer(s, r.run);
  if (n > 0 || b.head) b.scratch = cpu_stage_scratch(s, r.run.batch, b.head);
  b.fixed = r.cpu_source.embedding_bytes() + ring_bytes(s, r.run) + r.ram_reserve;
  return b;
}

MemoryPlan plan_memory(const PlanRequest& r) {
  const ModelShape& s = r.shape;
  if (s.n_layer <= 0) throw Error("model '" + s.name + "' has no layers");
  if (r.gpu_layers > s.n_layer)
    throw Error("--gpu-layers " + std::to_string(r.gpu_layers) + " is more than the model's " + std::to_string(s.n_layer) +
                " layers");
  if (r.run.batch < 1) throw Error("the batch (--max-batch-tokens) must be at least 1");
  for (const Inventory* inv : {&r.gpu_source, &r.cpu_source})
    for (int32_t l = 0; l < s.n_layer; ++l)
      if (inv->layer_bytes(l) == 0) throw Error("the model's tensors lack layer " + std::to_string(l));

  MemoryPlan p;
  bool head = r.head == HeadPlace::Gpu;
  if (r.vram == 0) {
    head = false;  // no card: everything in RAM
  } else if (r.head == HeadPlace::Auto) {
    head = gpu_stage_bytes(r, 0, true).total() <= r.vram;
  }
  int32_t n = r.gpu_layers;
  if (r.vram == 0 && n < 0) n = 0;
  if (n < 0) {
    n = 0;
    for (int32_t k = s.n_layer; k > 0; --k)
      if (gpu_stage_bytes(r, k, head).total() <= r.vram) {
        n = k;
        break;
      }
  }
  p.n_gpu_layers = n;
  p.head_on_gpu = head;
  p.gpu = gpu_stage_bytes(r, n, head);
  p.cpu = cpu_stage_bytes(r, n, head);
  p.embedding = r.cpu_source.embedding_bytes();
  p.rings = ring_bytes(s, r.run);
  p.fits_vram = r.vram > 0 ? p.gpu.total() <= r.vram : (n == 0 && !head);
  p.fits_ram = r.ram == 0 || p.cpu.total() <= r.ram;
  if (!p.fits_vram)
    p.why = r.vram > 0 ? short_by("the GPU", p.gpu.total(), r.vram) : "no VRAM budget but layers or the head on the GPU";
  if (!p.fits_ram) p.why += std::string(p.why.empty() ? "" : "; ") + short_by("RAM", p.cpu.total(), r.ram);
  return p;
}

SpeedEstimate predict_speed(const PlanRequest& r, const MemoryPlan& p, const SpeedInputs& in) {
  const ModelShape& s = r.shape;
  const uint64_t kv_tok = kv_bytes_per_token(s, r.run.kv_k, r.run.kv_v);
  const bool gpu_used = p.gpu.layers() > 0 || p.gpu.head;
  const bool cpu_used = p.cpu.layers() > 0 || p.cpu.head;
  if (gpu_used && !(in.gpu_gbps > 0 && in.gpu_efficiency > 0 && in.gpu_tflops > 0))
    throw Error("GPU bandwidth, efficiency and TFLOPS must be positive");
  if (cpu_used && !(in.cpu_gbps > 0 && in.cpu_efficiency > 0 && in.cpu_gflops > 0))
    throw Error("CPU bandwidth, efficiency and GFLOPS must be positive");
  const double gbw = in.gpu_gbps * in.gpu_efficiency * 1e9, cbw = in.cpu_gbps * in.cpu_efficiency * 1e9;
  auto step_s = [&](double ctx_pos, double& g_s, double& c_s) {
    g_s = gpu_used ? (static_cast<double>(p.gpu.weights) + kv_tok * p.gpu.layers() * ctx_pos) / gbw : 0;
    c_s = cpu_used ? (static_cast<double>(p.cpu.weights) + kv_tok * p.cpu.layers() * ctx_pos) / cbw : 0;
    return g_s + c_s + in.step_overhead_ms * 1e-3;
  };
  SpeedEstimate e;
  double g = 0, c = 0;
  e.decode_tps = 1.0 / step_s(0, g, c);
  e.gpu_ms = g * 1e3, e.cpu_ms = c * 1e3;
  e.decode_tps_full = 1.0 / step_s(r.run.ctx - 1, g, c);
  // Prefill of one batch: each side is bound by its FLOPs (2 per weight value
  // per token) or by reading its weights once, whichever is slower.
  const double B = r.run.batch;
  const Range gr{p.gpu.layer_begin, p.gpu.layer_end}, cr{p.cpu.layer_begin, p.cpu.layer_end};
  const double g_batch =
      gpu_used ? std::max(2 * stage_values(r.gpu_source, gr, p.gpu.head) * B / (in.gpu_tflops * 1e12), p.gpu.weights / gbw) : 0;
  const double c_batch =
      cpu_used ? std::max(2 * stage_values(r.cpu_source, cr, p.cpu.head) * B / (in.cpu_gflops * 1e9), p.cpu.weights / cbw) : 0;
  e.prefill_tps = B / (g_batch + c_batch + in.step_overhead_ms * 1e-3);
  return e;
}

uint64_t parse_bytes(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  const size_t num_begin = i;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  const std::string num = text.substr(num_begin, i - num_begin);
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  std::string unit;
  for (; i < text.size(); ++i) unit += static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
  const std::string bad = "'" + text + "' is not a size (say 24GiB, 64GB, 512MiB or a number of bytes)";
  if (num.empty() || std::count(num.begin(), num.end(), '.') > 1) throw Error(bad);
  double mult = 0;
  if (unit.empty() || unit == "b") mult = 1;
  else if (unit == "k" || unit == "kb") mult = 1e3;
  else if (unit == "kib") mult = 1024.0;
  else if (unit == "m" || unit == "mb") mult = 1e6;
  else if (unit == "mib") mult = 1024.0 * 1024;
  else if (unit == "g" || unit == "gb") mult = 1e9;
  else if (unit == "gib") mult = 1024.0 * 1024 * 1024;
  else if (unit == "t" || unit == "tb") mult = 1e12;
  else if (unit == "tib") mult = 1024.0 * 1024 * 1024 * 1024;
  else throw Error(bad);
  const double v = std::stod(num) * mult;
  if (!(v >= 0) || v > 1.8e19) throw Error(bad);
  return static_cast<uint64_t>(std::llround(v));
}

std::string format_gib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024 * 1024));
  return buf;
}

}  // namespace tandem::core::plan
