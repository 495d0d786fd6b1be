#include "routing/redis_route_store.hpp"

#include <random>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "routing/logger.hpp"

namespace modelgate::routing {
namespace {

using json = nlohmann::json;
using std::chrono::duration_cast;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;
using SystemClock = std::chrono::system_clock;

// How often last-used times are exchanged through Redis.
constexpr auto kUsageInterval = std::chrono::seconds(1);

// Deletes KEYS[1] only while its value is still ARGV[1], so that a gateway
// never releases a claim that expired and was taken by another one.
constexpr const char* kCompareAndDelete =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) "
    "else return 0 end";

std::shared_ptr<spdlog::logger> log() { return component_logger("routing"); }

long long to_unix_ms(SteadyClock::time_point when) {
  auto wall = SystemClock::now() - duration_cast<SystemClock::duration>(SteadyClock::now() - when);
  return duration_cast<milliseconds>(wall.time_since_epoch()).count();
}

// NOTE: converting through the wall clock assumes the gateways' clocks agree
// to well under a second, as NTP keeps them.
SteadyClock::time_point from_unix_ms(long long unix_ms) {
  auto wall = SystemClock::time_point(milliseconds(unix_ms));
  return SteadyClock::now() - duration_cast<SteadyClock::duration>(SystemClock::now() - wall);
}

std::optional<InstanceState> parse_state(std::string_view text) {
  for (InstanceState state : {InstanceState::starting, InstanceState::running,
                              InstanceState::stopping, InstanceState::error}) {
    if (to_string(state) == text) {
      return state;
    }
  }
  return std::nullopt;
}

std::string random_hex() {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device device;
  std::string text;
  for (int index = 0; index < 4; ++index) {
    std::uint32_t value = device();
    for (int digit = 0; digit < 8; ++digit) {
      text += kHex[(value >> (digit * 4)) & 0xf];
    }
  }
  return text;
}

}  // namespace

RedisRouteStore::RedisRouteStore(asio::io_context& io_context,
                                 const config::RedisSettings& settings, std::string gateway_id,
                                 std::vector<std::string> deployments, RedisObserver* observer)
    : strand_(asio::make_strand(io_context)),
      settings_(settings),
      gateway_id_(std::move(gateway_id)),
      deployments_(std::move(deployments)),
      observer_(observer),
      lease_value_(random_hex()),
      commands_(std::make_shared<RedisClient>(strand_, settings, "commands")),
      subscriber_(std::make_shared<RedisClient>(strand_, settings, "subscriber")),
      heartbeat_timer_(strand_),
      resync_timer_(strand_),
      usage_timer_(strand_),
      table_(std::make_shared<const RouteTable>()) {}

RedisRouteStore::~RedisRouteStore() = default;

std::string RedisRouteStore::instances_key(const std::string& deployment) const {
  return settings_.key_prefix + ":instances:" + deployment;
}
std::string RedisRouteStore::last_used_key(const std::string& deployment) const {
  return settings_.key_prefix + ":last_used:" + deployment;
}
std::string RedisRouteStore::claim_key(const std::string& deployment) const {
  return settings_.key_prefix + ":claim:" + deployment;
}
std::string RedisRouteStore::fence_key(const std::string& deployment) const {
  return settings_.key_prefix + ":fence:" + deployment;
}
std::string RedisRouteStore::lease_key(const std::string& gateway_id) const {
  return settings_.key_prefix + ":lease:" + gateway_id;
}
std::string RedisRouteStore::events_channel() const { return settings_.key_prefix + ":events"; }

void RedisRouteStore::spawn(std::function<awaitable<void>()> task) {
  asio::co_spawn(strand_, std::move(task), asio::detached);
}

