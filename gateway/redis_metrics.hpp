#pragma once

// Prometheus metrics of the connection to Redis, registered in the gateway's
// registry next to the other metrics.

#include "routing/redis_route_store.hpp"

namespace prometheus {
class Counter;
class Gauge;
class Registry;
}  // namespace prometheus

namespace modelgate::gateway {

class RedisMetrics final : public routing::RedisObserver {
 public:
  explicit RedisMetrics(prometheus::Registry& registry);

  void on_redis_error() override;
  void on_redis_outage() override;
  void on_redis_connected(bool connected) override;

 private:
  prometheus::Counter& errors_;
  prometheus::Counter& outages_;
  prometheus::Gauge& connected_;
};

}  // namespace modelgate::gateway
