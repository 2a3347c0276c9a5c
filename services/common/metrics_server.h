#pragma once
// A Prometheus /metrics endpoint (prometheus-cpp's civetweb exposer) with one
// registry. Every Tandem process runs one.
#include <prometheus/exposer.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

namespace tandem::services {

class MetricsServer {
 public:
  // bind: "HOST:PORT" (PORT 0 picks a free one). Throws core::Error naming
  // the address when it cannot listen.
  explicit MetricsServer(const std::string& bind);
  prometheus::Registry& registry() { return *registry_; }
  // http://HOST:PORT/metrics with the port actually bound.
  const std::string& url() const { return url_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::string url_;
};

// Latency buckets (seconds) shared by every histogram: 0.5 ms .. 60 s.
const prometheus::Histogram::BucketBoundaries& latency_buckets();

}  // namespace tandem::services