void RedisRouteStore::start() {
  asio::post(strand_, [this] {
    commands_->on_connected = [this] {
      // Set before any reload can run on the new connection.
      if (in_outage_) {
        keep_missing_until_ = SteadyClock::now() + settings_.lease_ttl;
      }
      spawn([this] { return on_connected(); });
    };
    commands_->on_disconnected = [this](const std::string& reason) {
      connected_.store(false);
      if (observer_ != nullptr) {
        observer_->on_redis_connected(false);
      }
      note_failure("the connection", RedisReply::failure(reason));
    };
    commands_->on_connect_failed = [this](const std::string& reason) {
      note_failure("connecting", RedisReply::failure(reason));
    };
    // Messages may have been lost while the subscriber was away.
    subscriber_->on_connected = [this] { spawn([this] { return resync(); }); };
    subscriber_->subscribe(events_channel(), [this](std::string_view, std::string_view message) {
      std::string deployment(message);
      if (std::find(deployments_.begin(), deployments_.end(), deployment) != deployments_.end()) {
        spawn([this, deployment] { return reload(deployment, false); });
      }
    });
    commands_->start();
    subscriber_->start();
    spawn([this] { return heartbeat_loop(); });
    spawn([this] { return resync_loop(); });
    spawn([this] { return usage_loop(); });
  });
}

