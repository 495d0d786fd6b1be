#include "launcher/docker_runtime.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <limits>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "launcher/docker_client.hpp"
#include "launcher/docker_log_frames.hpp"
#include "launcher/docker_request.hpp"
#include "launcher/event.hpp"
#include "routing/logger.hpp"

// g++ 12 at -O2 reports -Wmismatched-new-delete for the frames of the larger
// coroutines below, although Asio allocates and frees every coroutine frame
// with the matching pair of awaitable_frame_base's operator new and delete.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace modelgate::launcher {
namespace {

using Clock = std::chrono::steady_clock;
using Duration = Clock::duration;
using std::chrono::milliseconds;
using std::chrono::seconds;

// How long the logs may keep arriving after the container exited, so that
// the exit reason carries the last line.
constexpr auto kLogDrainTimeout = seconds(2);
// Time the engine may take for POST /stop beyond the grace period itself.
constexpr auto kStopMargin = seconds(30);
// How long stop() waits for the exit and removal after the engine stopped
// the container.
constexpr auto kExitWait = seconds(30);
// How long removal may take until GET /containers/{id}/json returns 404.
constexpr auto kRemoveTimeout = seconds(20);
constexpr auto kRemovePollInterval = milliseconds(50);
// Pause between state checks when the wait request broke off.
constexpr auto kInspectInterval = seconds(2);
// Limit for one body that is read whole (wait, inspect, pull errors).
constexpr std::size_t kMaxBodyBytes = 1024 * 1024;

std::shared_ptr<spdlog::logger> log() { return component_logger("launcher"); }

std::string short_id(const std::string& id) { return id.substr(0, 12); }

awaitable<void> sleep_for(Duration duration) {
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  boost::system::error_code ignored;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
}

// Force-removes a container and waits until the engine no longer lists it,
// so that its name can be used again. Returns why that failed, or "".
awaitable<std::string> remove_container(DockerClient& client, const std::string& id) {
  DockerResponse removed = co_await client.call("DELETE", "/containers/" + id + "?force=1");
  if (!removed.ok() && removed.status != 404) {
    co_return "cannot remove container " + short_id(id) + ": " + client.describe_failure(removed);
  }

  Clock::time_point deadline = Clock::now() + kRemoveTimeout;
  for (;;) {
    DockerResponse inspected = co_await client.call("GET", "/containers/" + id + "/json");
    if (inspected.status == 404) {
      co_return std::string();
    }
    if (Clock::now() >= deadline) {
      co_return "container " + short_id(id) + " still exists " +
                std::to_string(kRemoveTimeout.count()) + " s after its removal" +
                (inspected.status == 0 ? ": " + inspected.error : std::string());
    }
    co_await sleep_for(kRemovePollInterval);
  }
}

// Stops a container within `grace` and removes it. Returns why that failed,
// or "".
awaitable<std::string> stop_and_remove(DockerClient& client, const std::string& id,
                                       milliseconds grace) {
  auto grace_seconds = std::chrono::ceil<seconds>(grace).count();
  DockerResponse stopped =
      co_await client.call("POST", "/containers/" + id + "/stop?t=" + std::to_string(grace_seconds),
                           {}, grace + kStopMargin);
  // 304: not running; 404: already gone.
  if (!stopped.ok() && stopped.status != 304 && stopped.status != 404) {
    log()->warn("cannot stop container {} ({}); removing it by force", short_id(id),
                client.describe_failure(stopped));
  }
  co_return co_await remove_container(client, id);
}

// One container. Its coroutines keep it alive through shared_from_this()
// until the container has exited and its logs have ended.
class DockerInstance final : public RuntimeInstance,
                             public std::enable_shared_from_this<DockerInstance> {
 public:
  DockerInstance(asio::any_io_executor executor, std::shared_ptr<DockerClient> client,
                 std::string id, const LaunchSpec& spec)
      : executor_(executor),
        client_(std::move(client)),
        id_(std::move(id)),
        exited_(executor),
        output_closed_(executor),
        log_(spec.log_file, spec.log_lines) {}

  // Starts following the exit and the logs. `logs_since` limits the logs to
  // those written at or after that Unix time; 0 takes them all.
  void begin(long long logs_since) {
    auto self = shared_from_this();
    asio::co_spawn(executor_, [self]() { return self->watch_exit(); }, asio::detached);
    asio::co_spawn(executor_, [self, logs_since]() { return self->read_logs(logs_since); },
                   asio::detached);
  }

  std::string describe() const override { return "container " + short_id(id_); }
  bool exited() const override { return exited_.is_set(); }
  ExitStatus exit_status() const override { return status_; }
  InstanceLog& log() override { return log_; }

  awaitable<bool> wait_exit(Duration timeout) override {
    co_return co_await exited_.wait_for(timeout);
  }

  awaitable<void> wait_output_closed(Duration timeout) override {
    co_await output_closed_.wait_for(timeout);
  }

  awaitable<void> stop(Duration grace) override {
    if (exited_.is_set()) {
      co_return;
    }

    // The engine sends the stop signal, then SIGKILL after `grace`.
    // watch_exit() detects the exit and removes the container.
    auto grace_seconds = std::chrono::ceil<seconds>(grace);
    DockerResponse stopped = co_await client_->call(
        "POST", "/containers/" + id_ + "/stop?t=" + std::to_string(grace_seconds.count()), {},
        grace + kStopMargin);
    // 304: it was not running; 404: it is gone already.
    bool accepted = stopped.ok() || stopped.status == 304 || stopped.status == 404;
    if (accepted) {
      bool exited = co_await exited_.wait_for(kExitWait);
      if (exited) {
        co_return;
      }
      launcher_log()->warn("container {} did not report its exit; removing it by force",
                           short_id(id_));
    } else {
      launcher_log()->error("cannot stop container {}: {}; removing it by force", short_id(id_),
                            client_->describe_failure(stopped));
    }

    // Give up the wait request, so that watch_exit() removes the container.
    giving_up_ = true;
    if (wait_stream_) {
      wait_stream_->close();
    }
    bool exited = co_await exited_.wait_for(kRemoveTimeout + seconds(5));
    if (!exited) {
      launcher_log()->error("container {} may still exist; the next gateway start removes it",
                            short_id(id_));
    }
  }

 private:
  static std::shared_ptr<spdlog::logger> launcher_log() { return component_logger("launcher"); }

  // Waits for the exit through POST /wait, falling back to GET /json while
  // the engine cannot be reached. Then removes the container.
  awaitable<void> watch_exit() {
    bool warned = false;
    bool known = false;
    while (!giving_up_) {
      std::string failure;
      DockerStreamResult opened =
          co_await client_->open("POST", "/containers/" + id_ + "/wait", {}, seconds(30));
      if (opened.stream) {
        wait_stream_ = opened.stream;
        boost::system::error_code error;
        std::string body = co_await opened.stream->read_rest(kMaxBodyBytes, error);
        wait_stream_.reset();
        std::optional<int> code = parse_wait_status(body);
        if (!error && opened.stream->status() == 200 && code) {
          status_.code = *code;
          known = true;
          break;
        }
        if (!error && opened.stream->status() == 404) {
          gone_ = true;
          break;
        }
        failure = error ? error.message() : DockerResponse{opened.stream->status(), body, {}}.message();
      } else {
        failure = opened.error;
      }
      if (giving_up_) {
        break;
      }

      if (!warned) {
        launcher_log()->warn("lost the exit watch of container {} ({}); checking its state every {} s",
                             short_id(id_), failure, kInspectInterval.count());
        warned = true;
      }
      co_await sleep_for(kInspectInterval);
      DockerResponse inspected = co_await client_->call("GET", "/containers/" + id_ + "/json");
      std::optional<ContainerState> state = parse_container_state(inspected.body);
      if (inspected.status == 404) {
        gone_ = true;
        break;
      }
      if (inspected.ok() && state && !state->running) {
        status_.code = state->exit_code;
        known = true;
        break;
      }
    }
    if (gone_) {
      launcher_log()->warn("container {} was removed outside the gateway", short_id(id_));
    }
    if (!known) {
      // NOTE: ExitStatus has no "unknown"; -1 stands for it, as no process
      // exits with a negative code.
      status_.code = -1;
    }

    launcher_log()->debug("container {} exited with {}", short_id(id_), status_.describe());

    // Let the last log lines arrive, then remove the container.
    bool drained = co_await output_closed_.wait_for(kLogDrainTimeout);
    if (!drained && logs_stream_) {
      launcher_log()->debug("the logs of container {} did not end within {} s of its exit",
                            short_id(id_), kLogDrainTimeout.count());
      logs_stream_->close();
    }
    if (!gone_) {
      std::string error = co_await remove_container(*client_, id_);
      if (!error.empty()) {
        launcher_log()->error("{}", error);
      } else {
        launcher_log()->debug("container {} removed", short_id(id_));
      }
    }
    exited_.set();
  }

  // Copies the container's stdout and stderr into the instance log.
  awaitable<void> read_logs(long long since) {
    std::string target = "/containers/" + id_ + "/logs?follow=1&stdout=1&stderr=1";
    if (since > 0) {
      target += "&since=" + std::to_string(since);
    }
    DockerStreamResult opened = co_await client_->open("GET", target, {}, seconds(30));
    if (!opened.stream || opened.stream->status() != 200) {
      std::string reason = opened.stream ? "HTTP " + std::to_string(opened.stream->status())
                                         : opened.error;
      launcher_log()->warn("cannot follow the logs of container {}: {}", short_id(id_), reason);
      log_.finish();
      output_closed_.set();
      co_return;
    }
    logs_stream_ = opened.stream;

    LogFrameState state;
    std::vector<LogChunk> chunks;
    bool raw = false;
    char buffer[16 * 1024];
    for (;;) {
      boost::system::error_code error;
      std::size_t count = co_await opened.stream->read_some(buffer, error);
      std::string_view input(buffer, count);
      if (raw) {
        log_.append(input);
      } else {
        chunks.clear();
        LogFrameResult result = decode_log_frames(state, input, chunks);
        for (const LogChunk& chunk : chunks) {
          log_.append(chunk.data);
        }
        if (result == LogFrameResult::invalid_header) {
          // Containers are created without a TTY, so this is unexpected;
          // keep the text rather than lose it.
          launcher_log()->warn("the logs of container {} are not multiplexed; copying them as "
                               "they are", short_id(id_));
          raw = true;
        }
      }
      if (error) {
        break;
      }
    }
    logs_stream_.reset();
    log_.finish();
    output_closed_.set();
  }

  asio::any_io_executor executor_;
  std::shared_ptr<DockerClient> client_;
  std::string id_;
  Event exited_;
  Event output_closed_;
  ExitStatus status_;
  InstanceLog log_;
  std::shared_ptr<DockerStream> wait_stream_;
  std::shared_ptr<DockerStream> logs_stream_;
  bool giving_up_ = false;  // stop() stopped waiting for the exit
  bool gone_ = false;       // the container was removed by someone else
};

DockerEndpoint endpoint_of(const config::DockerSettings& settings) {
  DockerEndpoint endpoint;
  endpoint.text = settings.endpoint;
  endpoint.socket_path = settings.socket_path;
  endpoint.host = settings.host;
  endpoint.port = settings.port;
  endpoint.tls_ca = settings.tls_ca;
  endpoint.tls_cert = settings.tls_cert;
  endpoint.tls_key = settings.tls_key;
  return endpoint;
}

std::string hex32(std::uint64_t value) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text(8, '0');
  for (int digit = 7; digit >= 0; --digit) {
    text[static_cast<std::size_t>(digit)] = kHex[value & 0xf];
    value >>= 4;
  }
  return text;
}

}  // namespace

