#pragma once
// The coordinator's Prometheus metrics (names and meanings: docs/metrics.md).
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>

namespace tandem::services {

struct CoordinatorMetrics {
  explicit CoordinatorMetrics(prometheus::Registry& r);

  // outcome: ok, cancelled, deadline_exceeded, invalid_argument,
  // resource_exhausted, unavailable, internal.
  void request_done(const std::string& outcome) { requests.Add({{"outcome", outcome}}).Increment(); }

  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Counter& prompt_tokens;
  prometheus::Counter& generated_tokens;
  prometheus::Histogram& ttft;
  prometheus::Histogram& inter_token;
  prometheus::Histogram& e2e;
  prometheus::Histogram& queue_time;
  prometheus::Histogram& step;
  prometheus::Histogram& batch_rows;
  prometheus::Gauge& running;
  prometheus::Gauge& waiting;
  prometheus::Gauge& kv_slots_used;
  prometheus::Gauge& kv_slots_total;
  prometheus::Gauge& pipeline_up;
  prometheus::Family<prometheus::Counter>& restarts;
  // One series, value 1: model (--model-name), file (basename), quant (the
  // file type). Dashboards pick instances by model through it.
  prometheus::Family<prometheus::Gauge>& model_info;
};

}  // namespace tandem::services
