// DeploymentController: taking over instances that an earlier run of the
// gateway left behind, and holding starts until the launcher has looked for
// them.

#include "launcher/deployment_controller.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "config/command.hpp"
#include "launcher/health_probe.hpp"
#include "launcher/port_allocator.hpp"
#include "routing/logger.hpp"

namespace modelgate::launcher {

awaitable<bool> DeploymentController::adopt(LeftBehind found) {
  auto log = component_logger("launcher");
  std::string container = found.runtime_id.substr(0, 12);
  auto decline = [&](const std::string& reason) {
    log->info("not adopting container {} of instance {} ('{}'): {}", container, found.instance_id,
              printable(deployment_.name), reason);
    return false;
  };
  if (shutting_down_) {
    co_return decline("the gateway is shutting down");
  }
  if (found.instance_id.empty() || found.port == 0) {
    co_return decline("its labels have no instance id or port");
  }
  if (!ports_.reserve(found.port)) {
    co_return decline("port " + std::to_string(found.port) + " is outside worker '" +
                      worker_.name + "' range or taken");
  }

  // The spec the current config gives this instance id and port; the
  // runtime compares it with the one the container was created from.
  LaunchSpec spec;
  try {
    spec = build_spec(found.instance_id, found.port);
  } catch (const config::CommandError& error) {
    ports_.release(found.port);
    co_return decline(std::string("cannot render the run command: ") + error.what());
  }

  HealthResult health =
      co_await probe_health(worker_.ip, found.port, deployment_.health_check_path,
                            config_.gateway.health_check_timeout);
  if (!health.healthy) {
    ports_.release(found.port);
    std::string answer = health.status != 0 ? "HTTP " + std::to_string(health.status) : health.error;
    co_return decline("the health check GET " + deployment_.health_check_path + " failed: " +
                      answer);
  }

  StartResult attached = co_await runtime_.adopt(found, spec, strand_);
  if (!attached.instance) {
    ports_.release(found.port);
    co_return decline(attached.error);
  }
  if (shutting_down_) {
    // shutdown() has listed the instances it stops already, so this one is
    // stopped here.
    co_await attached.instance->stop(config_.gateway.stop_grace_period);
    ports_.release(found.port);
    co_return true;
  }

  // Register it as RUNNING and serve held requests with it.
  auto instance = std::make_shared<Instance>();
  instance->handle = std::make_shared<routing::InstanceHandle>(found.instance_id, deployment_.name,
                                                               worker_.ip, found.port);
  instance->handle->set_worker(worker_.name);
  instance->runtime = std::move(attached.instance);
  instance->runtime_id = instance->runtime->describe();
  set_state(instance, routing::InstanceState::running);
  {
    std::lock_guard lock(status_mutex_);
    instances_.push_back(instance);
  }
  routes_.add_instance(instance->handle);
  log->info("instance {} of '{}' adopted: {} on {}:{}, left running by a gateway that no "
            "longer runs",
            found.instance_id, printable(deployment_.name), instance->runtime_id, worker_.ip,
            found.port);
  wake_waiters({AcquireStatus::ready, instance->handle, {}});

  asio::co_spawn(strand_,
                 [self = shared_from_this(), instance] { return self->serve_until_stopped(instance); },
                 asio::detached);
  co_return true;
}

void DeploymentController::end_recovery() {
  recovering_ = false;
  if (shutting_down_ || waiters_.empty()) {
    return;
  }
  if (launching_ == 0 && !has_instance_in(routing::InstanceState::running) &&
      !has_instance_in(routing::InstanceState::starting)) {
    request_start();
  }
}

}  // namespace modelgate::launcher
