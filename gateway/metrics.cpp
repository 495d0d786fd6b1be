#include "gateway/metrics.hpp"

#include <array>
#include <atomic>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace modelgate::gateway {
namespace {

using prometheus::Counter;
using prometheus::Gauge;
using prometheus::Histogram;

// From 1 ms to 10 minutes: the gateway's own responses take under a
// millisecond, embeddings milliseconds, long generations minutes.
const Histogram::BucketBoundaries kRequestBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1,     2.5,    5,     10,   30,    60,   120, 300,  600};

// From 1 ms (an instance became ready at once) to the 10 minute default of
// hold_timeout.
const Histogram::BucketBoundaries kHoldBuckets = {
    0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};

// From 100 ms (a small local server) to 30 minutes (a large model read from
// slow storage); startup_timeout defaults to 10 minutes.
const Histogram::BucketBoundaries kColdStartBuckets = {
    0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800};

// Endpoint label values that the session uses, the endpoints routed by
// model first. Others are recorded too, without a cache.
constexpr std::array<std::string_view, 8> kEndpoints = {
    "chat_completions", "completions", "embeddings", "models",
    "health",           "metrics",     "admin",      "other"};

constexpr std::array<std::string_view, 7> kDropReasons = {
    "client_gone_while_held",   "client_gone_while_waiting", "client_write_failed",
    "upstream_failed_mid_body", "header_timeout",            "client_write_timeout",
    "max_stream_duration"};

constexpr std::array<Limit, 12> kLimits = {
    Limit::max_body_size,          Limit::max_header_size,
    Limit::header_timeout,         Limit::keep_alive_timeout,
    Limit::max_client_connections, Limit::max_held_requests_per_deployment,
    Limit::max_held_requests,      Limit::hold_timeout,
    Limit::upstream_response_timeout, Limit::max_upstream_connections,
    Limit::client_write_timeout,
    Limit::max_stream_duration};

constexpr std::array<AuthFailure, 4> kAuthFailures = {
    AuthFailure::missing_key, AuthFailure::invalid_key, AuthFailure::model_denied,
    AuthFailure::admin_denied};

constexpr std::array<launcher::ColdStartResult, 3> kColdStartResults = {
    launcher::ColdStartResult::success, launcher::ColdStartResult::failed,
    launcher::ColdStartResult::timeout};

constexpr std::array<routing::InstanceState, 4> kInstanceStates = {
    routing::InstanceState::starting, routing::InstanceState::running,
    routing::InstanceState::stopping, routing::InstanceState::error};

constexpr std::array<UpstreamErrorKind, 4> kUpstreamErrorKinds = {
    UpstreamErrorKind::connect, UpstreamErrorKind::reset, UpstreamErrorKind::timeout,
    UpstreamErrorKind::backend_5xx};

// The arrays above list each enum in declaration order, so that an enum
// value cast to an integer is its index.
template <typename Enum, std::size_t N>
constexpr bool in_declaration_order(const std::array<Enum, N>& values) {
  for (std::size_t index = 0; index < N; ++index) {
    if (static_cast<std::size_t>(values[index]) != index) {
      return false;
    }
  }
  return true;
}
static_assert(in_declaration_order(kColdStartResults));
static_assert(in_declaration_order(kInstanceStates));
static_assert(in_declaration_order(kUpstreamErrorKinds));
static_assert(in_declaration_order(kLimits));
static_assert(in_declaration_order(kAuthFailures));

// Status codes 100 to 599 have a cache slot each.
constexpr int kFirstCachedCode = 100;
constexpr int kCachedCodes = 500;

// Series of modelgate_requests_total that exist at zero for each configured
// deployment: the endpoints routed by model, with success and the gateway's
// own 5xx codes. A counter that appears at 1 has no earlier sample, so
// rate() would miss the first failed start of a deployment.
constexpr std::array<std::size_t, 3> kModelEndpointIndexes = {0, 1, 2};
static_assert(kEndpoints[2] == "embeddings");
constexpr std::array<int, 4> kInitialCodes = {200, 502, 503, 504};

template <std::size_t N>
std::optional<std::size_t> index_of(const std::array<std::string_view, N>& values,
                                    std::string_view value) {
  for (std::size_t index = 0; index < N; ++index) {
    if (values[index] == value) {
      return index;
    }
  }
  return std::nullopt;
}

// Returns the metric in `slot`, filling it with make() on first use.
// Family::Add returns the existing metric for known labels, so two threads
// that fill a slot at once store the same pointer.
template <typename Metric, typename Make>
Metric& cached(std::atomic<Metric*>& slot, Make make) {
  Metric* metric = slot.load(std::memory_order_acquire);
  if (metric == nullptr) {
    metric = &make();
    slot.store(metric, std::memory_order_release);
  }
  return *metric;
}

}  // namespace

