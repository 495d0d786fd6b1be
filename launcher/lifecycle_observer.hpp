#pragma once

// Lifecycle events of deployments and their instances, for metrics. The
// launcher calls these on a deployment controller's strand; controllers of
// different deployments run concurrently, so an implementation must be
// thread-safe. Calls must not block: they run inside the lifecycle.

#include <optional>
#include <string_view>

#include "routing/route_table.hpp"

namespace modelgate::launcher {

enum class ColdStartResult {
  success,  // the health check passed
  failed,   // the backend exited, or could not be started
  timeout,  // the health check did not pass within startup_timeout
};

std::string_view to_string(ColdStartResult result);

class LifecycleObserver {
 public:
  virtual ~LifecycleObserver() = default;

  // One instance start ended, `seconds` after it began. A start cut short by
  // gateway shutdown is not reported.
  virtual void on_cold_start(std::string_view deployment, ColdStartResult result,
                             double seconds) = 0;

  // An instance moved from `from` to `to`. An empty `from` means the
  // instance is new; an empty `to` means the launcher no longer lists it.
  virtual void on_instance_state(std::string_view deployment,
                                 std::optional<routing::InstanceState> from,
                                 std::optional<routing::InstanceState> to) = 0;

  // An instance is being stopped because its idle timeout passed.
  virtual void on_idle_stop(std::string_view deployment) = 0;

  // The number of requests held for the deployment changed to `count`.
  virtual void on_held_requests(std::string_view deployment, std::size_t count) = 0;
};

}  // namespace modelgate::launcher
