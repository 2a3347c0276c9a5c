#include "services/coordinator/coordinator_metrics.h"

#include "services/common/metrics_server.h"

namespace tandem::services {

namespace {
prometheus::Histogram& histogram(prometheus::Registry& r, const std::string& name, const std::string& help,
                                 const prometheus::Histogram::BucketBoundaries& b) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(r).Add({}, b);
}
prometheus::Gauge& gauge(prometheus::Registry& r, const std::string& name, const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
}
prometheus::Counter& counter(prometheus::Registry& r, const std::string& name, const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r).Add({});
}
}  // namespace

CoordinatorMetrics::CoordinatorMetrics(prometheus::Registry& r)
    : requests(prometheus::BuildCounter()
                   .Name("tandem_requests_total")
                   .Help("Finished generation requests by outcome (the gRPC status, lower case)")
                   .Register(r)),
      prompt_tokens(counter(r, "tandem_prompt_tokens_total", "Prompt tokens of admitted requests")),
      generated_tokens(counter(r, "tandem_generated_tokens_total", "Tokens generated (sampled)")),
      ttft(histogram(r, "tandem_time_to_first_token_seconds", "Request accepted -> first token sampled", latency_buckets())),
      inter_token(histogram(r, "tandem_inter_token_latency_seconds", "Time between consecutive tokens of a request",
                            latency_buckets())),
      e2e(histogram(r, "tandem_request_duration_seconds", "Request accepted -> stream finished", latency_buckets())),
      queue_time(histogram(r, "tandem_queue_time_seconds", "Request accepted -> given a KV slot", latency_buckets())),
      step(histogram(r, "tandem_pipeline_step_seconds", "One batch through both workers (embedded rows in, logits out)",
                     latency_buckets())),
      batch_rows(histogram(r, "tandem_batch_rows", "Rows (tokens) per pipeline step",
                           {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024})),
      running(gauge(r, "tandem_requests_running", "Requests holding a KV slot")),
      waiting(gauge(r, "tandem_requests_waiting", "Requests queued for a KV slot")),
      kv_slots_used(gauge(r, "tandem_kv_slots_in_use", "KV sequence slots in use")),
      kv_slots_total(gauge(r, "tandem_kv_slots", "KV sequence slots (max concurrent sequences)")),
      pipeline_up(gauge(r, "tandem_pipeline_up", "1 when both workers are up and connected")),
      restarts(prometheus::BuildCounter()
                   .Name("tandem_worker_restarts_total")
                   .Help("Worker processes restarted: by the supervisor, or (attach mode) found restarted")
                   .Register(r)),
      model_info(prometheus::BuildGauge()
                     .Name("tandem_model_info")
                     .Help("The served model (value 1): model name, GGUF file name, file type")
                     .Register(r)) {}

}  // namespace tandem::services