std::string_view to_string(UpstreamErrorKind kind) {
  switch (kind) {
    case UpstreamErrorKind::connect:
      return "connect";
    case UpstreamErrorKind::reset:
      return "reset";
    case UpstreamErrorKind::timeout:
      return "timeout";
    case UpstreamErrorKind::backend_5xx:
      return "backend_5xx";
  }
  return "unknown";
}

std::string_view to_string(Limit limit) {
  switch (limit) {
    case Limit::max_body_size:
      return "max_body_size";
    case Limit::max_header_size:
      return "max_header_size";
    case Limit::header_timeout:
      return "header_timeout";
    case Limit::keep_alive_timeout:
      return "keep_alive_timeout";
    case Limit::max_client_connections:
      return "max_client_connections";
    case Limit::max_held_requests_per_deployment:
      return "max_held_requests_per_deployment";
    case Limit::max_held_requests:
      return "max_held_requests";
    case Limit::hold_timeout:
      return "hold_timeout";
    case Limit::upstream_response_timeout:
      return "upstream_response_timeout";
    case Limit::max_upstream_connections:
      return "max_upstream_connections";
    case Limit::client_write_timeout:
      return "client_write_timeout";
    case Limit::max_stream_duration:
      return "max_stream_duration";
  }
  return "unknown";
}

std::string_view to_string(AuthFailure failure) {
  switch (failure) {
    case AuthFailure::missing_key:
      return "missing_key";
    case AuthFailure::invalid_key:
      return "invalid_key";
    case AuthFailure::model_denied:
      return "model_denied";
    case AuthFailure::admin_denied:
      return "admin_denied";
  }
  return "unknown";
}

struct Metrics::Families {
  prometheus::Family<Counter>& requests;
  prometheus::Family<Histogram>& duration;
  prometheus::Family<Histogram>& first_byte;
  prometheus::Family<Counter>& dropped;
  prometheus::Family<Counter>& stream_chunks;
  prometheus::Family<Gauge>& held;
  prometheus::Family<Histogram>& hold_duration;
  prometheus::Family<Counter>& cold_starts;
  prometheus::Family<Histogram>& cold_start_duration;
  prometheus::Family<Gauge>& instances;
  prometheus::Family<Counter>& upstream_errors;
  prometheus::Family<Counter>& idle_stops;
  Gauge& client_connections;
  Gauge& upstream_idle_connections;
  Gauge* upstream_waiting_requests = nullptr;
  std::array<Counter*, kLimits.size()> limit_hits{};
  std::array<Counter*, kAuthFailures.size()> auth_failures{};
  Counter* tls_handshake_failures = nullptr;
  Counter* tls_reloads_success = nullptr;
  Counter* tls_reloads_failure = nullptr;
};

// One deployment's series. Fixed label sets are created with the struct;
// sets that depend on traffic (endpoint, status code, reason) fill their
// slot on first use.
struct Metrics::DeploymentSeries {
  // `configured`: a deployment from the config, which gets the requests
  // series of kInitialCodes at zero.
  DeploymentSeries(std::string name, Families& families, bool configured);

  std::string name;
  std::array<std::array<std::atomic<Counter*>, kCachedCodes>, kEndpoints.size()> requests{};
  std::array<std::atomic<Histogram*>, kEndpoints.size()> duration{};
  std::array<std::atomic<Histogram*>, kEndpoints.size()> first_byte{};
  std::array<std::atomic<Counter*>, kDropReasons.size()> dropped{};
  std::array<std::atomic<Histogram*>, kColdStartResults.size()> cold_start_duration{};

  Counter* stream_chunks;
  Gauge* held;
  Histogram* hold_duration;
  std::array<Counter*, kColdStartResults.size()> cold_starts{};
  std::array<Gauge*, kInstanceStates.size()> instances{};
  std::array<Counter*, kUpstreamErrorKinds.size()> upstream_errors{};
  Counter* idle_stops;
};

