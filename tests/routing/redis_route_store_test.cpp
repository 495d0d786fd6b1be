#include "routing/redis_route_store.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/use_future.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/redis_server.hpp"

namespace modelgate::routing {
namespace {

using namespace std::chrono_literals;
using testing::RedisServer;

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// An io_context run by a thread of its own, as in the gateway.
class EventLoop {
 public:
  EventLoop() : work_(io_context_.get_executor()), thread_([this] { io_context_.run(); }) {}
  ~EventLoop() { stop(); }

  // Ends the thread; the io_context stays until destruction.
  void stop() {
    if (!thread_.joinable()) {
      return;
    }
    work_.reset();
    io_context_.stop();
    thread_.join();
  }
  asio::io_context& context() { return io_context_; }

 private:
  asio::io_context io_context_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
};

class RedisRouteStoreTest : public ::testing::Test {
 protected:
  RedisRouteStoreTest() {
    settings_.url = server_.url();
    settings_.host = "127.0.0.1";
    settings_.port = server_.port();
    settings_.key_prefix = "test-fleet";
    settings_.lease_ttl = 1s;
    settings_.heartbeat_interval = 300ms;
    settings_.resync_interval = 200ms;
  }

  // The stores are destroyed after the loop's thread has ended, so that no
  // coroutine of theirs runs meanwhile, and before its io_context, which
  // their strands use.
  ~RedisRouteStoreTest() override {
    for (auto& store : stores_) {
      shut_down(*store);
    }
    loop_.stop();
    stores_.clear();
  }

  RedisRouteStore& make_store(const std::string& gateway_id) {
    stores_.push_back(std::make_unique<RedisRouteStore>(
        loop_.context(), settings_, gateway_id, std::vector<std::string>{"demo", "other"}));
    stores_.back()->start();
    EXPECT_TRUE(wait_until([&] { return stores_.back()->connected(); }))
        << gateway_id << " did not connect";
    return *stores_.back();
  }

  void shut_down(RedisRouteStore& store) {
    asio::co_spawn(loop_.context(), store.shutdown(), asio::use_future).get();
  }

  StartClaim claim(RedisRouteStore& store, const std::string& deployment) {
    return asio::co_spawn(loop_.context(), store.claim_start(deployment, 60000ms),
                          asio::use_future)
        .get();
  }

  static InstancePtr instance(const std::string& id, std::uint16_t port) {
    auto handle = std::make_shared<InstanceHandle>(id, "demo", "127.0.0.1", port);
    handle->set_worker("local");
    return handle;
  }

  std::string record(const std::string& id) {
    return server_.command({"HGET", "test-fleet:instances:demo", id});
  }

