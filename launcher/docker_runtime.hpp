#pragma once

// The `docker` runtime: each instance is a container, created and watched
// through the Docker Engine API (Docker or Podman). The container is named
// after the instance id and labelled with the gateway id, so that a gateway
// restarted after SIGKILL finds the containers it left behind.

#include "launcher/runtime.hpp"

#include <chrono>
#include <memory>
#include <string>

#include "config/config.hpp"

namespace modelgate::launcher {

class DockerClient;
struct ContainerSpec;

class DockerRuntime final : public Runtime {
 public:
  // `config` and `worker`, one of its workers, must outlive the runtime.
  DockerRuntime(const config::Config& config, const config::Worker& worker,
                std::string gateway_id);
  ~DockerRuntime() override;

  awaitable<StartResult> start(const LaunchSpec& spec, asio::any_io_executor executor) override;

  awaitable<LeftBehindList> find_left_behind() override;
  awaitable<LeftBehindList> find_backends_of(std::string gateway_id) override;
  awaitable<StartResult> adopt(const LeftBehind& found, const LaunchSpec& spec,
                               asio::any_io_executor executor) override;
  awaitable<std::string> remove_left_behind(const LeftBehind& found) override;

  // Logs the engine's name and version, or warns that it cannot be reached.
  awaitable<void> log_engine_version();
  // Why the runtime cannot work at all (a TLS file that cannot be loaded),
  // or an empty string.
  const std::string& setup_error() const;

 private:
  ContainerSpec container_spec(const LaunchSpec& spec) const;
  // Pulls the image when the pull policy requires it. Returns why the image
  // is not available, or an empty string.
  awaitable<std::string> ensure_image(const LaunchSpec& spec);
  awaitable<std::string> pull_image(const std::string& image,
                                    std::chrono::steady_clock::time_point deadline);

  const config::Config& config_;
  const config::Worker& worker_;
  std::string gateway_id_;
  std::shared_ptr<DockerClient> client_;
};

// The gateway id when the config sets none: "mg-" and 8 hex digits of a hash
// of the host name, the config file's absolute path and the listen address.
// It stays the same when the same gateway restarts.
std::string default_gateway_id(const config::Config& config);

}  // namespace modelgate::launcher
