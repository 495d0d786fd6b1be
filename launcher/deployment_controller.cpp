#include "launcher/deployment_controller.hpp"

#include <algorithm>
#include <random>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "config/command.hpp"
#include "launcher/argv_text.hpp"
#include "launcher/health_probe.hpp"
#include "launcher/port_allocator.hpp"
#include "routing/logger.hpp"

namespace modelgate::launcher {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

// How long to wait for a backend's last output after it exited, so that
// error messages carry its final log line.
constexpr auto kOutputDrainTimeout = milliseconds(500);
// How many log lines a failed start writes to the gateway's log.
constexpr std::size_t kFailureLogLines = 10;
// A start claim outlives startup_timeout by this much, so that it expires
// on its own when the claiming gateway dies.
constexpr auto kClaimMargin = std::chrono::seconds(30);
// How often held requests try the claim again while another gateway
// starts the deployment; a change of the routes wakes them earlier.
constexpr auto kClaimRetryInterval = std::chrono::seconds(1);

std::shared_ptr<spdlog::logger> log() { return component_logger("launcher"); }

long long elapsed_ms(Clock::time_point since) {
  return duration_cast<milliseconds>(Clock::now() - since).count();
}

// Keeps letters, digits, '.', '_' and '-' of a deployment name, so that an
// instance id is safe in file names and container names. Docker wants a
// container name to start with a letter or digit.
std::string sanitize_for_id(std::string_view name) {
  std::string result;
  for (char c : name) {
    bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '_' || c == '-';
    result += safe ? c : '_';
    if (result.size() >= 40) {
      break;
    }
  }
  if (result.empty() || result.front() == '.' || result.front() == '-' || result.front() == '_') {
    result.insert(0, "m");
  }
  return result;
}

}  // namespace

DeploymentController::DeploymentController(asio::io_context& io_context,
                                           const config::Config& config,
                                           const config::Deployment& deployment,
                                           const config::Worker& worker, Runtime& runtime,
                                           PortAllocator& ports, routing::RouteStore& routes,
                                           LifecycleObserver* observer)
    : strand_(asio::make_strand(io_context)),
      config_(config),
      deployment_(deployment),
      worker_(worker),
      runtime_(runtime),
      ports_(ports),
      routes_(routes),
      observer_(observer) {}

void DeploymentController::enqueue(std::shared_ptr<HeldRequest> held) {
  if (shutting_down_) {
    held->complete({AcquireStatus::shutting_down, nullptr, "the gateway is shutting down"});
    return;
  }

  // A request can arrive here after its instance became RUNNING.
  {
    std::lock_guard lock(status_mutex_);
    for (const InstancePtr& instance : instances_) {
      if (instance->handle->state() == routing::InstanceState::running) {
        held->complete({AcquireStatus::ready, instance->handle, {}});
        return;
      }
    }
  }
  if (routing::InstancePtr remote = routes_.snapshot()->pick(deployment_.name)) {
    held->complete({AcquireStatus::ready, std::move(remote), {}});
    return;
  }

  std::size_t limit = config_.gateway.max_held_requests_per_deployment;
  if (waiters_.size() >= limit) {
    held->complete({AcquireStatus::queue_full, nullptr,
                    std::to_string(waiters_.size()) + " requests are already waiting for model '" +
                        deployment_.name + "' to start"});
    return;
  }

  waiters_.push_back(std::move(held));
  update_held_count();
  if (!recovering_ && launching_ == 0 && !has_instance_in(routing::InstanceState::starting)) {
    request_start();
  }
}

void DeploymentController::on_routes_changed() {
  if (waiters_.empty() || shutting_down_) {
    return;
  }
  if (routing::InstancePtr remote = routes_.snapshot()->pick(deployment_.name)) {
    log()->info("instance {} of '{}' at {}:{} became RUNNING on another gateway, {} held "
                "request(s) released",
                remote->id(), printable(deployment_.name), remote->host(), remote->port(),
                waiters_.size());
    wake_waiters({AcquireStatus::ready, remote, {}});
    return;
  }
  if (claim_retry_) {
    claim_retry_->cancel();
  }
}