Metrics::DeploymentSeries::DeploymentSeries(std::string deployment, Families& families,
                                            bool configured)
    : name(std::move(deployment)) {
  stream_chunks = &families.stream_chunks.Add({{"deployment", name}});
  held = &families.held.Add({{"deployment", name}});
  hold_duration = &families.hold_duration.Add({{"deployment", name}}, kHoldBuckets);
  idle_stops = &families.idle_stops.Add({{"deployment", name}});
  for (std::size_t index = 0; index < kColdStartResults.size(); ++index) {
    cold_starts[index] = &families.cold_starts.Add(
        {{"deployment", name}, {"result", std::string(to_string(kColdStartResults[index]))}});
  }
  for (std::size_t index = 0; index < kInstanceStates.size(); ++index) {
    instances[index] = &families.instances.Add(
        {{"deployment", name}, {"state", std::string(routing::to_string(kInstanceStates[index]))}});
  }
  for (std::size_t index = 0; index < kUpstreamErrorKinds.size(); ++index) {
    upstream_errors[index] = &families.upstream_errors.Add(
        {{"deployment", name}, {"kind", std::string(to_string(kUpstreamErrorKinds[index]))}});
  }
  if (!configured) {
    return;
  }
  for (std::size_t endpoint : kModelEndpointIndexes) {
    for (int code : kInitialCodes) {
      requests[endpoint][code - kFirstCachedCode] = &families.requests.Add(
          {{"deployment", name},
           {"endpoint", std::string(kEndpoints[endpoint])},
           {"code", std::to_string(code)}});
    }
  }
}

Metrics::Metrics(const std::vector<std::string>& deployments)
    : registry_(std::make_shared<prometheus::Registry>()) {
  prometheus::Registry& registry = *registry_;

  // Requests as clients see them.
  auto& requests = prometheus::BuildCounter()
                       .Name("modelgate_requests_total")
                       .Help("Requests answered, by deployment, endpoint and HTTP status code.")
                       .Register(registry);
  auto& duration = prometheus::BuildHistogram()
                       .Name("modelgate_request_duration_seconds")
                       .Help("Time from a request's last byte received to its last byte sent.")
                       .Register(registry);
  auto& first_byte =
      prometheus::BuildHistogram()
          .Name("modelgate_time_to_first_byte_seconds")
          .Help("Time from a request's last byte received to the first byte of the backend's "
                "response sent to the client, including time held; relayed responses only.")
          .Register(registry);
  auto& dropped = prometheus::BuildCounter()
                      .Name("modelgate_requests_dropped_total")
                      .Help("Requests that ended without a complete response, by reason.")
                      .Register(registry);
  auto& stream_chunks =
      prometheus::BuildCounter()
          .Name("modelgate_stream_chunks_total")
          .Help("Pieces of streamed response bodies relayed to clients, one per read from the "
                "backend.")
          .Register(registry);

  // Held requests and cold starts.
  auto& held = prometheus::BuildGauge()
                   .Name("modelgate_held_requests")
                   .Help("Requests waiting now for an instance of the deployment to be ready.")
                   .Register(registry);
  auto& hold_duration =
      prometheus::BuildHistogram()
          .Name("modelgate_hold_duration_seconds")
          .Help("Time a request was held waiting for a ready instance, whatever the outcome.")
          .Register(registry);
  auto& cold_starts =
      prometheus::BuildCounter()
          .Name("modelgate_cold_starts_total")
          .Help("Instance starts, by result: success, failed (the backend exited or could not "
                "be started) or timeout (no health check passed within startup_timeout).")
          .Register(registry);
  auto& cold_start_duration =
      prometheus::BuildHistogram()
          .Name("modelgate_cold_start_duration_seconds")
          .Help("Time from launching an instance to its health check passing (success) or to "
                "the start failing, by result.")
          .Register(registry);

  // Instances and upstreams.
  auto& instances = prometheus::BuildGauge()
                        .Name("modelgate_instances")
                        .Help("Instances by state: starting, running, stopping or error. An "
                              "instance stays in error until an instance of the deployment "
                              "becomes running.")
                        .Register(registry);
  auto& upstream_errors =
      prometheus::BuildCounter()
          .Name("modelgate_upstream_errors_total")
          .Help("Failed exchanges with instances, by kind: connect, reset, timeout or "
                "backend_5xx (the instance responded with a 5xx status).")
          .Register(registry);
  auto& idle_stops = prometheus::BuildCounter()
                         .Name("modelgate_idle_stops_total")
                         .Help("Instances stopped because their idle_timeout passed.")
                         .Register(registry);

  // Gateway-wide.
  auto& connections = prometheus::BuildGauge()
                          .Name("modelgate_client_connections")
                          .Help("Open client connections.")
                          .Register(registry);
  auto& upstream_idle = prometheus::BuildGauge()
                            .Name("modelgate_upstream_idle_connections")
                            .Help("Kept-alive connections to instances, idle in the pools of "
                                  "all I/O threads.")
                            .Register(registry);
  auto& upstream_waiting =
      prometheus::BuildGauge()
          .Name("modelgate_upstream_waiting_requests")
          .Help("Requests waiting for a connection to an instance that has "
                "max_upstream_connections open.")
          .Register(registry);
  auto& reloads = prometheus::BuildCounter()
                      .Name("modelgate_config_reloads_total")
                      .Help("Config reloads by result. The gateway cannot reload its config "
                            "yet, so this stays at 0.")
                      .Register(registry);
  reloads.Add({{"result", "success"}});
  reloads.Add({{"result", "failure"}});
  auto& limit_hits =
      prometheus::BuildCounter()
          .Name("modelgate_limit_hits_total")
          .Help("Times a configured limit was reached, by the limit's config key.")
          .Register(registry);
  auto& auth_failures =
      prometheus::BuildCounter()
          .Name("modelgate_auth_failures_total")
          .Help("Requests refused for their API key, by reason: missing_key, invalid_key, "
                "model_denied or admin_denied.")
          .Register(registry);
  auto& tls_handshake_failures =
      prometheus::BuildCounter()
          .Name("modelgate_tls_handshake_failures_total")
          .Help("Client connections closed because the TLS handshake failed or timed out.")
          .Register(registry);
  auto& tls_reloads = prometheus::BuildCounter()
                          .Name("modelgate_tls_reloads_total")
                          .Help("Reloads of the TLS certificate and key on SIGHUP, by result.")
                          .Register(registry);
  prometheus::BuildGauge()
      .Name("modelgate_build_info")
      .Help("Build information; the value is always 1.")
      .Register(registry)
      .Add({{"version", MODELGATE_VERSION}})
      .Set(1);

  families_.reset(new Families{requests, duration, first_byte, dropped, stream_chunks, held,
                               hold_duration, cold_starts, cold_start_duration, instances,
                               upstream_errors, idle_stops, connections.Add({}),
                               upstream_idle.Add({})});
  for (std::size_t index = 0; index < kLimits.size(); ++index) {
    families_->limit_hits[index] =
        &limit_hits.Add({{"limit", std::string(to_string(kLimits[index]))}});
  }
  for (std::size_t index = 0; index < kAuthFailures.size(); ++index) {
    families_->auth_failures[index] =
        &auth_failures.Add({{"reason", std::string(to_string(kAuthFailures[index]))}});
  }
  families_->tls_handshake_failures = &tls_handshake_failures.Add({});
  families_->upstream_waiting_requests = &upstream_waiting.Add({});
  families_->tls_reloads_success = &tls_reloads.Add({{"result", "success"}});
  families_->tls_reloads_failure = &tls_reloads.Add({{"result", "failure"}});

  configured_.emplace("", std::make_unique<DeploymentSeries>("", *families_, false));
  for (const std::string& name : deployments) {
    if (!configured_.contains(name)) {
      configured_.emplace(name, std::make_unique<DeploymentSeries>(name, *families_, true));
    }
  }
}