  RedisServer server_;
  config::RedisSettings settings_;
  EventLoop loop_;
  std::vector<std::unique_ptr<RedisRouteStore>> stores_;
};

TEST_F(RedisRouteStoreTest, PublishesOwnInstance) {
  RedisRouteStore& store = make_store("gw-a");
  InstancePtr own = instance("demo-1", 20001);
  store.add_instance(own);
  EXPECT_EQ(store.snapshot()->instances("demo")->size(), 1u);

  ASSERT_TRUE(wait_until([&] { return record("demo-1") != "(nil)"; })) << "no record in Redis";
  nlohmann::json fields = nlohmann::json::parse(record("demo-1"));
  EXPECT_EQ(fields["state"], "starting");
  EXPECT_EQ(fields["host"], "127.0.0.1");
  EXPECT_EQ(fields["port"], 20001);
  EXPECT_EQ(fields["worker"], "local");
  EXPECT_EQ(fields["owner"], "gw-a");
  EXPECT_GT(fields["started_at"].get<long long>(), 1700000000000LL);
  EXPECT_NE(server_.command({"PTTL", "test-fleet:lease:gw-a"}), "-2") << "no lease";

  own->set_state(InstanceState::running);
  store.update_instance(*own);
  EXPECT_TRUE(wait_until([&] { return record("demo-1").find("running") != std::string::npos; }))
      << record("demo-1");

  store.remove_instance(*own);
  EXPECT_TRUE(wait_until([&] { return record("demo-1") == "(nil)"; })) << record("demo-1");
  EXPECT_EQ(store.snapshot()->instances("demo"), nullptr);
}

TEST_F(RedisRouteStoreTest, SeesOtherGatewaysInstance) {
  RedisRouteStore& owner = make_store("gw-a");
  RedisRouteStore& other = make_store("gw-b");
  std::atomic<int> changes{0};
  other.set_change_listener([&](const std::string& deployment) {
    EXPECT_EQ(deployment, "demo");
    ++changes;
  });

  InstancePtr own = instance("demo-1", 20001);
  owner.add_instance(own);
  ASSERT_TRUE(wait_until([&] { return other.snapshot()->instances("demo") != nullptr; }));
  EXPECT_EQ(other.snapshot()->pick("demo"), nullptr) << "a STARTING instance was picked";

  own->set_state(InstanceState::running);
  owner.update_instance(*own);
  ASSERT_TRUE(wait_until([&] { return other.snapshot()->pick("demo") != nullptr; }));
  InstancePtr seen = other.snapshot()->pick("demo");
  EXPECT_EQ(seen->id(), "demo-1");
  EXPECT_EQ(seen->port(), 20001);
  EXPECT_EQ(seen->worker(), "local");
  EXPECT_GE(changes.load(), 2);

  owner.remove_instance(*own);
  EXPECT_TRUE(wait_until([&] { return other.snapshot()->instances("demo") == nullptr; }));
}

TEST_F(RedisRouteStoreTest, ResyncHealsLostMessage) {
  RedisRouteStore& store = make_store("gw-b");
  server_.command({"SET", "test-fleet:lease:gw-x", "1", "PX", "60000"});
  server_.command({"HSET", "test-fleet:instances:other", "other-1",
                   R"({"state":"running","host":"127.0.0.1","port":20002,"worker":"w",)"
                   R"("owner":"gw-x","started_at":1,"fence":1})"});
  // No PUBLISH: only the periodic resync can find it.
  EXPECT_TRUE(wait_until([&] { return store.snapshot()->pick("other") != nullptr; }));
}

TEST_F(RedisRouteStoreTest, RemovesRoutesOfExpiredLease) {
  RedisRouteStore& survivor = make_store("gw-b");
  RedisRouteStore& other_survivor = make_store("gw-c");
  std::mutex orphans_mutex;
  std::vector<OrphanedInstance> orphans;
  for (RedisRouteStore* store : {&survivor, &other_survivor}) {
    store->set_orphan_listener([&](const OrphanedInstance& orphan) {
      std::lock_guard lock(orphans_mutex);
      orphans.push_back(orphan);
    });
  }
  // A gateway that published an instance and then stopped renewing its
  // lease, as after SIGKILL.
  server_.command({"SET", "test-fleet:lease:gw-dead", "1", "PX", "700"});
  server_.command({"HSET", "test-fleet:instances:demo", "demo-1",
                   R"({"state":"running","host":"127.0.0.1","port":20001,"worker":"w",)"
                   R"("owner":"gw-dead","started_at":1,"fence":1})"});
  server_.command({"PUBLISH", "test-fleet:events", "demo"});
  ASSERT_TRUE(wait_until([&] { return survivor.snapshot()->pick("demo") != nullptr; }));

  EXPECT_TRUE(wait_until([&] { return record("demo-1") == "(nil)"; }, 5s)) << record("demo-1");
  EXPECT_TRUE(wait_until([&] { return survivor.snapshot()->instances("demo") == nullptr; }));
  EXPECT_TRUE(wait_until([&] { return other_survivor.snapshot()->instances("demo") == nullptr; }));

  // One gateway, and only one, is offered the instance for adoption.
  std::lock_guard lock(orphans_mutex);
  ASSERT_EQ(orphans.size(), 1u);
  EXPECT_EQ(orphans[0].id, "demo-1");
  EXPECT_EQ(orphans[0].deployment, "demo");
  EXPECT_EQ(orphans[0].owner, "gw-dead");
  EXPECT_EQ(orphans[0].worker, "w");
  EXPECT_EQ(orphans[0].port, 20001);
}

TEST_F(RedisRouteStoreTest, RemovesEntriesOfEarlierRun) {
  server_.command({"HSET", "test-fleet:instances:demo", "demo-old",
                   R"({"state":"running","host":"127.0.0.1","port":20009,"worker":"w",)"
                   R"("owner":"gw-a","started_at":1,"fence":1})"});
  RedisRouteStore& restarted = make_store("gw-a");
  EXPECT_TRUE(wait_until([&] { return record("demo-old") == "(nil)"; })) << record("demo-old");
  EXPECT_EQ(restarted.snapshot()->instances("demo"), nullptr);
}

TEST_F(RedisRouteStoreTest, ClaimGrantedToOneGateway) {
  RedisRouteStore& first = make_store("gw-a");
  RedisRouteStore& second = make_store("gw-b");

  StartClaim granted = claim(first, "demo");
  EXPECT_TRUE(granted.granted);
  EXPECT_GT(granted.fencing_token, 0);
  StartClaim refused = claim(second, "demo");
  EXPECT_FALSE(refused.granted);
  EXPECT_EQ(refused.holder, "gw-a");
  EXPECT_TRUE(claim(second, "other").granted) << "claims are per deployment";

  first.release_start("demo", granted);
  ASSERT_TRUE(wait_until([&] {
    return server_.command({"EXISTS", "test-fleet:claim:demo"}) == "0";
  }));
  StartClaim next = claim(second, "demo");
  EXPECT_TRUE(next.granted);
  EXPECT_GT(next.fencing_token, granted.fencing_token);

  // A stale release with the old token leaves the new claim in place.
  first.release_start("demo", granted);
  StartClaim again = claim(first, "demo");
  EXPECT_FALSE(again.granted);
}

TEST_F(RedisRouteStoreTest, ClaimOfDeadGatewayIsTakenOver) {
  RedisRouteStore& store = make_store("gw-b");
  server_.command({"SET", "test-fleet:claim:demo", "gw-dead 7", "PX", "60000"});
  StartClaim taken = claim(store, "demo");
  EXPECT_TRUE(taken.granted);
}

TEST_F(RedisRouteStoreTest, ClaimGrantedLocallyWithoutRedis) {
  RedisRouteStore& store = make_store("gw-a");
  server_.kill();
  ASSERT_TRUE(wait_until([&] { return !store.connected(); }));
  StartClaim local = claim(store, "demo");
  EXPECT_TRUE(local.granted);
  EXPECT_EQ(local.fencing_token, 0);
}

TEST_F(RedisRouteStoreTest, KeepsRoutesAndRepublishesAcrossRedisRestart) {
  RedisRouteStore& owner = make_store("gw-a");
  RedisRouteStore& other = make_store("gw-b");
  InstancePtr own = instance("demo-1", 20001);
  own->set_state(InstanceState::running);
  owner.add_instance(own);
  ASSERT_TRUE(wait_until([&] { return other.snapshot()->pick("demo") != nullptr; }));

  server_.kill();
  ASSERT_TRUE(wait_until([&] { return !other.connected() && !owner.connected(); }));
  EXPECT_NE(other.snapshot()->pick("demo"), nullptr) << "routes dropped during the outage";

  server_.start();
  EXPECT_TRUE(wait_until([&] { return record("demo-1") != "(nil)"; })) << "not republished";
  EXPECT_NE(server_.command({"PTTL", "test-fleet:lease:gw-a"}), "-2") << "lease not renewed";
  EXPECT_TRUE(wait_until([&] { return other.connected(); }));
  EXPECT_NE(other.snapshot()->pick("demo"), nullptr);
}

TEST_F(RedisRouteStoreTest, SharesLastUseWithOwner) {
  RedisRouteStore& owner = make_store("gw-a");
  RedisRouteStore& other = make_store("gw-b");
  InstancePtr own = instance("demo-1", 20001);
  own->set_state(InstanceState::running);
  owner.add_instance(own);
  ASSERT_TRUE(wait_until([&] { return other.snapshot()->pick("demo") != nullptr; }));
  auto before = own->last_used();

  InstancePtr remote = other.snapshot()->pick("demo");
  ASSERT_TRUE(remote->try_acquire());
  remote->release();
  EXPECT_TRUE(wait_until([&] { return own->last_used() > before; }, 5s))
      << "the owner did not see the use on the other gateway";
}

TEST_F(RedisRouteStoreTest, LongRequestKeepsOwnerBusy) {
  RedisRouteStore& owner = make_store("gw-a");
  RedisRouteStore& other = make_store("gw-b");
  InstancePtr own = instance("demo-1", 20001);
  own->set_state(InstanceState::running);
  owner.add_instance(own);
  ASSERT_TRUE(wait_until([&] { return other.snapshot()->pick("demo") != nullptr; }));

  // A request that stays in flight on the other gateway, like a stream.
  InstancePtr remote = other.snapshot()->pick("demo");
  ASSERT_TRUE(remote->try_acquire());
  auto began = std::chrono::steady_clock::now();
  bool refreshed = wait_until([&] { return own->last_used() > began + 1500ms; }, 5s);
  remote->release();
  EXPECT_TRUE(refreshed) << "the owner did not see the request in flight on the other gateway";
}

}  // namespace
}  // namespace modelgate::routing