DockerRuntime::DockerRuntime(const config::Config& config, const config::Worker& worker,
                             std::string gateway_id)
    : config_(config),
      worker_(worker),
      gateway_id_(std::move(gateway_id)),
      client_(std::make_shared<DockerClient>(endpoint_of(worker.docker))) {}

DockerRuntime::~DockerRuntime() = default;

const std::string& DockerRuntime::setup_error() const { return client_->setup_error(); }

ContainerSpec DockerRuntime::container_spec(const LaunchSpec& spec) const {
  ContainerSpec container;
  container.image = spec.image_name;
  std::size_t split = std::min(spec.entrypoint_words, spec.argv.size());
  container.entrypoint.assign(spec.argv.begin(), spec.argv.begin() + static_cast<long>(split));
  container.cmd.assign(spec.argv.begin() + static_cast<long>(split), spec.argv.end());
  container.env = spec.env;
  container.labels = {
      {std::string(kLabelGateway), gateway_id_},
      {std::string(kLabelDeployment), spec.deployment},
      {std::string(kLabelInstance), spec.instance_id},
      {std::string(kLabelWorker), worker_.name},
      {std::string(kLabelPort), std::to_string(spec.port)},
  };
  container.network = worker_.docker.network;
  container.host_ip = worker_.ip;
  container.port = spec.port;

  // NOTE: the model path is checked on the gateway's host, which is the
  // engine's host only for unix:// endpoints and local tcp:// ones.
  std::error_code error;
  bool mountable = !spec.model_path.empty() && spec.model_path.front() == '/' &&
                   std::filesystem::exists(spec.model_path, error);
  if (mountable) {
    container.read_only_binds.push_back(spec.model_path);
  }
  container.framework = spec.framework;
  container.gpu_ids = worker_.docker.gpu_ids;
  return container;
}

