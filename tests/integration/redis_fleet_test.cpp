// Several gateway processes sharing their routes through a real redis-server,
// with stub backends, all on loopback.

#include <signal.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/process_harness.hpp"
#include "tests/support/redis_server.hpp"

namespace modelgate::testing {
namespace {

using json = nlohmann::json;

constexpr const char* kPrefix = "fleet-test";

class RedisFleetTest : public ::testing::Test {
 protected:
  // A gateway with id `id` in its own directory. Every gateway's backends
  // append to one record file, so that starts are counted across gateways.
  std::string config(const std::string& id, const std::string& deployment_extra = "",
                     const std::string& redis_url = "") {
    return "gateway:\n"
           "  listen: 127.0.0.1:{{GATEWAY_PORT}}\n"
           "  log_dir: {{DIR}}/logs\n"
           "  io_threads: 2\n"
           "  id: " + id + "\n"
           "  redis:\n"
           "    url: " + (redis_url.empty() ? redis_.url() : redis_url) + "\n"
           "    key_prefix: " + kPrefix + "\n"
           "    lease_ttl: 1s\n"
           "    heartbeat_interval: 300ms\n"
           "    resync_interval: 300ms\n"
           "workers:\n"
           "  - name: local\n"
           "    runtime: process\n"
           "    ports: {{PORTS}}\n"
           "backends:\n"
           "  - backend_name: stub\n"
           "    default_run_command: >-\n"
           "      {{STUB}} --port {{port}} --model {{model_name}} --record " +
           record().string() + "\n"
           "deployments:\n"
           "  - name: demo\n"
           "    backend: stub\n"
           "    backend_parameters: [\"--startup-delay\", \"300\"]\n" +
           deployment_extra;
  }

  GatewayProcess& start(TempDir& dir, const std::string& id,
                        const std::string& deployment_extra = "") {
    gateways_.push_back(std::make_unique<GatewayProcess>(dir, config(id, deployment_extra)));
    GatewayProcess& gateway = *gateways_.back();
    EXPECT_TRUE(gateway.wait_ready()) << id << " did not answer /health:\n" << gateway.log();
    return gateway;
  }

  void TearDown() override {
    if (HasFailure()) {
      for (const auto& gateway : gateways_) {
        std::cerr << "gateway log " << gateway->dir() << ":\n" << gateway->log();
      }
    }
    // SIGTERM, so that the backends stop before the directories go.
    for (const auto& gateway : gateways_) {
      if (!process_alive(gateway->process().pid())) {
        continue;  // killed by the test
      }
      gateway->process().signal(SIGTERM);
      gateway->process().wait_exit(15s);
    }
  }

  std::filesystem::path record() const { return shared_.path() / "starts.txt"; }
  std::size_t starts() const { return read_lines(record()).size(); }

  // The records of deployment demo in Redis, parsed.
  std::vector<json> redis_records() const {
    std::vector<json> records;
    std::string text = redis_.command({"HVALS", std::string(kPrefix) + ":instances:demo"});
    std::size_t begin = 0;
    while (begin < text.size()) {
      std::size_t end = text.find('\n', begin);
      end = end == std::string::npos ? text.size() : end;
      records.push_back(json::parse(text.substr(begin, end - begin)));
      begin = end + 1;
    }
    return records;
  }

  RedisServer redis_;
  TempDir shared_;
  TempDir dir_a_;
  TempDir dir_b_;
  std::vector<std::unique_ptr<GatewayProcess>> gateways_;
};

// Sends chat requests from `clients` threads, `per_client` each, to the
// gateways in turn. Returns the failures as text, one per failed request.
std::vector<std::string> send_requests(const std::vector<GatewayProcess*>& gateways, int clients,
                                       int per_client) {
  std::vector<std::vector<std::string>> failures(clients);
  std::vector<std::thread> threads;
  for (int client = 0; client < clients; ++client) {
    threads.emplace_back([&, client] {
      for (int index = 0; index < per_client; ++index) {
        GatewayProcess& gateway = *gateways[(client + index) % gateways.size()];
        try {
          HttpResponse response = gateway.chat("demo");
          if (response.status != 200) {
            failures[client].push_back(std::to_string(response.status) + " " + response.body);
          }
        } catch (const std::exception& error) {
          failures[client].push_back(error.what());
        }
      }
    });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }
  std::vector<std::string> all;
  for (const auto& some : failures) {
    all.insert(all.end(), some.begin(), some.end());
  }
  return all;
}

TEST_F(RedisFleetTest, FirstRequestsStartOneBackend) {
  GatewayProcess& a = start(dir_a_, "gw-a");
  GatewayProcess& b = start(dir_b_, "gw-b");

  std::vector<std::string> failures = send_requests({&a, &b}, 100, 1);

  EXPECT_TRUE(failures.empty()) << failures.size() << " failed, first: " << failures.front();
  EXPECT_EQ(starts(), 1u) << "100 first requests over two gateways must start one backend";
  std::vector<json> records = redis_records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["state"], "running");
}

TEST_F(RedisFleetTest, SurvivorServesAfterKill) {
  GatewayProcess& a = start(dir_a_, "gw-a");
  GatewayProcess& b = start(dir_b_, "gw-b");
  ASSERT_EQ(a.chat("demo").status, 200);
  ASSERT_EQ(b.chat("demo").status, 200) << "b must use a's instance";
  ASSERT_EQ(starts(), 1u);

  // The backend dies with gateway a, whose lease then expires.
  a.process().signal(SIGKILL);
  a.process().wait_exit(5s);
  std::vector<std::string> failures;
  auto until = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < until) {
    std::vector<std::string> some = send_requests({&b}, 4, 5);
    failures.insert(failures.end(), some.begin(), some.end());
  }