awaitable<void> RedisRouteStore::shutdown() {
  auto finish = [this]() -> awaitable<void> {
    asio::steady_timer pause(strand_);
    auto deadline = SteadyClock::now() + std::chrono::seconds(2);
    while (pending_writes_ > 0 && SteadyClock::now() < deadline) {
      pause.expires_after(milliseconds(10));
      boost::system::error_code ignored;
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
    if (commands_->connected()) {
      co_await commands_->command("DEL", lease_key(gateway_id_));
    }
    stopped_ = true;
    heartbeat_timer_.cancel();
    resync_timer_.cancel();
    usage_timer_.cancel();
    commands_->stop();
    subscriber_->stop();
  };
  co_await asio::co_spawn(strand_, finish(), asio::use_awaitable);
}

std::shared_ptr<const RouteTable> RedisRouteStore::snapshot() const { return table_.load(); }

void RedisRouteStore::set_change_listener(ChangeListener listener) {
  asio::post(strand_, [this, listener = std::move(listener)]() mutable {
    listener_ = std::move(listener);
  });
}

void RedisRouteStore::set_orphan_listener(OrphanListener listener) {
  asio::post(strand_, [this, listener = std::move(listener)]() mutable {
    orphan_listener_ = std::move(listener);
  });
}

awaitable<std::string> RedisRouteStore::live_owner_of(std::string deployment, std::string id) {
  auto find = [this, deployment, id]() -> awaitable<std::string> {
    // At start-up the connection may still be coming up.
    asio::steady_timer pause(strand_);
    auto deadline = SteadyClock::now() + settings_.lease_ttl;
    while (!commands_->connected() && SteadyClock::now() < deadline) {
      pause.expires_after(milliseconds(20));
      boost::system::error_code ignored;
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
    RedisReply reply = co_await commands_->command("HGET", instances_key(deployment), id);
    if (reply.kind != RedisReply::Kind::string) {
      co_return std::string();
    }
    std::optional<Record> record = decode(id, reply.text);
    if (!record || record->owner == gateway_id_) {
      co_return std::string();
    }
    bool alive = co_await lease_alive(record->owner);
    co_return alive ? record->owner : std::string();
  };
  co_return co_await asio::co_spawn(strand_, find(), asio::use_awaitable);
}

void RedisRouteStore::add_instance(InstancePtr instance) {
  long long fencing_token = 0;
  {
    std::lock_guard lock(mutex_);
    own_[instance->deployment()].push_back(instance);
    auto token = fencing_tokens_.find(instance->deployment());
    fencing_token = token == fencing_tokens_.end() ? 0 : token->second;
    rebuild_snapshot();
  }
  std::string record = encode(*instance, fencing_token);
  spawn([this, deployment = instance->deployment(), id = instance->id(), record] {
    return publish(deployment, id, record);
  });
}

void RedisRouteStore::update_instance(const InstanceHandle& instance) {
  long long fencing_token = 0;
  {
    std::lock_guard lock(mutex_);
    auto token = fencing_tokens_.find(instance.deployment());
    fencing_token = token == fencing_tokens_.end() ? 0 : token->second;
  }
  std::string record = encode(instance, fencing_token);
  spawn([this, deployment = instance.deployment(), id = instance.id(), record] {
    return publish(deployment, id, record);
  });
}

void RedisRouteStore::remove_instance(const InstanceHandle& instance) {
  bool found = false;
  {
    std::lock_guard lock(mutex_);
    auto list = own_.find(instance.deployment());
    if (list != own_.end()) {
      found = std::erase_if(list->second, [&](const InstancePtr& candidate) {
                return candidate.get() == &instance;
              }) > 0;
      if (list->second.empty()) {
        own_.erase(list);
      }
    }
    rebuild_snapshot();
  }
  if (found) {
    spawn([this, deployment = instance.deployment(), id = instance.id()] {
      return unpublish(deployment, id);
    });
  }
}

bool RedisRouteStore::report_unreachable(const InstanceHandle& instance) {
  std::string deployment = instance.deployment();
  {
    std::lock_guard lock(mutex_);
    // A request on another thread may have reported it a moment ago: the
    // store routes around it already, and this caller tries another too.
    auto reported = unreachable_until_.find(instance.id());
    if (reported != unreachable_until_.end() && reported->second > SteadyClock::now()) {
      return true;
    }
    auto instances = remote_.find(deployment);
    if (instances == remote_.end()) {
      return false;
    }
    auto found = instances->second.find(instance.id());
    if (found == instances->second.end() || found->second.get() != &instance) {
      return false;
    }
    log()->warn("instance {} of '{}' at {}:{} refused the connection; routing around it until "
                "its gateway's lease is checked",
                instance.id(), printable(deployment), instance.host(), instance.port());
    unreachable_until_[instance.id()] = SteadyClock::now() + 2 * settings_.lease_ttl;
    instances->second.erase(found);
    rebuild_snapshot();
  }
  spawn([this, deployment] { return reload(deployment, true); });
  return true;
}

void RedisRouteStore::rebuild_snapshot() {
  // Called with mutex_ held.
  RouteTable::Map routes;
  for (const auto& [deployment, instances] : own_) {
    routes[deployment] = instances;
  }
  for (const auto& [deployment, instances] : remote_) {
    for (const auto& [id, instance] : instances) {
      routes[deployment].push_back(instance);
    }
  }
  table_.store(std::make_shared<const RouteTable>(std::move(routes)));
}

std::string RedisRouteStore::encode(const InstanceHandle& instance, long long fencing_token) const {
  json record = {
      {"state", to_string(instance.state())},
      {"host", instance.host()},
      {"port", instance.port()},
      {"worker", instance.worker()},
      {"owner", gateway_id_},
      {"started_at", to_unix_ms(instance.started_at())},
      {"fence", fencing_token},
  };
  return record.dump();
}

std::optional<RedisRouteStore::Record> RedisRouteStore::decode(const std::string& id,
                                                               const std::string& text) {
  json record = json::parse(text, nullptr, false);
  if (!record.is_object()) {
    return std::nullopt;
  }
  Record result;
  result.id = id;
  std::optional<InstanceState> state = parse_state(record.value("state", ""));
  int port = record.value("port", 0);
  if (!state || port <= 0 || port > 65535) {
    return std::nullopt;
  }
  result.state = *state;
  result.host = record.value("host", "");
  result.port = static_cast<std::uint16_t>(port);
  result.worker = record.value("worker", "");
  result.owner = record.value("owner", "");
  if (result.host.empty() || result.owner.empty()) {
    return std::nullopt;
  }
  return result;
}

void RedisRouteStore::note_failure(const std::string& operation, const RedisReply& reply) {
  if (observer_ != nullptr) {
    observer_->on_redis_error();
  }
  if (in_outage_) {
    log()->debug("Redis {} failed again: {}", operation, reply.text);
    return;
  }
  in_outage_ = true;
  if (observer_ != nullptr) {
    observer_->on_redis_outage();
  }
  log()->warn("Redis at {} is unavailable ({} failed: {}); serving from the local routes and "
              "starting instances without claims until it is back",
              settings_.redacted_url(), operation, reply.text);
}

void RedisRouteStore::note_connected() {
  connected_.store(true);
  if (observer_ != nullptr) {
    observer_->on_redis_connected(true);
  }
  if (in_outage_) {
    in_outage_ = false;
    log()->info("Redis at {} is back; republishing own instances and resyncing",
                settings_.redacted_url());
  } else {
    log()->info("connected to Redis at {} as gateway '{}'", settings_.redacted_url(),
                gateway_id_);
  }
}

awaitable<void> RedisRouteStore::publish(std::string deployment, std::string id,
                                         std::string record) {
  if (!commands_->connected()) {
    co_return;  // republished on reconnect
  }
  ++pending_writes_;
  RedisReply set = co_await commands_->command("HSET", instances_key(deployment), id, record);
  if (set.ok()) {
    co_await commands_->command("PUBLISH", events_channel(), deployment);
  } else {
    note_failure("HSET " + instances_key(deployment), set);
  }
  --pending_writes_;
}

awaitable<void> RedisRouteStore::unpublish(std::string deployment, std::string id) {
  if (!commands_->connected()) {
    co_return;  // removed on reconnect, because it is no longer own
  }
  ++pending_writes_;
  RedisReply removed = co_await commands_->command("HDEL", instances_key(deployment), id);
  if (removed.ok()) {
    co_await commands_->command("HDEL", last_used_key(deployment), id);
    co_await commands_->command("PUBLISH", events_channel(), deployment);
  } else {
    note_failure("HDEL " + instances_key(deployment), removed);
  }
  --pending_writes_;
}

awaitable<void> RedisRouteStore::on_connected() {
  note_connected();
  co_await renew_lease();
  co_await republish_own();
  co_await resync();
}

awaitable<bool> RedisRouteStore::renew_lease() {
  // SET ... GET returns the previous value: nil means that the lease had
  // expired, so other gateways may have removed this gateway's routes.
  RedisReply reply = co_await commands_->command("SET", lease_key(gateway_id_), lease_value_, "PX",
       std::to_string(duration_cast<milliseconds>(settings_.lease_ttl).count()), "GET");
  if (!reply.ok()) {
    note_failure("renewing the lease " + lease_key(gateway_id_), reply);
    co_return false;
  }
  co_return reply.kind == RedisReply::Kind::nil;
}

std::vector<InstancePtr> RedisRouteStore::own_instances(const std::string& deployment,
                                                        long long* fencing_token) const {
  std::lock_guard lock(mutex_);
  if (fencing_token != nullptr) {
    auto token = fencing_tokens_.find(deployment);
    *fencing_token = token == fencing_tokens_.end() ? 0 : token->second;
  }
  auto found = own_.find(deployment);
  return found == own_.end() ? std::vector<InstancePtr>{} : found->second;
}

awaitable<void> RedisRouteStore::republish_own() {
  for (const std::string& deployment : deployments_) {
    // Entries with this gateway's id that this process does not run were
    // left by an earlier run, which was killed: its processes died with it.
    // An instance may become own (started or adopted) while this runs, so
    // each entry is checked against the current list, and the list written
    // below is read after the removals.
    RedisReply all = co_await commands_->command("HGETALL", instances_key(deployment));
    if (!all.ok()) {
      note_failure("HGETALL " + instances_key(deployment), all);
      co_return;
    }
    bool changed = false;
    for (std::size_t index = 0; index + 1 < all.elements.size(); index += 2) {
      const std::string& id = all.elements[index].text;
      std::optional<Record> record = decode(id, all.elements[index + 1].text);
      if (!record || record->owner != gateway_id_) {
        continue;
      }
      std::vector<InstancePtr> own = own_instances(deployment, nullptr);
      bool is_own = std::any_of(own.begin(), own.end(),
                                [&](const InstancePtr& instance) { return instance->id() == id; });
      if (!is_own) {
        log()->info("removing route of instance {} of '{}' at {}:{}, left by an earlier run of "
                    "gateway '{}'",
                    id, printable(deployment), record->host, record->port, gateway_id_);
        co_await commands_->command("HDEL", instances_key(deployment), id);
        co_await commands_->command("HDEL", last_used_key(deployment), id);
        changed = true;
      }
    }

    long long fencing_token = 0;
    std::vector<InstancePtr> own = own_instances(deployment, &fencing_token);
    for (const InstancePtr& instance : own) {
      RedisReply set = co_await commands_->command("HSET", instances_key(deployment), instance->id(), encode(*instance, fencing_token));
      if (!set.ok()) {
        note_failure("HSET " + instances_key(deployment), set);
        co_return;
      }
      changed = true;
    }
    if (changed) {
      co_await commands_->command("PUBLISH", events_channel(), deployment);
    }
  }
}

awaitable<void> RedisRouteStore::resync() {
  for (const std::string& deployment : deployments_) {
    co_await reload(deployment, true);
  }
}

awaitable<bool> RedisRouteStore::lease_alive(const std::string& gateway_id) {
  RedisReply reply = co_await commands_->command("EXISTS", lease_key(gateway_id));
  // Unknown counts as alive: nothing is removed on a failed read.
  co_return !reply.ok() || reply.integer != 0;
}

awaitable<void> RedisRouteStore::reload(std::string deployment, bool remove_dead_owners) {
  if (!commands_->connected()) {
    co_return;
  }
  RedisReply all = co_await commands_->command("HGETALL", instances_key(deployment));
  if (!all.ok()) {
    note_failure("HGETALL " + instances_key(deployment), all);
    co_return;
  }

  // Read the other gateways' records; with `remove_dead_owners`, remove
  // those whose owner's lease expired.
  std::vector<Record> records;
  std::map<std::string, bool> owner_alive;
  bool removed_any = false;
  for (std::size_t index = 0; index + 1 < all.elements.size(); index += 2) {
    const std::string& id = all.elements[index].text;
    std::optional<Record> record = decode(id, all.elements[index + 1].text);
    if (!record) {
      log()->warn("ignoring invalid route record {} in {}", printable(id),
                  instances_key(deployment));
      continue;
    }
    if (record->owner == gateway_id_) {
      continue;
    }
    if (remove_dead_owners) {
      auto known = owner_alive.find(record->owner);
      if (known == owner_alive.end()) {
        bool alive = co_await lease_alive(record->owner);
        known = owner_alive.emplace(record->owner, alive).first;
      }
      if (!known->second) {
        RedisReply removed = co_await commands_->command("HDEL", instances_key(deployment), id);
        co_await commands_->command("HDEL", last_used_key(deployment), id);
        removed_any = true;
        // HDEL returns 1 on one gateway only: that one may adopt it.
        if (removed.kind == RedisReply::Kind::integer && removed.integer == 1) {
          log()->info("removed route of instance {} of '{}' at {}:{}: the lease of its gateway "
                      "'{}' expired",
                      id, printable(deployment), record->host, record->port, record->owner);
          if (orphan_listener_) {
            orphan_listener_(OrphanedInstance{deployment, id, record->host, record->port,
                                              record->worker, record->owner});
          }
        }
        continue;
      }
    }
    records.push_back(std::move(*record));
  }
  if (removed_any) {
    co_await commands_->command("PUBLISH", events_channel(), deployment);
  }

  // Update the remote instances in place, so that handles keep their
  // request counts and last-used times.
  bool changed = false;
  {
    std::lock_guard lock(mutex_);
    SteadyTime now = SteadyClock::now();
    std::erase_if(unreachable_until_, [&](const auto& entry) { return entry.second <= now; });
    std::map<std::string, InstancePtr>& current = remote_[deployment];
    std::map<std::string, InstancePtr> next;
    if (now < keep_missing_until_) {
      next = current;
    }
    for (const Record& record : records) {
      if (unreachable_until_.contains(record.id)) {
        continue;
      }
      auto found = current.find(record.id);
      InstancePtr instance;
      if (found != current.end() && found->second->host() == record.host &&
          found->second->port() == record.port) {
        instance = found->second;
      } else {
        instance = std::make_shared<InstanceHandle>(record.id, deployment, record.host,
                                                    record.port);
        instance->set_worker(record.worker);
        changed = true;
      }
      if (instance->state() != record.state) {
        instance->set_state(record.state);
        changed = true;
      }
      next[record.id] = instance;
    }
    if (next.size() != current.size()) {
      changed = true;
    }
    current = std::move(next);
    if (changed) {
      rebuild_snapshot();
      log()->debug("routes of '{}' changed: {} instance(s) of other gateways",
                   printable(deployment), current.size());
    }
  }
  if (changed && listener_) {
    listener_(deployment);
  }
}

awaitable<void> RedisRouteStore::heartbeat_loop() {
  while (!stopped_) {
    heartbeat_timer_.expires_after(settings_.heartbeat_interval);
    boost::system::error_code error;
    co_await heartbeat_timer_.async_wait(asio::redirect_error(asio::use_awaitable, error));
    if (stopped_) {
      co_return;
    }
    if (!commands_->connected()) {
      continue;
    }
    bool lapsed = co_await renew_lease();
    if (lapsed) {
      log()->warn("the lease {} had expired, so other gateways may have removed this "
                  "gateway's routes; publishing them again",
                  lease_key(gateway_id_));
      co_await republish_own();
    }
  }
}

awaitable<void> RedisRouteStore::resync_loop() {
  while (!stopped_) {
    resync_timer_.expires_after(settings_.resync_interval);
    boost::system::error_code error;
    co_await resync_timer_.async_wait(asio::redirect_error(asio::use_awaitable, error));
    if (stopped_) {
      co_return;
    }
    co_await resync();
  }
}

awaitable<void> RedisRouteStore::usage_loop() {
  while (!stopped_) {
    usage_timer_.expires_after(kUsageInterval);
    boost::system::error_code error;
    co_await usage_timer_.async_wait(asio::redirect_error(asio::use_awaitable, error));
    if (stopped_) {
      co_return;
    }
    if (commands_->connected()) {
      co_await share_last_used();
    }
  }
}

awaitable<void> RedisRouteStore::share_last_used() {
  // Requests served here by other gateways' instances: at most one HSET
  // per instance per interval.
  std::vector<InstancePtr> used_remote;
  std::vector<std::string> own_deployments;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [deployment, instances] : remote_) {
      for (const auto& [id, instance] : instances) {
        // A long request, such as a stream, keeps the instance in use.
        if (instance->in_flight() > 0) {
          instance->note_used_at(SteadyClock::now());
        }
        auto shared = shared_last_used_.find(id);
        if (shared == shared_last_used_.end() || shared->second < instance->last_used()) {
          used_remote.push_back(instance);
        }
      }
    }
    for (const auto& [deployment, instances] : own_) {
      own_deployments.push_back(deployment);
    }
  }
  for (const InstancePtr& instance : used_remote) {
    InstanceHandle::Clock::time_point last_used = instance->last_used();
    RedisReply set = co_await commands_->command("HSET", last_used_key(instance->deployment()),
                                                  instance->id(),
                                                  std::to_string(to_unix_ms(last_used)));
    if (!set.ok()) {
      note_failure("HSET " + last_used_key(instance->deployment()), set);
      co_return;
    }
    shared_last_used_[instance->id()] = last_used;
  }

  // Uses of this gateway's instances by other gateways delay their idle
  // stop here.
  for (const std::string& deployment : own_deployments) {
    RedisReply all = co_await commands_->command("HGETALL", last_used_key(deployment));
    if (!all.ok()) {
      note_failure("HGETALL " + last_used_key(deployment), all);
      co_return;
    }
    std::lock_guard lock(mutex_);
    auto found = own_.find(deployment);
    if (found == own_.end()) {
      continue;
    }
    for (std::size_t index = 0; index + 1 < all.elements.size(); index += 2) {
      for (const InstancePtr& instance : found->second) {
        if (instance->id() != all.elements[index].text) {
          continue;
        }
        long long unix_ms = std::atoll(all.elements[index + 1].text.c_str());
        instance->note_used_at(from_unix_ms(unix_ms));
        log()->debug("instance {} was last used {} ms ago on any gateway", instance->id(),
                     duration_cast<milliseconds>(SteadyClock::now() - instance->last_used())
                         .count());
      }
    }
  }
}

