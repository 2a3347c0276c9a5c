#pragma once
// The comparison a user needs before downloading a 70B: the same model at
// each common quantization, its size, whether it fits on the card, how the
// service would split it and how fast it would decode; then three
// recommendations drawn from those rows (nothing typed in: every number comes
// from the quantization rules and the plan).
#include <optional>
#include <string>
#include <vector>

#include "core/plan/memory_plan.h"

namespace tandem::core::plan {

struct QuantChoice {
  std::string label;           // "Q4_K_M", "EXL2 2.40bpw"
  std::optional<QuantMix> mix; // empty for a bits-per-weight choice
  double bpw = 0;              // for the EXL2 row
};

// FP16, Q8_0, Q4_K_M, Q3_K_M, EXL2 2.4 bpw, IQ2_M, IQ2_XXS: the list
// plus IQ2_M, the usual "2.7 bpw" file.
std::vector<QuantChoice> comparison_choices();

struct ComparisonRow {
  QuantChoice choice;
  uint64_t size = 0;       // tensor bytes
  double bits = 0;         // bits per weight
  bool servable = false;   // every tensor type has a kernel in Tandem today
  MemoryPlan plan;         // the split under the request's budgets
  std::optional<SpeedEstimate> speed;  // when the plan fits
};

// `base` supplies budgets, run shape and head placement; its inventories are
// replaced by each choice's. `servable_type(type name)` says whether Tandem
// can run a tensor type.
std::vector<ComparisonRow> compare_quantizations(const PlanRequest& base, const SpeedInputs& speed,
                                                 const std::vector<QuantChoice>& choices,
                                                 bool (*servable_type)(const std::string&));

struct Recommendation {
  std::string kind;   // "gpu-only" | "offload" | "smaller-model"
  std::string title;  // one line a person reads
  std::optional<ComparisonRow> row;
  std::string model;  // the preset the row is for
};

// fastest fully on the GPU: the highest-quality servable choice whose plan
// is fully on the card; best-quality offload: the highest-quality servable
// K-quant or Q8_0 that fits VRAM + RAM and decodes at least min_tps;
// smaller model: the family's smaller preset at Q4_K_M, when there is one.
std::vector<Recommendation> recommend(const PlanRequest& base, const SpeedInputs& speed,
                                      const std::vector<ComparisonRow>& rows, double min_tps,
                                      bool (*servable_type)(const std::string&));

}  // namespace tandem::core::plan