  EXPECT_TRUE(failures.empty()) << failures.size() << " failed, first: " << failures.front();
  EXPECT_EQ(starts(), 2u) << "the survivor must start one instance of its own";
  EXPECT_TRUE(wait_until(
      [&] {
        for (const json& record : redis_records()) {
          if (record["owner"] == "gw-a") {
            return false;
          }
        }
        return true;
      },
      5s))
      << "a route of the killed gateway is still in Redis";
  std::vector<json> records = redis_records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["owner"], "gw-b");
}

TEST_F(RedisFleetTest, RedisRestartFailsNoRequest) {
  GatewayProcess& a = start(dir_a_, "gw-a");
  GatewayProcess& b = start(dir_b_, "gw-b");
  ASSERT_EQ(a.chat("demo").status, 200);
  ASSERT_TRUE(wait_until([&] { return b.chat("demo").status == 200; }));

  // Steady traffic to both gateways while Redis goes away and comes back
  // empty.
  std::atomic<bool> running{true};
  std::vector<std::string> failures;
  std::atomic<int> served{0};
  std::thread traffic([&] {
    while (running.load()) {
      std::vector<std::string> some = send_requests({&a, &b}, 2, 2);
      failures.insert(failures.end(), some.begin(), some.end());
      served += 4;
    }
  });
  // Ends the traffic also when an assertion below returns early.
  struct Join {
    std::atomic<bool>& running;
    std::thread& thread;
    ~Join() {
      running.store(false);
      if (thread.joinable()) {
        thread.join();
      }
    }
  } join{running, traffic};
  ASSERT_TRUE(wait_until([&] { return served.load() >= 40; }));
  redis_.kill();
  auto redis_connected = [](GatewayProcess& gateway) {
    std::string metrics = http_request(gateway.port(), "GET", "/metrics").body;
    return metrics.find("\nmodelgate_redis_connected 1\n") != std::string::npos;
  };
  ASSERT_TRUE(wait_until([&] { return !redis_connected(a); })) << "a did not notice the outage";
  ASSERT_TRUE(wait_until([&] { return !redis_connected(b); })) << "b did not notice the outage";
  int before_restart = served.load();
  ASSERT_TRUE(wait_until([&] { return served.load() >= before_restart + 40; }));
  redis_.start();
  ASSERT_TRUE(wait_until([&] { return redis_connected(a); })) << "a did not reconnect";
  ASSERT_TRUE(wait_until([&] { return redis_connected(b); })) << "b did not reconnect";
  ASSERT_TRUE(wait_until([&] { return redis_records().size() == 1; }, 10s))
      << "the owner did not publish its instance again";
  int after_restart = served.load();
  ASSERT_TRUE(wait_until([&] { return served.load() >= after_restart + 40; }));
  running.store(false);
  traffic.join();

  EXPECT_TRUE(failures.empty()) << failures.size() << " failed, first: " << failures.front();
  EXPECT_EQ(starts(), 1u) << "no instance may start because Redis restarted";
  std::vector<json> records = redis_records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["owner"], "gw-a");
  EXPECT_EQ(records[0]["state"], "running");
  for (GatewayProcess* gateway : {&a, &b}) {
    std::string log = gateway->log();
    std::size_t warnings = 0;
    for (std::size_t at = log.find("is unavailable"); at != std::string::npos;
         at = log.find("is unavailable", at + 1)) {
      ++warnings;
    }
    EXPECT_EQ(warnings, 1u) << "the outage must be logged once";
    std::string metrics = http_request(gateway->port(), "GET", "/metrics").body;
    EXPECT_NE(metrics.find("\nmodelgate_redis_outages_total 1\n"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("\nmodelgate_redis_connected 1\n"), std::string::npos) << metrics;
  }
}

