#pragma once

// The lifecycle of one deployment's instances. Every member function runs
// on the controller's strand, except the status readers, which lock.

#include "routing/asio_prelude.hpp"

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "config/config.hpp"
#include "launcher/event.hpp"
#include "launcher/launcher.hpp"
#include "launcher/lifecycle_observer.hpp"
#include "launcher/runtime.hpp"
#include "routing/route_table.hpp"

namespace modelgate::launcher {

class PortAllocator;

class DeploymentController : public std::enable_shared_from_this<DeploymentController> {
 public:
  // `observer` may be null.
  DeploymentController(asio::io_context& io_context, const config::Config& config,
                       const config::Deployment& deployment, const config::Worker& worker,
                       Runtime& runtime, PortAllocator& ports, routing::RouteStore& routes,
                       LifecycleObserver* observer = nullptr);

  using Strand = asio::strand<asio::io_context::executor_type>;
  const Strand& strand() const { return strand_; }

  // Completes the request at once when an instance is RUNNING, else queues the request and
  // starts instances if none is starting.
  void enqueue(std::shared_ptr<HeldRequest> held);
  // Drops a request that stopped waiting (deadline, client gone).
  void forget(const HeldRequest* held);
  // Releases held requests to an instance that another gateway published
  // as RUNNING, or retries the start claim at once.
  void on_routes_changed();

  awaitable<void> shutdown();

  // Holds new starts until end_recovery(), while the launcher looks for
  // instances that an earlier run left behind. Call before the strand runs.
  void begin_recovery() { recovering_ = true; }
  // Takes over an instance that an earlier run left behind, when it matches
  // the deployment's current spec, its port is free in the worker's range
  // and it passes a health check. Returns whether it did; the caller
  // removes what was not adopted.
  awaitable<bool> adopt(LeftBehind found);
  // Lets held requests start instances again.
  void end_recovery();

  const config::Worker& worker() const { return worker_; }

  std::vector<InstanceStatus> instances() const;
  DeploymentStatus status() const;

 private:
  struct Instance {
    routing::InstancePtr handle;
    std::shared_ptr<RuntimeInstance> runtime;
    std::string runtime_id;
    // The state last passed to the observer; empty before the first.
    std::optional<routing::InstanceState> reported_state;
    std::string error;  // why it is in ERROR
    std::optional<std::chrono::steady_clock::time_point> ended_at;
  };
  using InstancePtr = std::shared_ptr<Instance>;

  // Starts instances, after claiming the start when the routes are shared.
  void request_start();
  awaitable<void> claim_and_start();
  void end_claimed_start();
  void start_instances();
  awaitable<void> run_instance();
  awaitable<bool> wait_until_healthy(const InstancePtr& instance,
                                     std::chrono::steady_clock::time_point started);
  awaitable<void> serve_until_stopped(const InstancePtr& instance);
  awaitable<void> stop_instance(const InstancePtr& instance, std::string_view reason);

  void fail_start(const InstancePtr& instance, AcquireStatus status, std::string reason);
  void wake_waiters(const AcquireResult& result);
  void remove(const InstancePtr& instance);
  void set_state(const InstancePtr& instance, routing::InstanceState state);
  void report_state(const InstancePtr& instance, std::optional<routing::InstanceState> state);
  void keep_failed(const InstancePtr& instance, std::string error);
  void clear_failed();
  void update_held_count();
  bool has_instance_in(routing::InstanceState state) const;
  std::string next_instance_id();
  LaunchSpec build_spec(const std::string& instance_id, std::uint16_t port) const;

  Strand strand_;
  const config::Config& config_;
  const config::Deployment& deployment_;
  const config::Worker& worker_;
  Runtime& runtime_;
  PortAllocator& ports_;
  routing::RouteStore& routes_;
  LifecycleObserver* observer_;

  std::deque<std::shared_ptr<HeldRequest>> waiters_;
  bool shutting_down_ = false;
  // Starts spawned but not yet registered in instances_. Requests queued on
  // the strand before a new start registers must not start another one.
  int launching_ = 0;
  bool recovering_ = false;
  // A claim_and_start() loop runs.
  bool claiming_ = false;
  // The claim of the current start, and how many of its replicas have not
  // ended their start yet.
  routing::StartClaim claim_;
  int claimed_starts_ = 0;
  // Wakes claim_and_start() early when the routes change.
  std::unique_ptr<asio::steady_timer> claim_retry_;
  // Calls of Runtime::start() under way, which shutdown() waits for.
  int starts_in_progress_ = 0;
  std::unique_ptr<Event> starts_ended_;

  // Read by the status functions from other threads.
  mutable std::mutex status_mutex_;
  std::vector<InstancePtr> instances_;
  // Instances that failed since the last one became RUNNING, at most
  // `replicas` of them, so that the admin API and the metrics show the
  // ERROR state until a start succeeds.
  std::deque<InstancePtr> failed_;
  std::string last_error_;
  std::atomic<std::size_t> held_count_{0};
};

}  // namespace modelgate::launcher
