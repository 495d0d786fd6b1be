#pragma once

// The launcher: instance lifecycle per deployment. It starts instances on
// demand, holds requests until one is ready, stops idle instances, and stops
// everything at shutdown. It knows nothing about client connections: the
// gateway hands it a HeldRequest and gets an instance or a reason back.

#include "routing/asio_prelude.hpp"

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/steady_timer.hpp>

#include "config/config.hpp"
#include "routing/route_table.hpp"

namespace modelgate::launcher {

class ProcessGuard;
class DeploymentController;
class LifecycleObserver;
class Runtime;
class PortAllocator;

enum class AcquireStatus {
  ready,            // `instance` is RUNNING
  start_failed,     // the backend exited or could not be started
  start_timed_out,  // the health check did not pass within startup_timeout
  hold_timed_out,   // the request's own hold deadline passed
  queue_full,       // too many requests held for the deployment
  client_gone,      // the client disconnected while held
  shutting_down,    // the gateway is stopping
};

struct AcquireResult {
  AcquireStatus status = AcquireStatus::hold_timed_out;
  routing::InstancePtr instance;
  std::string reason;  // for the operator's log and the client's error
};

// A request waiting for an instance. It lives on the executor of the
// connection that holds it; complete() may be called from any thread.
class HeldRequest : public std::enable_shared_from_this<HeldRequest> {
 public:
  HeldRequest(asio::any_io_executor executor,
              std::chrono::steady_clock::time_point deadline,
              std::string request_id);

  // Delivers the result and wakes the waiting request. The first call wins.
  void complete(AcquireResult result);
  const std::string& request_id() const { return request_id_; }

  // Waits until complete() or the deadline. Runs on the connection's executor.
  awaitable<AcquireResult> wait();

 private:
  asio::steady_timer timer_;
  std::optional<AcquireResult> result_;
  std::string request_id_;
};

// One instance as the admin API shows it. An instance that failed stays
// listed in ERROR until an instance of its deployment becomes RUNNING.
struct InstanceStatus {
  std::string id;
  std::string deployment;
  routing::InstanceState state;
  std::string endpoint;    // host:port
  std::string runtime_id;  // "pid 1234"
  int in_flight = 0;
  double uptime_seconds = 0;  // until now, or until it failed
  std::vector<std::string> last_log_lines;
  std::string error;  // why it is in ERROR; empty otherwise
};

struct DeploymentStatus {
  std::string name;
  // "running", "starting", "stopping", "error" (the last start failed and
  // nothing runs) or "stopped".
  std::string state;
  std::string last_error;
  std::size_t held_requests = 0;
};

class Launcher {
 public:
  // Controllers run on strands of `io_context`. `guard` and `observer` may
  // be null; `observer` must outlive the launcher.
  Launcher(asio::io_context& io_context, const config::Config& config,
           routing::RouteStore& routes, ProcessGuard* guard,
           LifecycleObserver* observer = nullptr);
  ~Launcher();

  // Checks what start-up needs beyond the config file: port ranges outside
  // the ephemeral range, a writable log directory, loadable TLS files of
  // docker workers. Throws std::runtime_error with the problem and the fix.
  void check_startup() const;

  // Waits until an instance of `deployment` is RUNNING, starting one if none
  // is starting, or until the request's deadline.
  awaitable<AcquireResult> acquire(const config::Deployment& deployment,
                                   std::shared_ptr<HeldRequest> held);

  // Fails every held request and stops every instance. Returns once all
  // have exited.
  awaitable<void> shutdown();

  std::vector<InstanceStatus> instances() const;
  std::vector<DeploymentStatus> deployments() const;

 private:
  // Adopts or removes the containers that an earlier run of this gateway
  // left behind (it was killed with SIGKILL), then lets the deployments on
  // docker workers start instances. Runs once, from the constructor.
  awaitable<void> recover_left_behind();
  // Adopts a container of a gateway that died, when it runs on a docker
  // worker of this gateway and passes the checks of adopt().
  awaitable<void> adopt_orphan(routing::OrphanedInstance orphan);

  asio::io_context& io_context_;
  const config::Config& config_;
  routing::RouteStore& routes_;
  std::vector<std::unique_ptr<Runtime>> runtimes_;
  std::vector<std::unique_ptr<PortAllocator>> port_allocators_;
  std::map<std::string, std::shared_ptr<DeploymentController>, std::less<>> controllers_;
};

std::string_view to_string(AcquireStatus status);

}  // namespace modelgate::launcher