TEST_F(RedisFleetTest, RestartedGatewayStartsFreshInstance) {
  auto gateway = std::make_unique<GatewayProcess>(dir_a_, config("gw-a"));
  ASSERT_TRUE(gateway->wait_ready()) << gateway->log();
  ASSERT_EQ(gateway->chat("demo").status, 200);
  ASSERT_EQ(redis_records().size(), 1u);
  gateway->process().signal(SIGKILL);
  gateway->process().wait_exit(5s);

  gateways_.push_back(std::make_unique<GatewayProcess>(dir_a_, config("gw-a")));
  GatewayProcess& restarted = *gateways_.back();
  ASSERT_TRUE(restarted.wait_ready()) << restarted.log();
  EXPECT_TRUE(wait_until([&] { return redis_records().empty(); }, 5s))
      << "the routes of the killed run are still in Redis";
  ASSERT_EQ(restarted.chat("demo").status, 200) << restarted.log();
  EXPECT_EQ(starts(), 2u);
  ASSERT_EQ(redis_records().size(), 1u);
}

TEST_F(RedisFleetTest, UseOnOtherGatewayDelaysIdleStop) {
  // Uses reach the owner up to 2 s late (shared once per second, read once
  // per second), so the idle timeout is well above that.
  GatewayProcess& a = start(dir_a_, "gw-a", "    idle_timeout: 4s\n");
  GatewayProcess& b = start(dir_b_, "gw-b", "    idle_timeout: 4s\n");
  ASSERT_EQ(a.chat("demo").status, 200);
  ASSERT_TRUE(wait_until([&] { return b.chat("demo").status == 200; }));

  // Only b serves for twice the idle timeout; a owns the instance.
  auto until = std::chrono::steady_clock::now() + 8s;
  while (std::chrono::steady_clock::now() < until) {
    ASSERT_EQ(b.chat("demo").status, 200);
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(starts(), 1u) << "the owner stopped an instance that b kept using";
  EXPECT_EQ(redis_records().size(), 1u);

  // Without traffic the owner stops it once.
  EXPECT_TRUE(wait_until([&] { return redis_records().empty(); }, 15s));
  std::string log = a.log();
  EXPECT_NE(log.find("stopping: idle"), std::string::npos);
  EXPECT_EQ(b.log().find("stopping: idle"), std::string::npos);
}

TEST_F(RedisFleetTest, SecondRefusedInstanceGetsError) {
  GatewayProcess& b = start(dir_b_, "gw-b");
  // Two RUNNING instances of a gateway whose lease is alive, on ports where
  // nothing listens.
  redis_.command({"SET", std::string(kPrefix) + ":lease:gw-x", "1", "PX", "60000"});
  for (std::string id : {"demo-x1", "demo-x2"}) {
    std::uint16_t port = reserve_port();
    redis_.command({"HSET", std::string(kPrefix) + ":instances:demo", id,
                    R"({"state":"running","host":"127.0.0.1","port":)" + std::to_string(port) +
                        R"(,"worker":"local","owner":"gw-x","started_at":1,"fence":1})"});
  }
  redis_.command({"PUBLISH", std::string(kPrefix) + ":events", "demo"});
  ASSERT_TRUE(wait_until([&] {
    return b.log().find("2 instance(s) of other gateways") != std::string::npos;
  })) << b.log();

  // The first refusal is retried on the other instance; the second one
  // gets an error response instead of a third try.
  HttpResponse response = b.chat("demo");
  EXPECT_EQ(response.status, 502) << response.body;
  EXPECT_NE(response.body.find("cannot connect to instance demo-x"), std::string::npos)
      << response.body;
  EXPECT_EQ(starts(), 0u);
}

TEST_F(RedisFleetTest, ColdStartWorksWithoutRedis) {
  GatewayProcess& a = start(dir_a_, "gw-a");
  redis_.kill();

  HttpResponse response = a.chat("demo");
  EXPECT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(starts(), 1u);

  // Back with Redis, the gateway publishes the instance it started alone.
  redis_.start();
  EXPECT_TRUE(wait_until([&] { return redis_records().size() == 1; }, 10s));
}

TEST_F(RedisFleetTest, WrongPasswordStopsStartup) {
  RedisServer protected_redis({"--requirepass", "right"});
  std::string url = "redis://:wrong@127.0.0.1:" + std::to_string(protected_redis.port());
  GatewayProcess gateway(dir_a_, config("gw-a", "", url));
  std::optional<int> status = gateway.process().wait_exit(10s);
  ASSERT_TRUE(status.has_value()) << "the gateway kept running:\n" << gateway.log();
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_NE(WEXITSTATUS(*status), 0);
  std::string log = gateway.log();
  EXPECT_NE(log.find("rejected the gateway"), std::string::npos) << log;
  EXPECT_NE(log.find("WRONGPASS"), std::string::npos) << log;
  EXPECT_EQ(log.find("wrong@"), std::string::npos) << "the password is in the log";
}

}  // namespace
}  // namespace modelgate::testing
