#include "gateway/redis_metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

namespace modelgate::gateway {

RedisMetrics::RedisMetrics(prometheus::Registry& registry)
    : errors_(prometheus::BuildCounter()
                  .Name("modelgate_redis_errors_total")
                  .Help("Failed Redis commands and connection attempts. Requests do not fail "
                        "because of them: the gateway serves from its local routes.")
                  .Register(registry)
                  .Add({})),
      outages_(prometheus::BuildCounter()
                   .Name("modelgate_redis_outages_total")
                   .Help("Times the gateway lost Redis, or found it unreachable at start-up.")
                   .Register(registry)
                   .Add({})),
      connected_(prometheus::BuildGauge()
                     .Name("modelgate_redis_connected")
                     .Help("Whether the gateway's command connection to Redis is up (1) or not (0).")
                     .Register(registry)
                     .Add({})) {}

void RedisMetrics::on_redis_error() { errors_.Increment(); }

void RedisMetrics::on_redis_outage() { outages_.Increment(); }

void RedisMetrics::on_redis_connected(bool connected) { connected_.Set(connected ? 1 : 0); }

}  // namespace modelgate::gateway
