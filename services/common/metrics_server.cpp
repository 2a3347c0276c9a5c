#include "services/common/metrics_server.h"

#include <exception>

#include "core/error.h"

namespace tandem::services {

MetricsServer::MetricsServer(const std::string& bind) : registry_(std::make_shared<prometheus::Registry>()) {
  const auto colon = bind.rfind(':');
  if (colon == std::string::npos) throw core::Error("metrics address '" + bind + "' must be HOST:PORT");
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(bind, 2);
  } catch (const std::exception& e) {
    throw core::Error("cannot serve metrics on '" + bind + "': " + e.what());
  }
  exposer_->RegisterCollectable(registry_);
  const auto ports = exposer_->GetListeningPorts();
  std::string host = bind.substr(0, colon);
  if (host.empty() || host == "0.0.0.0" || host == "[::]") host = "127.0.0.1";
  url_ = "http://" + host + ":" + std::to_string(ports.empty() ? 0 : ports.front()) + "/metrics";
}

const prometheus::Histogram::BucketBoundaries& latency_buckets() {
  static const prometheus::Histogram::BucketBoundaries b = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                            0.25,   0.5,   1.0,    2.5,   5.0,  10.0,  30.0, 60.0};
  return b;
}

}  // namespace tandem::services