awaitable<StartClaim> RedisRouteStore::claim_start(std::string deployment,
                                                   std::chrono::milliseconds ttl) {
  // Runs on the store's strand; the caller resumes on its own executor.
  auto claim = [this, deployment, ttl]() -> awaitable<StartClaim> {
    StartClaim local{true, 0, {}};
    if (!commands_->connected()) {
      co_return local;  // Redis is down: start here rather than fail requests
    }

    for (int attempt = 0; attempt < 2; ++attempt) {
      RedisReply token = co_await commands_->command("INCR", fence_key(deployment));
      if (!token.ok()) {
        note_failure("INCR " + fence_key(deployment), token);
        co_return local;
      }
      std::string value = gateway_id_ + " " + std::to_string(token.integer);
      RedisReply set = co_await commands_->command("SET", claim_key(deployment), value, "NX", "PX", std::to_string(ttl.count()));
      if (!set.ok()) {
        note_failure("SET " + claim_key(deployment), set);
        co_return local;
      }
      // NOTE: the fencing token goes into the records of the instances this
      // claim starts and guards the claim's release, but Redis does not
      // reject record writes that carry an older token.
      if (set.kind == RedisReply::Kind::status) {
        // The previous holder publishes its instance as RUNNING before it
        // releases the claim, so a RUNNING record now means no start.
        co_await reload(deployment, false);
        InstancePtr running = snapshot()->pick(deployment);
        if (running) {
          co_await commands_->command("EVAL", kCompareAndDelete, "1", claim_key(deployment),
                                      value);
          co_return StartClaim{false, 0, {}};
        }
        std::lock_guard lock(mutex_);
        fencing_tokens_[deployment] = token.integer;
        co_return StartClaim{true, token.integer, {}};
      }

      // Held: by a live gateway, wait for its instance; by an earlier run of
      // this gateway or a gateway whose lease expired, take it over.
      RedisReply holder = co_await commands_->command("GET", claim_key(deployment));
      if (holder.kind != RedisReply::Kind::string) {
        continue;  // released in between
      }
      std::string owner = holder.text.substr(0, holder.text.find(' '));
      bool alive = owner != gateway_id_;
      if (alive) {
        alive = co_await lease_alive(owner);
      }
      if (alive) {
        co_return StartClaim{false, 0, owner};
      }
      log()->info("taking over the cold-start claim of '{}' from gateway '{}', which no longer "
                  "runs",
                  printable(deployment), owner);
      co_await commands_->command("EVAL", kCompareAndDelete, "1", claim_key(deployment),
                                   holder.text);
    }
    co_return StartClaim{false, 0, {}};
  };
  co_return co_await asio::co_spawn(strand_, claim(), asio::use_awaitable);
}

void RedisRouteStore::release_start(const std::string& deployment, const StartClaim& claim) {
  if (claim.fencing_token == 0) {
    return;
  }
  std::string value = gateway_id_ + " " + std::to_string(claim.fencing_token);
  spawn([this, deployment, value]() -> awaitable<void> {
    if (!commands_->connected()) {
      co_return;  // the claim expires on its own
    }
    RedisReply reply = co_await commands_->command("EVAL", kCompareAndDelete, "1", claim_key(deployment), value);
    if (!reply.ok()) {
      note_failure("releasing " + claim_key(deployment), reply);
    }
  });
}

}  // namespace modelgate::routing