awaitable<StartResult> DockerRuntime::start(const LaunchSpec& spec,
                                            asio::any_io_executor executor) {
  StartResult result;

  std::string image_error = co_await ensure_image(spec);
  if (!image_error.empty()) {
    result.error = std::move(image_error);
    co_return result;
  }

  // Create the container, recording the spec's fingerprint for adoption.
  ContainerSpec container = container_spec(spec);
  container.labels[std::string(kLabelSpec)] = spec_fingerprint(container);
  DockerResponse created =
      co_await client_->call("POST", "/containers/create?name=" + url_encode(spec.instance_id),
                             container_create_body(container));
  std::optional<std::string> id = parse_created_id(created.body);
  if (!created.ok() || !id) {
    result.error = "cannot create container " + spec.instance_id + " from image '" +
                   spec.image_name + "': " + client_->describe_failure(created);
    co_return result;
  }
  for (const std::string& warning : parse_create_warnings(created.body)) {
    log()->warn("container {} of instance {}: {}", short_id(*id), spec.instance_id, warning);
  }

  // Start it; a container that cannot start is removed again.
  DockerResponse started = co_await client_->call("POST", "/containers/" + *id + "/start");
  if (!started.ok() && started.status != 304) {
    result.error = "cannot start container " + short_id(*id) + " of image '" + spec.image_name +
                   "': " + client_->describe_failure(started);
    std::string removal_error = co_await remove_container(*client_, *id);
    if (!removal_error.empty()) {
      log()->error("{}", removal_error);
    }
    co_return result;
  }

  auto instance = std::make_shared<DockerInstance>(executor, client_, *id, spec);
  instance->begin(0);
  result.instance = std::move(instance);
  co_return result;
}

