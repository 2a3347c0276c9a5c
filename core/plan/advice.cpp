#include "core/plan/advice.h"

#include <cstdio>

namespace tandem::core::plan {

namespace {

Inventory inventory_of(const ModelShape& s, const QuantChoice& c) {
  return c.mix ? inventory_from_mix(s, *c.mix) : inventory_from_bpw(s, c.bpw);
}

bool all_servable(const Inventory& inv, bool (*servable_type)(const std::string&)) {
  for (const PlannedTensor& t : inv.tensors)
    if (!servable_type(t.type)) return false;
  return true;
}

ComparisonRow evaluate(const PlanRequest& base, const SpeedInputs& speed, const QuantChoice& c,
                       bool (*servable_type)(const std::string&)) {
  PlanRequest r = base;
  r.gpu_source = inventory_of(base.shape, c);
  r.cpu_source = r.gpu_source;
  r.gpu_layers = -1;
  ComparisonRow row;
  row.choice = c;
  row.size = r.gpu_source.total_bytes();
  row.bits = bits_per_weight(r.gpu_source, base.shape);
  row.servable = all_servable(r.gpu_source, servable_type);
  row.plan = plan_memory(r);
  if (row.plan.fits_vram && row.plan.fits_ram) row.speed = predict_speed(r, row.plan, speed);
  return row;
}

std::string tps(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f tok/s", v);
  return buf;
}

}  // namespace

std::vector<QuantChoice> comparison_choices() {
  return {{"F16", QuantMix::F16, 0},       {"Q8_0", QuantMix::Q8_0, 0},   {"Q4_K_M", QuantMix::Q4_K_M, 0},
          {"Q3_K_M", QuantMix::Q3_K_M, 0}, {"EXL2 2.40bpw", std::nullopt, 2.4}, {"IQ2_M", QuantMix::IQ2_M, 0},
          {"IQ2_XXS", QuantMix::IQ2_XXS, 0}};
}

std::vector<ComparisonRow> compare_quantizations(const PlanRequest& base, const SpeedInputs& speed,
                                                 const std::vector<QuantChoice>& choices,
                                                 bool (*servable_type)(const std::string&)) {
  std::vector<ComparisonRow> rows;
  for (const QuantChoice& c : choices) rows.push_back(evaluate(base, speed, c, servable_type));
  return rows;
}

std::vector<Recommendation> recommend(const PlanRequest& base, const SpeedInputs& speed,
                                      const std::vector<ComparisonRow>& rows, double min_tps,
                                      bool (*servable_type)(const std::string&)) {
  std::vector<Recommendation> out;
  Recommendation gpu{"gpu-only", "", std::nullopt, base.shape.name};
  // Rows arrive best quality first (most bits): the first fully-on-GPU row
  // Tandem serves wins; failing that, the first it does not serve yet, so the
  // user still learns what would fit.
  for (bool want_servable : {true, false}) {
    for (const ComparisonRow& row : rows)
      if (row.servable == want_servable && row.speed && row.plan.fully_on_gpu()) {
        gpu.row = row;
        break;
      }
    if (gpu.row) break;
  }
  if (!gpu.row)
    gpu.title = "fastest, fully on the GPU: no quantization in the list fits on the card";
  else
    gpu.title = "fastest, fully on the GPU: " + gpu.row->choice.label + " at " + tps(gpu.row->speed->decode_tps) +
                (gpu.row->servable ? "" : " (a format Tandem does not serve yet)");
  out.push_back(gpu);

  Recommendation off{"offload", "", std::nullopt, base.shape.name};
  std::vector<ComparisonRow> fitting;
  for (QuantMix m : {QuantMix::Q8_0, QuantMix::Q6_K, QuantMix::Q5_K_M, QuantMix::Q4_K_M, QuantMix::Q3_K_M}) {
    ComparisonRow row = compare_quantizations(base, speed, {{std::string(mix_name(m)), m, 0}}, servable_type)[0];
    if (row.servable && row.speed) fitting.push_back(std::move(row));
  }
  for (const ComparisonRow& row : fitting)
    if (row.speed->decode_tps >= min_tps) {
      off.row = row;
      break;
    }
  bool slow = false;
  if (!off.row && !fitting.empty()) off.row = fitting.back(), slow = true;  // the fastest that fits
  off.title = off.row ? "best quality with CPU offload: " + off.row->choice.label + " at " + tps(off.row->speed->decode_tps) +
                            (slow ? " (below the " + tps(min_tps) + " floor: every K-quant that fits is slower)" : "")
                      : "best quality with CPU offload: no K-quant fits VRAM + RAM";
  out.push_back(off);

  if (const ModelShape* small = base.shape.smaller.empty() ? nullptr : find_preset(base.shape.smaller)) {
    PlanRequest r = base;
    r.shape = *small;
    Recommendation sm{"smaller-model", "", std::nullopt, small->name};
    sm.row = compare_quantizations(r, speed, {{"Q4_K_M", QuantMix::Q4_K_M, 0}}, servable_type)[0];
    sm.title = "smaller model at clean 4-bit: " + small->name + " Q4_K_M" +
               (sm.row->speed ? " at " + tps(sm.row->speed->decode_tps) : std::string(" (does not fit)"));
    out.push_back(sm);
  }
  return out;
}

}  // namespace tandem::core::plan