Metrics::~Metrics() = default;

Metrics::DeploymentSeries& Metrics::series(std::string_view deployment) {
  auto found = configured_.find(deployment);
  if (found != configured_.end()) {
    return *found->second;
  }

  std::lock_guard lock(unconfigured_mutex_);
  auto& entry = unconfigured_[std::string(deployment)];
  if (!entry) {
    entry = std::make_unique<DeploymentSeries>(std::string(deployment), *families_, false);
  }
  return *entry;
}

void Metrics::record_request(std::string_view deployment, std::string_view endpoint, int status,
                             std::chrono::duration<double> duration,
                             std::optional<std::chrono::duration<double>> first_byte) {
  DeploymentSeries& deployment_series = series(deployment);
  const std::string& name = deployment_series.name;
  std::optional<std::size_t> endpoint_index = index_of(kEndpoints, endpoint);

  // An endpoint outside the fixed set goes through Family::Add each time.
  if (!endpoint_index) {
    std::string label(endpoint);
    families_->requests
        .Add({{"deployment", name}, {"endpoint", label}, {"code", std::to_string(status)}})
        .Increment();
    families_->duration.Add({{"deployment", name}, {"endpoint", label}}, kRequestBuckets)
        .Observe(duration.count());
    if (first_byte) {
      families_->first_byte.Add({{"deployment", name}, {"endpoint", label}}, kRequestBuckets)
          .Observe(first_byte->count());
    }
    return;
  }

  std::size_t index = *endpoint_index;
  auto make_requests = [&] () -> Counter& {
    return families_->requests.Add({{"deployment", name},
                                    {"endpoint", std::string(kEndpoints[index])},
                                    {"code", std::to_string(status)}});
  };
  int code_slot = status - kFirstCachedCode;
  if (code_slot >= 0 && code_slot < kCachedCodes) {
    cached(deployment_series.requests[index][code_slot], make_requests).Increment();
  } else {
    make_requests().Increment();
  }

  cached(deployment_series.duration[index], [&] () -> Histogram& {
    return families_->duration.Add(
        {{"deployment", name}, {"endpoint", std::string(kEndpoints[index])}}, kRequestBuckets);
  }).Observe(duration.count());
  if (first_byte) {
    cached(deployment_series.first_byte[index], [&] () -> Histogram& {
      return families_->first_byte.Add(
          {{"deployment", name}, {"endpoint", std::string(kEndpoints[index])}},
          kRequestBuckets);
    }).Observe(first_byte->count());
  }
}

