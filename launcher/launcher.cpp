#include "launcher/launcher.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "launcher/deployment_controller.hpp"
#include "launcher/docker_runtime.hpp"
#include "launcher/lifecycle_observer.hpp"
#include "launcher/port_allocator.hpp"
#include "launcher/process_runtime.hpp"
#include "routing/logger.hpp"

namespace modelgate::launcher {

std::string_view to_string(AcquireStatus status) {
  switch (status) {
    case AcquireStatus::ready:
      return "ready";
    case AcquireStatus::start_failed:
      return "start_failed";
    case AcquireStatus::start_timed_out:
      return "start_timed_out";
    case AcquireStatus::hold_timed_out:
      return "hold_timed_out";
    case AcquireStatus::queue_full:
      return "queue_full";
    case AcquireStatus::client_gone:
      return "client_gone";
    case AcquireStatus::shutting_down:
      return "shutting_down";
  }
  return "unknown";
}

std::string_view to_string(ColdStartResult result) {
  switch (result) {
    case ColdStartResult::success:
      return "success";
    case ColdStartResult::failed:
      return "failed";
    case ColdStartResult::timeout:
      return "timeout";
  }
  return "unknown";
}

HeldRequest::HeldRequest(asio::any_io_executor executor,
                         std::chrono::steady_clock::time_point deadline,
                         std::string request_id)
    : timer_(std::move(executor)), request_id_(std::move(request_id)) {
  timer_.expires_at(deadline);
}

void HeldRequest::complete(AcquireResult result) {
  asio::post(timer_.get_executor(),
             [self = shared_from_this(), result = std::move(result)]() mutable {
               if (self->result_) {
                 return;
               }
               self->result_ = std::move(result);
               self->timer_.cancel();
             });
}

awaitable<AcquireResult> HeldRequest::wait() {
  if (!result_) {
    boost::system::error_code ignored;
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
  if (!result_) {
    result_ = AcquireResult{AcquireStatus::hold_timed_out, nullptr,
                            "timed out waiting for the model's backend to become ready"};
  }
  co_return *result_;
}

Launcher::Launcher(asio::io_context& io_context, const config::Config& config,
                   routing::RouteStore& routes, ProcessGuard* guard,
                   LifecycleObserver* observer)
    : io_context_(io_context), config_(config), routes_(routes) {
  // One runtime and one port allocator per worker, in config order.
  std::string gateway_id = config.gateway.id.empty() ? default_gateway_id(config) : config.gateway.id;
  bool any_docker = false;
  for (const config::Worker& worker : config.workers) {
    if (worker.runtime == "docker") {
      runtimes_.push_back(std::make_unique<DockerRuntime>(config, worker, gateway_id));
      any_docker = true;
    } else {
      runtimes_.push_back(std::make_unique<ProcessRuntime>(guard));
    }
    port_allocators_.push_back(std::make_unique<PortAllocator>(worker.ip, worker.ports));
  }

  // Place each deployment on its pinned worker, else on the first worker
  // that offers its framework. Config validation guarantees one exists.
  for (const config::Deployment& deployment : config.deployments) {
    std::size_t chosen = config.workers.size();
    for (std::size_t index = 0; index < config.workers.size(); ++index) {
      const config::Worker& worker = config.workers[index];
      if (!deployment.worker.empty()) {
        if (worker.name == deployment.worker) {
          chosen = index;
          break;
        }
        continue;
      }
      bool offers = deployment.framework.empty() ||
                    std::find(worker.frameworks.begin(), worker.frameworks.end(),
                              deployment.framework) != worker.frameworks.end();
      if (offers) {
        chosen = index;
        break;
      }
    }
    if (chosen == config.workers.size()) {
      throw std::runtime_error("no worker can run deployment '" + deployment.name + "'");
    }
    controllers_.emplace(deployment.name,
                         std::make_shared<DeploymentController>(
                             io_context, config, deployment, config.workers[chosen],
                             *runtimes_[chosen], *port_allocators_[chosen], routes,
                             observer));
  }

  // Instances that other gateways publish can release held requests.
  routes.set_change_listener([this](const std::string& deployment) {
    auto found = controllers_.find(deployment);
    if (found != controllers_.end()) {
      asio::post(found->second->strand(),
                 [controller = found->second] { controller->on_routes_changed(); });
    }
  });

  // Containers of a dead gateway keep running and may be adopted here.
  routes.set_orphan_listener([this](const routing::OrphanedInstance& orphan) {
    asio::co_spawn(io_context_, adopt_orphan(orphan), asio::detached);
  });

  // Containers survive a gateway killed with SIGKILL: look for them before
  // the deployments on docker workers start new ones.
  if (any_docker) {
    for (auto& [name, controller] : controllers_) {
      if (controller->worker().runtime == "docker") {
        controller->begin_recovery();
      }
    }
    asio::co_spawn(io_context, recover_left_behind(), asio::detached);
  }
}

Launcher::~Launcher() = default;

awaitable<void> Launcher::recover_left_behind() {
  auto log = component_logger("launcher");
  for (const auto& runtime : runtimes_) {
    auto* docker = dynamic_cast<DockerRuntime*>(runtime.get());
    if (docker == nullptr) {
      continue;
    }
    // GET /version runs the runtime's binaries on Podman, which takes a
    // while, so it does not hold up the search.
    asio::co_spawn(io_context_, docker->log_engine_version(), asio::detached);
    LeftBehindList list = co_await docker->find_left_behind();
    if (!list.error.empty()) {
      log->warn("{}; containers left by an earlier run stay until the next start", list.error);
      continue;
    }

    for (const LeftBehind& found : list.found) {
      // Another gateway may have adopted it while this one was down.
      std::string owner = co_await routes_.live_owner_of(found.deployment, found.instance_id);
      if (!owner.empty()) {
        log->info("leaving container {} of instance {} to gateway '{}', which serves it now",
                  found.runtime_id.substr(0, 12), found.instance_id, owner);
        continue;
      }

      auto controller = controllers_.find(found.deployment);
      bool known = controller != controllers_.end() &&
                   controller->second->worker().name == found.worker;
      bool adopted = false;
      if (known && found.running) {
        adopted = co_await asio::co_spawn(controller->second->strand(),
                                          controller->second->adopt(found), asio::use_awaitable);
      }
      if (adopted) {
        continue;
      }

      std::string reason = "it was not adopted";
      if (!known) {
        reason = "no deployment '" + found.deployment + "' on worker '" + found.worker +
                 "' in the config";
      } else if (!found.running) {
        reason = "it is not running";
      }
      log->info("removing container {} of instance {}, left by an earlier run: {}",
                found.runtime_id.substr(0, 12), found.instance_id, reason);
      std::string error = co_await docker->remove_left_behind(found);
      if (!error.empty()) {
        log->error("{}", error);
      }
    }
  }

  for (auto& [name, controller] : controllers_) {
    asio::post(controller->strand(), [controller = controller] { controller->end_recovery(); });
  }
}

awaitable<void> Launcher::adopt_orphan(routing::OrphanedInstance orphan) {
  auto log = component_logger("launcher");
  auto controller = controllers_.find(orphan.deployment);
  if (controller == controllers_.end()) {
    co_return;
  }
  const config::Worker& worker = controller->second->worker();
  if (worker.runtime != "docker" || worker.name != orphan.worker) {
    log->info("not adopting instance {} of '{}' of gateway '{}': it ran on worker '{}', which is "
              "not a docker worker of this gateway",
              orphan.id, printable(orphan.deployment), orphan.owner, orphan.worker);
    co_return;
  }

  // The runtime of the deployment's worker: runtimes_ follow config order.
  Runtime* runtime = nullptr;
  for (std::size_t index = 0; index < config_.workers.size(); ++index) {
    if (config_.workers[index].name == worker.name) {
      runtime = runtimes_[index].get();
    }
  }
  LeftBehindList list = co_await runtime->find_backends_of(orphan.owner);
  if (!list.error.empty()) {
    log->warn("not adopting instance {} of '{}': {}", orphan.id, printable(orphan.deployment),
              list.error);
    co_return;
  }
  for (const LeftBehind& found : list.found) {
    if (found.instance_id != orphan.id) {
      continue;
    }
    bool adopted = co_await asio::co_spawn(controller->second->strand(),
                                           controller->second->adopt(found), asio::use_awaitable);
    if (!adopted) {
      // TODO: remove a container of a dead gateway that failed the checks;
      // now it stays until that gateway restarts with the same id.
      log->info("instance {} of '{}' of gateway '{}' was not adopted; its container stays",
                orphan.id, printable(orphan.deployment), orphan.owner);
    }
    co_return;
  }
}

void Launcher::check_startup() const {
  for (const config::Worker& worker : config_.workers) {
    if (auto problem = check_port_range(worker.ports)) {
      throw std::runtime_error(config_.path.string() + ": workers '" + worker.name +
                               "': " + *problem);
    }
  }
  for (std::size_t index = 0; index < runtimes_.size(); ++index) {
    auto* docker = dynamic_cast<const DockerRuntime*>(runtimes_[index].get());
    if (docker != nullptr && !docker->setup_error().empty()) {
      throw std::runtime_error(config_.path.string() + ": workers '" +
                               config_.workers[index].name + "': " + docker->setup_error() +
                               "; check tls_ca, tls_cert and tls_key");
    }
  }

  std::error_code error;
  std::filesystem::create_directories(config_.gateway.log_dir, error);
  if (error || ::access(config_.gateway.log_dir.c_str(), W_OK) != 0) {
    throw std::runtime_error("cannot write instance logs to " + config_.gateway.log_dir.string() +
                             (error ? ": " + error.message() : std::string()) +
                             "; set gateway.log_dir to a writable directory");
  }
}

awaitable<AcquireResult> Launcher::acquire(const config::Deployment& deployment,
                                           std::shared_ptr<HeldRequest> held) {
  auto found = controllers_.find(deployment.name);
  if (found == controllers_.end()) {
    co_return AcquireResult{AcquireStatus::start_failed, nullptr,
                            "no controller for model '" + deployment.name + "'"};
  }
  std::shared_ptr<DeploymentController> controller = found->second;

  asio::post(controller->strand(), [controller, held] { controller->enqueue(held); });
  AcquireResult result = co_await held->wait();

  if (result.status != AcquireStatus::ready) {
    asio::post(controller->strand(), [controller, held] { controller->forget(held.get()); });
  }
  co_return result;
}

awaitable<void> Launcher::shutdown() {
  // Every controller stops its instances on its own strand, in parallel.
  auto executor = co_await asio::this_coro::executor;
  auto remaining = std::make_shared<std::size_t>(controllers_.size());
  asio::steady_timer all_done(executor, std::chrono::steady_clock::time_point::max());

  for (auto& [name, controller] : controllers_) {
    asio::co_spawn(controller->strand(), controller->shutdown(),
                   [executor, remaining, &all_done](std::exception_ptr) {
                     asio::post(executor, [remaining, &all_done] {
                       if (--*remaining == 0) {
                         all_done.cancel();
                       }
                     });
                   });
  }
  if (*remaining > 0) {
    boost::system::error_code ignored;
    co_await all_done.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
}

std::vector<InstanceStatus> Launcher::instances() const {
  std::vector<InstanceStatus> result;
  for (const auto& [name, controller] : controllers_) {
    std::vector<InstanceStatus> some = controller->instances();
    result.insert(result.end(), some.begin(), some.end());
  }
  return result;
}

std::vector<DeploymentStatus> Launcher::deployments() const {
  std::vector<DeploymentStatus> result;
  for (const config::Deployment& deployment : config_.deployments) {
    auto found = controllers_.find(deployment.name);
    if (found != controllers_.end()) {
      result.push_back(found->second->status());
    }
  }
  return result;
}

}  // namespace modelgate::launcher
