#pragma once

// Model -> deployment -> instances: the routes the request path reads.
//
// The request path reads an immutable RouteTable snapshot that the store
// swaps atomically on every change, so a lookup takes no lock. Instances are
// shared InstanceHandle objects whose state and request counts are atomics:
// the launcher changes the state, and requests count themselves in and out.

#include "routing/asio_prelude.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace modelgate::routing {

// Instance states, named as in GPUStack.
enum class InstanceState : std::uint8_t {
  starting,  // launched, health check not yet passed
  running,   // serving requests
  stopping,  // being stopped; takes no new requests
  error,     // failed to start, or exited unexpectedly
};

std::string_view to_string(InstanceState state);

class InstanceHandle {
 public:
  using Clock = std::chrono::steady_clock;

  InstanceHandle(std::string id, std::string deployment, std::string host,
                 std::uint16_t port);

  const std::string& id() const { return id_; }
  const std::string& deployment() const { return deployment_; }
  const std::string& host() const { return host_; }
  std::uint16_t port() const { return port_; }
  // The worker that runs it; empty for instances of other gateways whose
  // record names none.
  const std::string& worker() const { return worker_; }
  void set_worker(std::string worker) { worker_ = std::move(worker); }

  InstanceState state() const { return state_.load(); }
  void set_state(InstanceState state) { state_.store(state); }

  // Counts a request in if the instance is RUNNING. Returns false, and
  // counts nothing, otherwise. Pairs with try_begin_stop(): an instance never
  // stops with a request counted in.
  bool try_acquire();
  // Counts a request out and records the time as the last use.
  void release();

  // Moves RUNNING to STOPPING when no request is counted in.
  bool try_begin_stop();

  int in_flight() const { return in_flight_.load(); }
  Clock::time_point last_used() const;
  // Moves the last use forward to `when`, never back: a use on another
  // gateway keeps the instance from going idle here.
  void note_used_at(Clock::time_point when);
  Clock::time_point started_at() const { return started_at_; }

 private:
  std::string id_;
  std::string deployment_;
  std::string host_;
  std::uint16_t port_;
  std::string worker_;
  Clock::time_point started_at_;
  std::atomic<InstanceState> state_{InstanceState::starting};
  std::atomic<int> in_flight_{0};
  std::atomic<Clock::rep> last_used_;
};

using InstancePtr = std::shared_ptr<InstanceHandle>;

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const {
    return std::hash<std::string_view>{}(text);
  }
};

// An immutable snapshot of every deployment's instances.
class RouteTable {
 public:
  using Map = std::unordered_map<std::string, std::vector<InstancePtr>,
                                 StringHash, std::equal_to<>>;

  RouteTable() = default;
  explicit RouteTable(Map routes) : routes_(std::move(routes)) {}

  // Returns the RUNNING instance of the deployment with the fewest requests
  // in flight, or nullptr.
  InstancePtr pick(std::string_view deployment) const;

  const std::vector<InstancePtr>* instances(std::string_view deployment) const;
  const Map& routes() const { return routes_; }

 private:
  Map routes_;
};

// The right to cold-start a deployment, taken before a start so that
// gateways sharing a store start it once.
struct StartClaim {
  bool granted = false;
  // Increases with every claim of the deployment; zero for a claim that
  // was granted without a shared store.
  long long fencing_token = 0;
  // When not granted: the gateway id in the claim, for logs.
  std::string holder;
};

// An instance whose gateway died, found in a shared store. Another gateway
// that can reach its runtime may adopt it.
struct OrphanedInstance {
  std::string deployment;
  std::string id;
  std::string host;
  std::uint16_t port = 0;
  std::string worker;
  std::string owner;  // the gateway id of the dead gateway
};

// Storage of the routes. The in-memory store serves one gateway; other stores
// share routes between gateways. The launcher calls the writers from its
// strands; snapshot() may be called from any thread.
class RouteStore {
 public:
  using ChangeListener = std::function<void(const std::string& deployment)>;
  using OrphanListener = std::function<void(const OrphanedInstance& orphan)>;

  virtual ~RouteStore() = default;

  virtual std::shared_ptr<const RouteTable> snapshot() const = 0;
  virtual void add_instance(InstancePtr instance) = 0;
  virtual void remove_instance(const InstanceHandle& instance) = 0;
  // Called after an instance's state changed.
  virtual void update_instance(const InstanceHandle& instance) = 0;

  // True when other gateways share the routes, so that a cold start must be
  // claimed first.
  virtual bool shared() const { return false; }
  // Claims the cold start of `deployment` for `ttl`. A store that is not
  // shared grants every claim.
  virtual awaitable<StartClaim> claim_start(std::string deployment,
                                            std::chrono::milliseconds ttl);
  // Gives a granted claim back once its start ended, either way.
  virtual void release_start(const std::string& deployment, const StartClaim& claim);
  // Called when a connection to `instance` failed. Returns true when the
  // store stopped routing to it (now or after an earlier report), because
  // it is another gateway's instance that may have died with its gateway,
  // so that the caller tries another.
  virtual bool report_unreachable(const InstanceHandle& instance);
  // Sets the function called with a deployment's name after instances of
  // other gateways changed. It runs on the store's executor and must not
  // block.
  virtual void set_change_listener(ChangeListener listener);
  // Sets the function called, on one gateway only, with each instance whose
  // gateway's lease expired, after its route was removed.
  virtual void set_orphan_listener(OrphanListener listener);
  // Returns the id of another live gateway that serves instance `id`, or an
  // empty string, so that a restarted gateway does not adopt an instance
  // that another gateway adopted meanwhile.
  virtual awaitable<std::string> live_owner_of(std::string deployment, std::string id);
};

class MemoryRouteStore final : public RouteStore {
 public:
  MemoryRouteStore();

  std::shared_ptr<const RouteTable> snapshot() const override;
  void add_instance(InstancePtr instance) override;
  void remove_instance(const InstanceHandle& instance) override;
  void update_instance(const InstanceHandle& instance) override;

 private:
  // Writers copy the current table, change the copy and swap it in. Writes
  // are rare (instance starts and stops), so they serialize on a mutex.
  void modify(const std::function<void(RouteTable::Map&)>& change);

  std::atomic<std::shared_ptr<const RouteTable>> table_;
  std::mutex write_mutex_;
};

}  // namespace modelgate::routing
