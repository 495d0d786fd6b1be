#pragma once

// Prometheus metrics of the gateway, served at GET /metrics. Label values
// are bounded: deployment names come from the config, never from clients.

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

namespace prometheus {
class Registry;
}

namespace modelgate::gateway {

class Metrics {
 public:
  Metrics();
  ~Metrics();

  // Counts a finished request. `deployment` is empty for requests that
  // named no configured deployment.
  void record_request(std::string_view deployment, std::string_view endpoint, int status,
                      std::chrono::duration<double> duration);
  // Counts a request that ended without a response (client gone, upstream
  // broke mid-body), by reason.
  void record_dropped(std::string_view deployment, std::string_view reason);

  void client_connection_opened();
  void client_connection_closed();

  // The text exposition format.
  std::string serialize() const;

 private:
  struct Families;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Families> families_;
};

}  // namespace modelgate::gateway
