#pragma once

// Routes shared through Redis, so that several gateways serve one fleet.
//
// Each gateway keeps a local RouteTable snapshot, swapped atomically like
// MemoryRouteStore's, that the request path reads without touching Redis.
// The snapshot contains this gateway's own instances (the launcher's handles)
// and the instances that other gateways published. It is updated from pub/sub
// messages on a subscriber connection of its own, and by a full resync every
// `resync_interval`, so that a lost message heals. The key schema is
// described in the README, section "Several gateways, one Redis".
//
// When Redis is unreachable, the snapshot stays as it was: running instances
// keep serving, and claims are granted locally. On reconnect the gateway
// renews its lease, republishes its own instances and resyncs.

#include "routing/asio_prelude.hpp"

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "config/config.hpp"
#include "routing/redis_client.hpp"
#include "routing/route_table.hpp"

namespace modelgate::routing {

// Redis connection events, for metrics. Called on the store's executor.
class RedisObserver {
 public:
  virtual ~RedisObserver() = default;
  // A command or a connection attempt failed.
  virtual void on_redis_error() = 0;
  // The gateway lost Redis, or could not reach it at start-up: once per
  // outage.
  virtual void on_redis_outage() = 0;
  virtual void on_redis_connected(bool connected) = 0;
};

class RedisRouteStore final : public RouteStore {
 public:
  using Duration = std::chrono::steady_clock::duration;
  using SteadyTime = std::chrono::steady_clock::time_point;

  // `deployments` are the names this gateway serves; their routes are
  // resynced. `observer` may be null and must outlive the store.
  RedisRouteStore(asio::io_context& io_context, const config::RedisSettings& settings,
                  std::string gateway_id, std::vector<std::string> deployments,
                  RedisObserver* observer = nullptr);
  ~RedisRouteStore() override;

  // Connects and starts the heartbeat, resync and usage loops.
  void start();
  // Waits (at most 2 s) until the changes already made reach Redis, then
  // stops the loops and closes the connections. Call after the launcher
  // stopped its instances, so that their routes are removed.
  awaitable<void> shutdown();

  std::shared_ptr<const RouteTable> snapshot() const override;
  void add_instance(InstancePtr instance) override;
  void remove_instance(const InstanceHandle& instance) override;
  void update_instance(const InstanceHandle& instance) override;
  bool shared() const override { return true; }
  awaitable<StartClaim> claim_start(std::string deployment,
                                    std::chrono::milliseconds ttl) override;
  void release_start(const std::string& deployment, const StartClaim& claim) override;
  void set_change_listener(ChangeListener listener) override;
  bool report_unreachable(const InstanceHandle& instance) override;
  void set_orphan_listener(OrphanListener listener) override;
  awaitable<std::string> live_owner_of(std::string deployment, std::string id) override;

  const std::string& gateway_id() const { return gateway_id_; }
  bool connected() const { return connected_.load(); }

  // Key names, as documented in the README.
  std::string instances_key(const std::string& deployment) const;
  std::string last_used_key(const std::string& deployment) const;
  std::string claim_key(const std::string& deployment) const;
  std::string fence_key(const std::string& deployment) const;
  std::string lease_key(const std::string& gateway_id) const;
  std::string events_channel() const;

 private:
  // One instance as read from Redis.
  struct Record {
    std::string id;
    InstanceState state = InstanceState::starting;
    std::string host;
    std::uint16_t port = 0;
    std::string worker;
    std::string owner;
  };

  std::string encode(const InstanceHandle& instance, long long fencing_token) const;
  static std::optional<Record> decode(const std::string& id, const std::string& text);

  // Runs `task` on the store's strand, detached.
  void spawn(std::function<awaitable<void>()> task);

  awaitable<void> publish(std::string deployment, std::string id, std::string record);
  awaitable<void> unpublish(std::string deployment, std::string id);
  awaitable<void> on_connected();
  awaitable<void> republish_own();
  // A copy of this process's instances of `deployment`, and the deployment's
  // fencing token when `fencing_token` is not null.
  std::vector<InstancePtr> own_instances(const std::string& deployment,
                                         long long* fencing_token) const;
  // Returns true when the lease had expired before this renewal.
  awaitable<bool> renew_lease();
  awaitable<void> resync();
  awaitable<void> reload(std::string deployment, bool remove_dead_owners);
  awaitable<bool> lease_alive(const std::string& gateway_id);
  awaitable<void> heartbeat_loop();
  awaitable<void> resync_loop();
  awaitable<void> usage_loop();
  awaitable<void> share_last_used();

  // Counts a failed command and logs it, once per outage.
  void note_failure(const std::string& operation, const RedisReply& reply);
  void note_connected();
  void rebuild_snapshot();

  asio::strand<asio::io_context::executor_type> strand_;
  const config::RedisSettings& settings_;
  std::string gateway_id_;
  std::vector<std::string> deployments_;
  RedisObserver* observer_;
  // Tells this process's lease apart from that of an earlier run with the
  // same gateway id.
  std::string lease_value_;

  std::shared_ptr<RedisClient> commands_;
  std::shared_ptr<RedisClient> subscriber_;
  asio::steady_timer heartbeat_timer_;
  asio::steady_timer resync_timer_;
  asio::steady_timer usage_timer_;
  bool stopped_ = false;
  // publish() and unpublish() calls under way.
  int pending_writes_ = 0;
  std::atomic<bool> connected_{false};
  // True from the first failure until a command succeeds again.
  bool in_outage_ = false;
  ChangeListener listener_;
  OrphanListener orphan_listener_;

  // Guards the maps below and the snapshot swap. The launcher's strands
  // change `own_`; the store's strand changes `remote_`.
  mutable std::mutex mutex_;
  std::map<std::string, std::vector<InstancePtr>> own_;
  std::map<std::string, std::map<std::string, InstancePtr>> remote_;
  std::map<std::string, long long> fencing_tokens_;  // by deployment, of the current claim
  std::atomic<std::shared_ptr<const RouteTable>> table_;

  // Other gateways' instances that refused connections, by id, and until
  // when they stay out of the snapshot: long enough for the owner's lease
  // to expire and its routes to be removed. Guarded by mutex_.
  std::map<std::string, SteadyTime> unreachable_until_;
  // After a reconnect, records missing from Redis do not remove remote
  // instances until then, because a restarted Redis is empty until the
  // other gateways publish their instances again (store strand).
  SteadyTime keep_missing_until_{};

  // Last-used times already written to Redis, by instance id (store strand).
  std::map<std::string, InstanceHandle::Clock::time_point> shared_last_used_;
};

}  // namespace modelgate::routing
