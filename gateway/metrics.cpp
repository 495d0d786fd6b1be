#include "gateway/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace modelgate::gateway {

struct Metrics::Families {
  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Family<prometheus::Histogram>& duration;
  prometheus::Family<prometheus::Counter>& dropped;
  prometheus::Gauge& client_connections;
};

namespace {

// From 5 ms to 10 minutes: embeddings answer in milliseconds, long
// generations and cold starts take minutes.
const prometheus::Histogram::BucketBoundaries kDurationBuckets = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};

}  // namespace

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& requests = prometheus::BuildCounter()
                       .Name("modelgate_requests_total")
                       .Help("Requests answered, by deployment, endpoint and HTTP status code.")
                       .Register(*registry_);
  auto& duration = prometheus::BuildHistogram()
                       .Name("modelgate_request_duration_seconds")
                       .Help("Time from a request's last byte received to its last byte sent.")
                       .Register(*registry_);
  auto& dropped = prometheus::BuildCounter()
                      .Name("modelgate_requests_dropped_total")
                      .Help("Requests that ended without a complete response, by reason.")
                      .Register(*registry_);
  auto& connections = prometheus::BuildGauge()
                          .Name("modelgate_client_connections")
                          .Help("Open client connections.")
                          .Register(*registry_);
  prometheus::BuildGauge()
      .Name("modelgate_build_info")
      .Help("Build information; the value is always 1.")
      .Register(*registry_)
      .Add({{"version", MODELGATE_VERSION}})
      .Set(1);
  families_.reset(new Families{requests, duration, dropped, connections.Add({})});
}

Metrics::~Metrics() = default;

void Metrics::record_request(std::string_view deployment, std::string_view endpoint, int status,
                             std::chrono::duration<double> duration) {
  std::string deployment_label(deployment);
  std::string endpoint_label(endpoint);
  families_->requests
      .Add({{"deployment", deployment_label},
            {"endpoint", endpoint_label},
            {"code", std::to_string(status)}})
      .Increment();
  families_->duration
      .Add({{"deployment", deployment_label}, {"endpoint", endpoint_label}}, kDurationBuckets)
      .Observe(duration.count());
}

void Metrics::record_dropped(std::string_view deployment, std::string_view reason) {
  families_->dropped
      .Add({{"deployment", std::string(deployment)}, {"reason", std::string(reason)}})
      .Increment();
}

void Metrics::client_connection_opened() { families_->client_connections.Increment(); }

void Metrics::client_connection_closed() { families_->client_connections.Decrement(); }

std::string Metrics::serialize() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace modelgate::gateway