awaitable<std::string> DockerRuntime::ensure_image(const LaunchSpec& spec) {
  const std::string& image = spec.image_name;
  const std::string& endpoint = client_->endpoint().text;
  std::string policy = spec.pull_policy.empty() ? worker_.docker.pull_policy : spec.pull_policy;
  if (image.empty()) {
    co_return "deployment '" + spec.deployment + "' has no image_name, which runtime docker needs";
  }

  if (policy != "always") {
    DockerResponse inspected = co_await client_->call("GET", "/images/" + image_path(image) + "/json");
    if (inspected.ok()) {
      co_return std::string();
    }
    if (inspected.status != 404) {
      co_return "cannot look up image '" + image + "': " + client_->describe_failure(inspected);
    }
    if (policy == "never") {
      co_return "image '" + image + "' is not present on the container engine at " + endpoint +
                " and pull_policy is never; load or pull it there first (docker pull " + image +
                "), or set pull_policy: if-not-present";
    }
  }
  co_return co_await pull_image(image, Clock::now() + spec.startup_timeout);
}

awaitable<std::string> DockerRuntime::pull_image(const std::string& image,
                                                 Clock::time_point deadline) {
  const std::string& endpoint = client_->endpoint().text;
  Clock::time_point began = Clock::now();
  log()->info("worker '{}': pulling image '{}' on the container engine at {}", worker_.name, image,
              endpoint);

  // NOTE: no registry credentials are sent (X-Registry-Auth), so private
  // registries work only where the engine itself is logged in.
  DockerStreamResult opened =
      co_await client_->open("POST", "/images/create?" + image_pull_query(image), {}, seconds(30));
  if (!opened.stream) {
    co_return "cannot pull image '" + image + "': " + opened.error;
  }
  std::shared_ptr<DockerStream> stream = opened.stream;
  if (stream->status() != 200) {
    boost::system::error_code ignored;
    std::string body = co_await stream->read_rest(kMaxBodyBytes, ignored);
    co_return "cannot pull image '" + image + "': " +
              client_->describe_failure(DockerResponse{stream->status(), body, {}});
  }

  // The body is a stream of JSON progress lines; errors arrive as lines too.
  // The pull ends at `deadline`, the deployment's startup_timeout.
  asio::steady_timer limit(co_await asio::this_coro::executor, deadline);
  limit.async_wait([weak = std::weak_ptr<DockerStream>(stream)](boost::system::error_code error) {
    auto alive = weak.lock();
    if (!error && alive) {
      alive->close();
    }
  });
  std::string pending;
  std::string failure;
  std::vector<char> buffer(8 * 1024);
  for (;;) {
    boost::system::error_code error;
    std::size_t count = co_await stream->read_some(buffer, error);
    pending.append(buffer.data(), count);
    for (std::size_t end = pending.find('\n'); end != std::string::npos; end = pending.find('\n')) {
      std::string line_error = pull_error(std::string_view(pending).substr(0, end));
      if (failure.empty() && !line_error.empty()) {
        failure = line_error;
      }
      pending.erase(0, end + 1);
    }
    if (is_end_of_body(error)) {
      break;
    }
    if (error) {
      limit.cancel();
      bool timed_out = Clock::now() >= deadline;
      co_return "pulling image '" + image + "' " +
                (timed_out ? std::string("did not finish within the deployment's startup_timeout")
                           : "broke off: " + error.message());
    }
  }
  limit.cancel();
  if (failure.empty() && !pending.empty()) {
    failure = pull_error(pending);
  }
  if (!failure.empty()) {
    co_return "cannot pull image '" + image + "': " + failure;
  }
  log()->info("worker '{}': pulled image '{}' in {} ms", worker_.name, image,
              std::chrono::duration_cast<milliseconds>(Clock::now() - began).count());
  co_return std::string();
}