void Metrics::record_dropped(std::string_view deployment, std::string_view reason) {
  DeploymentSeries& deployment_series = series(deployment);
  auto make = [&] () -> Counter& {
    return families_->dropped.Add(
        {{"deployment", deployment_series.name}, {"reason", std::string(reason)}});
  };
  std::optional<std::size_t> index = index_of(kDropReasons, reason);
  if (index) {
    cached(deployment_series.dropped[*index], make).Increment();
  } else {
    make().Increment();
  }
}

void Metrics::record_held(std::string_view deployment, std::chrono::duration<double> held) {
  series(deployment).hold_duration->Observe(held.count());
}

void Metrics::record_upstream_error(std::string_view deployment, UpstreamErrorKind kind) {
  series(deployment).upstream_errors[static_cast<std::size_t>(kind)]->Increment();
}

void Metrics::record_stream_chunk(std::string_view deployment) {
  series(deployment).stream_chunks->Increment();
}

void Metrics::client_connection_opened() { families_->client_connections.Increment(); }

void Metrics::client_connection_closed() { families_->client_connections.Decrement(); }

void Metrics::record_limit_hit(Limit limit) {
  families_->limit_hits[static_cast<std::size_t>(limit)]->Increment();
}

void Metrics::record_auth_failure(AuthFailure failure) {
  families_->auth_failures[static_cast<std::size_t>(failure)]->Increment();
}

void Metrics::record_tls_handshake_failure() { families_->tls_handshake_failures->Increment(); }

void Metrics::record_tls_reload(bool success) {
  (success ? families_->tls_reloads_success : families_->tls_reloads_failure)->Increment();
}

void Metrics::set_upstream_idle_source(std::function<std::size_t()> source) {
  std::lock_guard lock(idle_source_mutex_);
  upstream_idle_source_ = std::move(source);
}

void Metrics::set_upstream_waiting_source(std::function<std::size_t()> source) {
  std::lock_guard lock(idle_source_mutex_);
  upstream_waiting_source_ = std::move(source);
}

void Metrics::on_cold_start(std::string_view deployment, launcher::ColdStartResult result,
                            double seconds) {
  DeploymentSeries& deployment_series = series(deployment);
  auto index = static_cast<std::size_t>(result);
  deployment_series.cold_starts[index]->Increment();
  cached(deployment_series.cold_start_duration[index], [&] () -> Histogram& {
    return families_->cold_start_duration.Add(
        {{"deployment", deployment_series.name}, {"result", std::string(to_string(result))}},
        kColdStartBuckets);
  }).Observe(seconds);
}

void Metrics::on_instance_state(std::string_view deployment,
                                std::optional<routing::InstanceState> from,
                                std::optional<routing::InstanceState> to) {
  DeploymentSeries& deployment_series = series(deployment);
  if (from) {
    deployment_series.instances[static_cast<std::size_t>(*from)]->Decrement();
  }
  if (to) {
    deployment_series.instances[static_cast<std::size_t>(*to)]->Increment();
  }
}

void Metrics::on_idle_stop(std::string_view deployment) {
  series(deployment).idle_stops->Increment();
}

void Metrics::on_held_requests(std::string_view deployment, std::size_t count) {
  series(deployment).held->Set(static_cast<double>(count));
}

std::string Metrics::serialize() const {
  {
    std::lock_guard lock(idle_source_mutex_);
    if (upstream_idle_source_) {
      families_->upstream_idle_connections.Set(static_cast<double>(upstream_idle_source_()));
    }
    if (upstream_waiting_source_) {
      families_->upstream_waiting_requests->Set(
          static_cast<double>(upstream_waiting_source_()));
    }
  }
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace modelgate::gateway
