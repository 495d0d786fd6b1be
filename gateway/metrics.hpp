#pragma once

// Prometheus metrics of the gateway, served at GET /metrics. Label values
// are bounded: deployment names come from the config, never from clients,
// and endpoints, reasons, states and kinds are fixed sets in the code.
//
// Each deployment's series are looked up once and cached, so recording a
// request costs a hash lookup, atomic updates and prometheus-cpp's own
// per-histogram mutex, instead of prometheus::Family::Add, which locks the
// family, hashes the labels and allocates.

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "launcher/lifecycle_observer.hpp"
#include "routing/route_table.hpp"

namespace prometheus {
class Registry;
}

namespace modelgate::gateway {

enum class UpstreamErrorKind {
  connect,      // the connection to the instance failed or timed out
  reset,        // the instance closed or reset the connection
  timeout,      // no response head within upstream_response_timeout
  backend_5xx,  // the instance responded with a 5xx status
};

std::string_view to_string(UpstreamErrorKind kind);

// Configured limits, counted each time one is reached. The names are the
// config keys.
enum class Limit {
  max_body_size,
  max_header_size,
  header_timeout,
  keep_alive_timeout,
  max_client_connections,
  max_held_requests_per_deployment,
  max_held_requests,
  hold_timeout,
  upstream_response_timeout,
  max_upstream_connections,
  client_write_timeout,
  max_stream_duration,
};

std::string_view to_string(Limit limit);

// Reason a request was rejected for its key.
enum class AuthFailure {
  missing_key,    // no key presented (401)
  invalid_key,    // a key that is not configured (401)
  model_denied,   // a valid key that may not use the model (403 or 404)
  admin_denied,   // an admin endpoint without a valid admin key (401 or 403)
};

std::string_view to_string(AuthFailure failure);

class Metrics final : public launcher::LifecycleObserver {
 public:
  // Series of the `deployments` (configured names) exist from the start,
  // at zero, so that rate() and increase() see their first increment.
  explicit Metrics(const std::vector<std::string>& deployments = {});
  ~Metrics() override;

  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Counts a finished request. `deployment` is empty for requests that
  // named no configured deployment. `first_byte` is the time to the first
  // byte of a response relayed from a backend, if there was one.
  void record_request(std::string_view deployment, std::string_view endpoint, int status,
                      std::chrono::duration<double> duration,
                      std::optional<std::chrono::duration<double>> first_byte = std::nullopt);
  // Counts a request that ended without a response (client gone, upstream
  // broke mid-body), by reason.
  void record_dropped(std::string_view deployment, std::string_view reason);
  // Records how long a request was held waiting for a ready instance.
  void record_held(std::string_view deployment, std::chrono::duration<double> held);
  void record_upstream_error(std::string_view deployment, UpstreamErrorKind kind);
  // Counts one piece of a streamed response body relayed to a client.
  void record_stream_chunk(std::string_view deployment);

  void client_connection_opened();
  void client_connection_closed();

  void record_limit_hit(Limit limit);
  void record_auth_failure(AuthFailure failure);
  void record_tls_handshake_failure();
  void record_tls_reload(bool success);

  // Sets the function that returns the number of idle upstream connections
  // at scrape time. It is called from whichever thread serves /metrics.
  void set_upstream_idle_source(std::function<std::size_t()> source);
  // Sets the function that returns the number of requests waiting for an
  // upstream connection at scrape time.
  void set_upstream_waiting_source(std::function<std::size_t()> source);

  // launcher::LifecycleObserver
  void on_cold_start(std::string_view deployment, launcher::ColdStartResult result,
                     double seconds) override;
  void on_instance_state(std::string_view deployment,
                         std::optional<routing::InstanceState> from,
                         std::optional<routing::InstanceState> to) override;
  void on_idle_stop(std::string_view deployment) override;
  void on_held_requests(std::string_view deployment, std::size_t count) override;

  // The text exposition format.
  std::string serialize() const;

  // For metrics that other components register, such as RedisMetrics.
  prometheus::Registry& registry() { return *registry_; }

 private:
  struct Families;
  struct DeploymentSeries;

  DeploymentSeries& series(std::string_view deployment);

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Families> families_;
  using SeriesMap = std::unordered_map<std::string, std::unique_ptr<DeploymentSeries>,
                                       routing::StringHash, std::equal_to<>>;
  // Built in the constructor and read without a lock afterwards; it also
  // holds deployment "" for requests that named no configured deployment.
  SeriesMap configured_;
  // Names that were not configured, created on first use under the mutex.
  std::mutex unconfigured_mutex_;
  SeriesMap unconfigured_;

  mutable std::mutex idle_source_mutex_;
  std::function<std::size_t()> upstream_idle_source_;
  std::function<std::size_t()> upstream_waiting_source_;
};

}  // namespace modelgate::gateway