awaitable<LeftBehindList> DockerRuntime::find_left_behind() {
  co_return co_await find_backends_of(gateway_id_);
}

awaitable<LeftBehindList> DockerRuntime::find_backends_of(std::string gateway_id) {
  LeftBehindList result;
  DockerResponse listed =
      co_await client_->call("GET", "/containers/json?" + container_list_query(kLabelGateway, gateway_id));
  std::optional<std::vector<ContainerSummary>> containers = parse_container_list(listed.body);
  if (!listed.ok() || !containers) {
    result.error = "cannot list the containers of gateway '" + gateway_id + "': " +
                   (listed.ok() ? "the response is not a JSON list" : client_->describe_failure(listed));
    co_return result;
  }

  for (const ContainerSummary& container : *containers) {
    auto label = [&](std::string_view key) {
      auto found = container.labels.find(std::string(key));
      return found == container.labels.end() ? std::string() : found->second;
    };
    // Two workers may share one engine, so each takes its own containers.
    // Those of a worker that the config no longer has are taken by every
    // runtime; removing them twice does no harm.
    const config::Worker* owner = config_.find_worker(label(kLabelWorker));
    bool orphan = owner == nullptr || owner->runtime != "docker";
    if (label(kLabelWorker) != worker_.name && !orphan) {
      continue;
    }

    LeftBehind entry;
    entry.runtime_id = container.id;
    entry.instance_id = label(kLabelInstance);
    entry.deployment = label(kLabelDeployment);
    entry.worker = label(kLabelWorker);
    entry.running = container.state == "running";
    entry.spec_fingerprint = label(kLabelSpec);
    std::string port = label(kLabelPort);
    bool port_valid = !port.empty() && port.size() <= 5 &&
                      port.find_first_not_of("0123456789") == std::string::npos &&
                      std::stoi(port) <= std::numeric_limits<std::uint16_t>::max();
    entry.port = port_valid ? static_cast<std::uint16_t>(std::stoi(port)) : 0;
    result.found.push_back(std::move(entry));
  }
  co_return result;
}