void DeploymentController::request_start() {
  if (!routes_.shared()) {
    start_instances();
    return;
  }
  if (claiming_) {
    return;
  }
  claiming_ = true;
  asio::co_spawn(strand_, [self = shared_from_this()] { return self->claim_and_start(); },
                 asio::detached);
}

awaitable<void> DeploymentController::claim_and_start() {
  auto ttl = duration_cast<milliseconds>(deployment_.startup_timeout + kClaimMargin);
  if (!claim_retry_) {
    claim_retry_ = std::make_unique<asio::steady_timer>(strand_);
  }

  for (;;) {
    // Stop when nothing waits any more, or when an instance starts or runs.
    if (shutting_down_ || waiters_.empty() || launching_ > 0 ||
        has_instance_in(routing::InstanceState::starting)) {
      break;
    }
    if (routing::InstancePtr ready = routes_.snapshot()->pick(deployment_.name)) {
      wake_waiters({AcquireStatus::ready, ready, {}});
      break;
    }

    routing::StartClaim claim = co_await routes_.claim_start(deployment_.name, ttl);
    bool still_needed = !shutting_down_ && !waiters_.empty() && launching_ == 0 &&
                        !has_instance_in(routing::InstanceState::starting);
    if (claim.granted && still_needed) {
      claim_ = claim;
      claimed_starts_ = deployment_.replicas;
      start_instances();
      break;
    }
    if (claim.granted) {
      routes_.release_start(deployment_.name, claim);
      continue;
    }
    if (routes_.snapshot()->pick(deployment_.name)) {
      continue;  // the claim found a RUNNING instance
    }
    log()->debug("gateway '{}' is starting '{}'; {} request(s) wait for its instance",
                 claim.holder, printable(deployment_.name), waiters_.size());

    claim_retry_->expires_after(kClaimRetryInterval);
    boost::system::error_code ignored;
    co_await claim_retry_->async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
  claiming_ = false;
}

void DeploymentController::end_claimed_start() {
  if (claimed_starts_ == 0) {
    return;
  }
  if (--claimed_starts_ == 0) {
    routes_.release_start(deployment_.name, claim_);
    claim_ = {};
  }
}

void DeploymentController::forget(const HeldRequest* held) {
  std::erase_if(waiters_, [held](const auto& waiter) { return waiter.get() == held; });
  update_held_count();
}

void DeploymentController::start_instances() {
  for (int replica = 0; replica < deployment_.replicas; ++replica) {
    ++launching_;
    asio::co_spawn(strand_, [self = shared_from_this()] { return self->run_instance(); },
                   asio::detached);
  }
}

awaitable<void> DeploymentController::run_instance() {
  Clock::time_point started = Clock::now();
  auto instance = std::make_shared<Instance>();

  // Reserve a port and register the instance as STARTING.
  std::optional<std::uint16_t> port = ports_.allocate();
  std::string instance_id = next_instance_id();
  instance->handle = std::make_shared<routing::InstanceHandle>(
      instance_id, deployment_.name, worker_.ip, port.value_or(0));
  instance->handle->set_worker(worker_.name);
  {
    std::lock_guard lock(status_mutex_);
    instances_.push_back(instance);
  }
  --launching_;
  report_state(instance, routing::InstanceState::starting);
  if (!port) {
    fail_start(instance, AcquireStatus::start_failed,
               "no free port in worker '" + worker_.name + "' range " +
                   std::to_string(worker_.ports.first) + "-" + std::to_string(worker_.ports.last));
    co_return;
  }
  routes_.add_instance(instance->handle);

  // Render the command and start the backend.
  LaunchSpec spec;
  try {
    spec = build_spec(instance_id, *port);
  } catch (const config::CommandError& error) {
    fail_start(instance, AcquireStatus::start_failed,
               std::string("cannot render the run command: ") + error.what());
    co_return;
  }
  log()->info("instance {} of '{}' starting on {}:{}: {}", instance_id,
              printable(deployment_.name), worker_.ip, *port, argv_for_log(spec.argv));

  ++starts_in_progress_;
  StartResult start = co_await runtime_.start(spec, strand_);
  if (shutting_down_ && start.instance) {
    // shutdown() began while the runtime was starting it (a container
    // start takes a while): stop it again before shutdown() returns.
    instance->runtime = std::move(start.instance);
    log()->info("instance {} of '{}' started as {} during shutdown; stopping it", instance_id,
                printable(deployment_.name), instance->runtime->describe());
    co_await instance->runtime->stop(config_.gateway.stop_grace_period);
  }
  --starts_in_progress_;
  if (shutting_down_) {
    if (starts_in_progress_ == 0 && starts_ended_) {
      starts_ended_->set();
    }
    fail_start(instance, AcquireStatus::shutting_down, "the gateway is shutting down");
    co_return;
  }
  if (!start.instance) {
    fail_start(instance, AcquireStatus::start_failed, start.error);
    co_return;
  }
  instance->runtime = std::move(start.instance);
  instance->runtime_id = instance->runtime->describe();
  log()->info("instance {} started as {}, log {}", instance_id, instance->runtime_id,
              spec.log_file.string());

  // Probe until healthy; on failure fail_start() already ran.
  // g++ 12 miscompiles co_await inside an if condition, so the result is
  // stored first here and in the rest of the project.
  bool healthy = co_await wait_until_healthy(instance, started);
  if (!healthy) {
    co_return;
  }

  set_state(instance, routing::InstanceState::running);
  routes_.update_instance(*instance->handle);
  end_claimed_start();
  clear_failed();
  {
    std::lock_guard lock(status_mutex_);
    last_error_.clear();
  }
  auto startup = Clock::now() - started;
  if (observer_ != nullptr) {
    observer_->on_cold_start(deployment_.name, ColdStartResult::success,
                             std::chrono::duration<double>(startup).count());
  }
  log()->info("instance {} of '{}' healthy after {} ms, {} held request(s) released",
              instance_id, printable(deployment_.name),
              duration_cast<milliseconds>(startup).count(), waiters_.size());
  wake_waiters({AcquireStatus::ready, instance->handle, {}});

  co_await serve_until_stopped(instance);
}

awaitable<bool> DeploymentController::wait_until_healthy(const InstancePtr& instance,
                                                         Clock::time_point started) {
  const auto& gateway = config_.gateway;
  Clock::time_point deadline = started + deployment_.startup_timeout;
  RuntimeInstance& runtime = *instance->runtime;
  std::string last_probe = "no health check answered yet";

  for (;;) {
    if (runtime.exited()) {
      co_await runtime.wait_output_closed(kOutputDrainTimeout);
      if (shutting_down_) {
        fail_start(instance, AcquireStatus::shutting_down, "the gateway is shutting down");
        co_return false;
      }
      std::string reason = "backend exited with " + runtime.exit_status().describe() +
                           " while starting";
      std::string last_line = runtime.log().last_line();
      if (!last_line.empty()) {
        reason += "; last log line: " + last_line;
      }
      fail_start(instance, AcquireStatus::start_failed, std::move(reason));
      co_return false;
    }

    Clock::time_point now = Clock::now();
    if (now >= deadline) {
      std::string reason = "backend did not pass the health check GET " +
                           deployment_.health_check_path + " within " +
                           std::to_string(duration_cast<milliseconds>(deployment_.startup_timeout).count()) +
                           " ms (" + last_probe + ")";
      std::string last_line = runtime.log().last_line();
      if (!last_line.empty()) {
        reason += "; last log line: " + last_line;
      }
      co_await runtime.stop(gateway.stop_grace_period);
      fail_start(instance, AcquireStatus::start_timed_out, std::move(reason));
      co_return false;
    }

    auto probe_timeout = std::min<Clock::duration>(gateway.health_check_timeout, deadline - now);
    HealthResult health = co_await probe_health(
        worker_.ip, instance->handle->port(), deployment_.health_check_path,
        duration_cast<milliseconds>(probe_timeout) + milliseconds(1));
    if (health.healthy) {
      co_return true;
    }
    last_probe = health.status != 0 ? "last answer: HTTP " + std::to_string(health.status)
                                    : "last error: " + health.error;

    // Waiting on the exit wakes the loop early when the backend dies.
    auto pause = std::min<Clock::duration>(gateway.health_check_interval,
                                           std::max<Clock::duration>(deadline - Clock::now(), {}));
    co_await runtime.wait_exit(pause);
  }
}

awaitable<void> DeploymentController::serve_until_stopped(const InstancePtr& instance) {
  routing::InstanceHandle& handle = *instance->handle;
  RuntimeInstance& runtime = *instance->runtime;
  Clock::duration idle_timeout = deployment_.idle_timeout;

  for (;;) {
    Clock::duration wait = Clock::duration::max();
    if (idle_timeout > Clock::duration::zero()) {
      wait = std::max<Clock::duration>(handle.last_used() + idle_timeout - Clock::now(),
                                       milliseconds(1));
    }
    bool exited = co_await runtime.wait_exit(wait);

    if (exited) {
      if (handle.state() == routing::InstanceState::stopping) {
        co_return;  // shutdown() stopped it
      }
      co_await runtime.wait_output_closed(kOutputDrainTimeout);
      std::string reason = "exited unexpectedly with " + runtime.exit_status().describe();
      log()->error("instance {} of '{}' ({}) {}; last log lines:\n{}", handle.id(),
                   printable(deployment_.name), instance->runtime_id, reason,
                   fmt::join(runtime.log().last_lines(kFailureLogLines), "\n"));
      {
        std::lock_guard lock(status_mutex_);
        last_error_ = reason;
      }
      set_state(instance, routing::InstanceState::error);
      remove(instance);
      keep_failed(instance, std::move(reason));
      co_return;
    }

    // Idle check: last_used moves whenever a request ends.
    bool idle = handle.in_flight() == 0 && Clock::now() - handle.last_used() >= idle_timeout;
    if (idle && handle.try_begin_stop()) {
      if (observer_ != nullptr) {
        observer_->on_idle_stop(deployment_.name);
      }
      auto idle_seconds = duration_cast<std::chrono::seconds>(Clock::now() - handle.last_used());
      co_await stop_instance(instance, "idle for " + std::to_string(idle_seconds.count()) + " s");
      co_return;
    }
  }
}

awaitable<void> DeploymentController::stop_instance(const InstancePtr& instance,
                                                    std::string_view reason) {
  routing::InstanceHandle& handle = *instance->handle;
  set_state(instance, routing::InstanceState::stopping);
  routes_.remove_instance(handle);

  Clock::time_point began = Clock::now();
  log()->info("instance {} of '{}' ({}) stopping: {}", handle.id(), printable(deployment_.name),
              instance->runtime_id, reason);
  co_await instance->runtime->stop(config_.gateway.stop_grace_period);
  log()->info("instance {} stopped after {} ms: {}", handle.id(), elapsed_ms(began),
              instance->runtime->exit_status().describe());
  remove(instance);
  report_state(instance, std::nullopt);
}

awaitable<void> DeploymentController::shutdown() {
  shutting_down_ = true;
  wake_waiters({AcquireStatus::shutting_down, nullptr, "the gateway is shutting down"});

  std::vector<InstancePtr> running;
  {
    std::lock_guard lock(status_mutex_);
    running = instances_;
  }
  for (const InstancePtr& instance : running) {
    if (!instance->runtime || instance->runtime->exited()) {
      continue;
    }
    co_await stop_instance(instance, "gateway shutdown");
  }

  // Starts under way stop what they started; see run_instance().
  if (starts_in_progress_ > 0) {
    starts_ended_ = std::make_unique<Event>(strand_);
    co_await starts_ended_->wait();
  }
}

void DeploymentController::fail_start(const InstancePtr& instance, AcquireStatus status,
                                      std::string reason) {
  routing::InstanceHandle& handle = *instance->handle;
  bool shutting_down = status == AcquireStatus::shutting_down;
  if (shutting_down) {
    handle.set_state(routing::InstanceState::error);
  } else {
    set_state(instance, routing::InstanceState::error);
  }

  std::vector<std::string> lines;
  if (instance->runtime) {
    lines = instance->runtime->log().last_lines(kFailureLogLines);
  }
  if (!shutting_down) {
    log()->error("instance {} of '{}' failed to start: {}{}{}", handle.id(),
                 printable(deployment_.name), reason, lines.empty() ? "" : "; last log lines:\n",
                 fmt::join(lines, "\n"));
    std::lock_guard lock(status_mutex_);
    last_error_ = reason;
  }
  remove(instance);

  // A start cut short by shutdown is neither a failure nor a success.
  if (shutting_down) {
    report_state(instance, std::nullopt);
  } else {
    ColdStartResult result = status == AcquireStatus::start_timed_out ? ColdStartResult::timeout
                                                                       : ColdStartResult::failed;
    if (observer_ != nullptr) {
      auto seconds = std::chrono::duration<double>(Clock::now() - handle.started_at()).count();
      observer_->on_cold_start(deployment_.name, result, seconds);
    }
    keep_failed(instance, reason);
  }
  end_claimed_start();

  // Another replica may still start or run; the waiters stay for it.
  if (has_instance_in(routing::InstanceState::starting) ||
      has_instance_in(routing::InstanceState::running)) {
    return;
  }
  wake_waiters({status, nullptr, "model '" + deployment_.name + "' failed to start: " + reason});
}

void DeploymentController::wake_waiters(const AcquireResult& result) {
  for (const auto& held : waiters_) {
    held->complete(result);
  }
  waiters_.clear();
  update_held_count();
}

void DeploymentController::remove(const InstancePtr& instance) {
  routes_.remove_instance(*instance->handle);
  if (instance->handle->port() != 0 && (!instance->runtime || instance->runtime->exited())) {
    ports_.release(instance->handle->port());
  }
  std::lock_guard lock(status_mutex_);
  std::erase(instances_, instance);
}

void DeploymentController::set_state(const InstancePtr& instance, routing::InstanceState state) {
  instance->handle->set_state(state);
  report_state(instance, state);
}

void DeploymentController::report_state(const InstancePtr& instance,
                                        std::optional<routing::InstanceState> state) {
  if (instance->reported_state == state) {
    return;
  }
  if (observer_ != nullptr) {
    observer_->on_instance_state(deployment_.name, instance->reported_state, state);
  }
  instance->reported_state = state;
}

void DeploymentController::keep_failed(const InstancePtr& instance, std::string error) {
  instance->error = std::move(error);
  instance->ended_at = Clock::now();

  // Keep at most one failed instance per replica; the oldest goes first.
  std::vector<InstancePtr> dropped;
  {
    std::lock_guard lock(status_mutex_);
    failed_.push_back(instance);
    auto limit = static_cast<std::size_t>(std::max(deployment_.replicas, 1));
    while (failed_.size() > limit) {
      dropped.push_back(std::move(failed_.front()));
      failed_.pop_front();
    }
  }
  for (const InstancePtr& old : dropped) {
    report_state(old, std::nullopt);
  }
}

void DeploymentController::clear_failed() {
  std::deque<InstancePtr> dropped;
  {
    std::lock_guard lock(status_mutex_);
    dropped.swap(failed_);
  }
  for (const InstancePtr& old : dropped) {
    report_state(old, std::nullopt);
  }
}

void DeploymentController::update_held_count() {
  std::size_t count = waiters_.size();
  std::size_t previous = held_count_.exchange(count);
  if (observer_ != nullptr && previous != count) {
    observer_->on_held_requests(deployment_.name, count);
  }
}

bool DeploymentController::has_instance_in(routing::InstanceState state) const {
  std::lock_guard lock(status_mutex_);
  for (const InstancePtr& instance : instances_) {
    if (instance->handle->state() == state) {
      return true;
    }
  }
  return false;
}

std::string DeploymentController::next_instance_id() {
  static thread_local std::mt19937_64 random{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = sanitize_for_id(deployment_.name) + "-";
  std::uint64_t value = random();
  for (int digit = 0; digit < 8; ++digit) {
    id += kHex[(value >> (digit * 4)) & 0xf];
  }
  return id;
}

LaunchSpec DeploymentController::build_spec(const std::string& instance_id,
                                            std::uint16_t port) const {
  // Environment variables first, so that the built-in names win.
  std::map<std::string, std::string> values = deployment_.effective_env;
  values["model_path"] = deployment_.model_path;
  values["model_name"] = deployment_.name;
  values["port"] = std::to_string(port);
  values["worker_ip"] = worker_.ip;
  values["worker_name"] = worker_.name;
  values["instance_id"] = instance_id;
  // Only docker workers have GPU ids; elsewhere these are "" and "0".
  std::string gpu_ids;
  for (const std::string& id : worker_.docker.gpu_ids) {
    gpu_ids += (gpu_ids.empty() ? "" : ",") + id;
  }
  values["gpu_ids"] = gpu_ids;
  values["gpu_count"] = std::to_string(worker_.docker.gpu_ids.size());
  values["config_dir"] = config_.path.parent_path().string();

  LaunchSpec spec;
  spec.instance_id = instance_id;
  spec.deployment = deployment_.name;
  spec.argv = config::render_command(deployment_.command_template, values);
  std::vector<std::string> parameters = config::render_command(deployment_.parameters, values);
  spec.argv.insert(spec.argv.end(), parameters.begin(), parameters.end());
  spec.env = deployment_.effective_env;
  spec.port = port;
  spec.startup_timeout = deployment_.startup_timeout;
  spec.image_name = deployment_.image_name;
  spec.entrypoint_words = deployment_.entrypoint_words;
  spec.model_path = deployment_.model_path;
  spec.framework = deployment_.framework;
  spec.pull_policy = deployment_.pull_policy.value_or("");
  spec.log_file = config_.gateway.log_dir / (instance_id + ".log");
  spec.log_lines = config_.gateway.instance_log_lines;
  return spec;
}

std::vector<InstanceStatus> DeploymentController::instances() const {
  std::lock_guard lock(status_mutex_);
  std::vector<InstancePtr> listed(instances_.begin(), instances_.end());
  listed.insert(listed.end(), failed_.begin(), failed_.end());

  std::vector<InstanceStatus> result;
  for (const InstancePtr& instance : listed) {
    const routing::InstanceHandle& handle = *instance->handle;
    InstanceStatus status;
    status.id = handle.id();
    status.deployment = handle.deployment();
    status.state = handle.state();
    status.endpoint = handle.host() + ":" + std::to_string(handle.port());
    status.runtime_id = instance->runtime_id;
    status.in_flight = handle.in_flight();
    // A failed instance's uptime ends when it failed.
    Clock::time_point until = instance->ended_at.value_or(Clock::now());
    status.uptime_seconds = std::chrono::duration<double>(until - handle.started_at()).count();
    status.error = instance->error;
    if (instance->runtime) {
      status.last_log_lines = instance->runtime->log().last_lines(20);
    }
    result.push_back(std::move(status));
  }
  return result;
}

DeploymentStatus DeploymentController::status() const {
  DeploymentStatus result;
  result.name = deployment_.name;
  result.held_requests = held_count_.load();

  std::lock_guard lock(status_mutex_);
  result.last_error = last_error_;
  bool running = false;
  bool starting = false;
  bool stopping = false;
  for (const InstancePtr& instance : instances_) {
    routing::InstanceState state = instance->handle->state();
    running = running || state == routing::InstanceState::running;
    starting = starting || state == routing::InstanceState::starting;
    stopping = stopping || state == routing::InstanceState::stopping;
  }
  if (running) {
    result.state = "running";
  } else if (starting) {
    result.state = "starting";
  } else if (stopping) {
    result.state = "stopping";
  } else if (!last_error_.empty()) {
    result.state = "error";
  } else {
    result.state = "stopped";
  }
  return result;
}

}  // namespace modelgate::launcher
