#pragma once

// Model -> deployment -> instances: the routes the request path reads.
//
// The request path reads an immutable RouteTable snapshot that the store
// swaps atomically on every change, so a lookup takes no lock. Instances are
// shared InstanceHandle objects whose state and request counts are atomics:
// the launcher changes the state, and requests count themselves in and out.

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
  Clock::time_point started_at() const { return started_at_; }

 private:
  std::string id_;
  std::string deployment_;
  std::string host_;
  std::uint16_t port_;
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

// Storage of the routes. The in-memory store serves one gateway; other stores
// share routes between gateways.
class RouteStore {
 public:
  virtual ~RouteStore() = default;

  virtual std::shared_ptr<const RouteTable> snapshot() const = 0;
  virtual void add_instance(InstancePtr instance) = 0;
  virtual void remove_instance(const InstanceHandle& instance) = 0;
  // Called after an instance's state changed.
  virtual void update_instance(const InstanceHandle& instance) = 0;
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