awaitable<StartResult> DockerRuntime::adopt(const LeftBehind& found, const LaunchSpec& spec,
                                            asio::any_io_executor executor) {
  StartResult result;
  if (!found.running) {
    result.error = "it is not running";
    co_return result;
  }
  std::string fingerprint = spec_fingerprint(container_spec(spec));
  if (found.spec_fingerprint != fingerprint) {
    result.error = "it was started from another image, command, environment or worker setting";
    co_return result;
  }

  // Logs written since the instance log file last changed are copied, so
  // that the file does not repeat lines it contains already.
  long long since = 0;
  struct stat status {};
  if (::stat(spec.log_file.c_str(), &status) == 0) {
    since = static_cast<long long>(status.st_mtime);
  }
  auto instance = std::make_shared<DockerInstance>(executor, client_, found.runtime_id, spec);
  instance->begin(since);
  result.instance = std::move(instance);
  co_return result;
}

awaitable<std::string> DockerRuntime::remove_left_behind(const LeftBehind& found) {
  co_return co_await stop_and_remove(*client_, found.runtime_id,
                                     config_.gateway.stop_grace_period);
}

awaitable<void> DockerRuntime::log_engine_version() {
  DockerResponse version = co_await client_->call("GET", "/version", {}, seconds(10));
  std::optional<std::string> description = describe_engine_version(version.body);
  if (!version.ok() || !description) {
    log()->warn("worker '{}': the container engine at {} is not usable ({}); its deployments "
                "fail to start until it is",
                worker_.name, client_->endpoint().text,
                version.ok() ? "GET /version gave no version" : client_->describe_failure(version));
    co_return;
  }
  log()->info("worker '{}': container engine {} at {}", worker_.name, *description,
              client_->endpoint().text);
}

std::string default_gateway_id(const config::Config& config) {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::error_code error;
  std::filesystem::path path = std::filesystem::absolute(config.path, error);
  std::string key = std::string(host) + "\n" + path.string() + "\n" +
                    config.gateway.listen_address + ":" +
                    std::to_string(config.gateway.listen_port);

  // FNV-1a, 64 bits, folded to 32: stable across runs and builds.
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : key) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  return "mg-" + hex32((hash >> 32) ^ (hash & 0xffffffffULL));
}

}  // namespace modelgate::launcher
