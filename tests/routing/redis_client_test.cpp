#include "routing/redis_client.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include <signal.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "tests/support/redis_server.hpp"

namespace modelgate::routing {
namespace {

using namespace std::chrono_literals;
using testing::RedisServer;

config::RedisSettings settings_for(const RedisServer& server) {
  config::RedisSettings settings;
  settings.url = server.url();
  settings.host = "127.0.0.1";
  settings.port = server.port();
  return settings;
}

// Runs `test` on `io_context` until it returns, failing after `timeout`.
void run_coroutine(asio::io_context& io_context, std::function<awaitable<void>()> test,
                   std::chrono::seconds timeout = 20s) {
  bool done = false;
  std::exception_ptr failure;
  asio::co_spawn(io_context, test(), [&](std::exception_ptr error) {
    failure = error;
    done = true;
  });
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    io_context.run_for(10ms);
  }
  ASSERT_TRUE(done) << "the test coroutine did not finish within " << timeout.count() << " s";
  if (failure) {
    std::rethrow_exception(failure);
  }
}

// Polls `condition` every 10 ms on the coroutine's executor until it is true
// or `timeout` passes.
awaitable<bool> poll_until(std::function<bool()> condition, std::chrono::milliseconds timeout) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      co_return false;
    }
    timer.expires_after(10ms);
    co_await timer.async_wait(asio::use_awaitable);
  }
  co_return true;
}

TEST(RedisClient, RunsCommands) {
  RedisServer server;
  config::RedisSettings settings = settings_for(server);
  asio::io_context io_context;
  auto client = std::make_shared<RedisClient>(io_context.get_executor(), settings, "test");
  client->start();

  run_coroutine(io_context, [&]() -> awaitable<void> {
    bool connected = co_await poll_until([&] { return client->connected(); }, 5s);
    EXPECT_TRUE(connected);

    RedisReply set = co_await client->command("SET", "greeting", std::string("a\0b", 3));
    EXPECT_EQ(set.kind, RedisReply::Kind::status) << set.text;
    RedisReply get = co_await client->command("GET", "greeting");
    EXPECT_EQ(get.kind, RedisReply::Kind::string);
    EXPECT_EQ(get.text, std::string("a\0b", 3));
    RedisReply missing = co_await client->command("GET", "absent");
    EXPECT_EQ(missing.kind, RedisReply::Kind::nil);
    RedisReply counter = co_await client->command("INCR", "counter");
    EXPECT_EQ(counter.kind, RedisReply::Kind::integer);
    EXPECT_EQ(counter.integer, 1);
    co_await client->command("HSET", "hash", "f1", "v1", "f2", "v2");
    RedisReply all = co_await client->command("HGETALL", "hash");
    EXPECT_EQ(all.kind, RedisReply::Kind::array);
    EXPECT_EQ(all.elements.size(), 4u);
    RedisReply wrong = co_await client->command("HGETALL", "greeting");
    EXPECT_EQ(wrong.kind, RedisReply::Kind::error);
    EXPECT_NE(wrong.text.find("WRONGTYPE"), std::string::npos) << wrong.text;
    EXPECT_FALSE(wrong.ok());
    client->stop();
  });
}

TEST(RedisClient, ManyCommandsInFlight) {
  RedisServer server;
  config::RedisSettings settings = settings_for(server);
  asio::io_context io_context;
  auto client = std::make_shared<RedisClient>(io_context.get_executor(), settings, "test");
  client->start();

  run_coroutine(io_context, [&]() -> awaitable<void> {
    bool connected = co_await poll_until([&] { return client->connected(); }, 5s);
    EXPECT_TRUE(connected);
    int replies = 0;
    for (int index = 0; index < 200; ++index) {
      asio::co_spawn(
          io_context,
          [&]() -> awaitable<void> {
            RedisReply reply = co_await client->command("INCR", "n");
            replies += reply.ok() ? 1 : 0;
          },
          asio::detached);
    }
    bool all = co_await poll_until([&] { return replies == 200; }, 5s);
    EXPECT_TRUE(all) << replies << " of 200 replies";
    RedisReply value = co_await client->command("GET", "n");
    EXPECT_EQ(value.text, "200");
    client->stop();
  });
}

TEST(RedisClient, AuthenticatesWithPasswordAndSelectsDatabase) {
  RedisServer server({"--requirepass", "s3cret"});
  config::RedisSettings settings = settings_for(server);
  settings.password = "s3cret";
  settings.db = 3;
  asio::io_context io_context;
  auto client = std::make_shared<RedisClient>(io_context.get_executor(), settings, "test");
  client->start();

  run_coroutine(io_context, [&]() -> awaitable<void> {
    bool connected = co_await poll_until([&] { return client->connected(); }, 5s);
    EXPECT_TRUE(connected);
    RedisReply set = co_await client->command("SET", "in-db-3", "yes");
    EXPECT_TRUE(set.ok()) << set.text;
    client->stop();
  });
  EXPECT_EQ(server.command({"SELECT", "3"}, "s3cret"), "OK");
  EXPECT_EQ(server.command({"GET", "in-db-3"}, "s3cret"), "(nil)")
      << "a new connection starts in database 0";
  EXPECT_EQ(server.command({"DBSIZE"}, "s3cret"), "0");
}

TEST(RedisClient, AuthenticatesAclUser) {
  RedisServer server({"--user", "gateway", "on", ">pw-1", "~*", "&*", "+@all"});
  config::RedisSettings settings = settings_for(server);
  settings.user = "gateway";
  settings.password = "pw-1";
  asio::io_context io_context;
  auto client = std::make_shared<RedisClient>(io_context.get_executor(), settings, "test");
  client->start();

  run_coroutine(io_context, [&]() -> awaitable<void> {
    bool connected = co_await poll_until([&] { return client->connected(); }, 5s);
    EXPECT_TRUE(connected);
    RedisReply who = co_await client->command("ACL", "WHOAMI");
    EXPECT_EQ(who.text, "gateway");
    client->stop();
  });
  EXPECT_TRUE(check_redis(settings, 2000ms).error.empty());
}

TEST(RedisClient, WrongPasswordFailsConnect) {
  RedisServer server({"--requirepass", "right"});
  config::RedisSettings settings = settings_for(server);
  settings.password = "wrong";
  asio::io_context io_context;
  auto client = std::make_shared<RedisClient>(io_context.get_executor(), settings, "test");
  std::vector<std::string> failures;
  client->on_connect_failed = [&](const std::string& reason) { failures.push_back(reason); };
  client->start();

  run_coroutine(io_context, [&]() -> awaitable<void> {
    bool failed = co_await poll_until([&] { return !failures.empty(); }, 5s);
    EXPECT_TRUE(failed);
    EXPECT_FALSE(client->connected());
    RedisReply reply = co_await client->command("PING");
    EXPECT_EQ(reply.kind, RedisReply::Kind::failed);
    client->stop();
  });
  ASSERT_FALSE(failures.empty());
  EXPECT_NE(failures.front().find("AUTH failed: WRONGPASS"), std::string::npos)
      << failures.front();

  RedisCheck check = check_redis(settings, 2000ms);
  EXPECT_TRUE(check.reachable);
  EXPECT_NE(check.error.find("WRONGPASS"), std::string::npos) << check.error;
}

TEST(RedisClient, CheckReportsUnreachableServer) {
  config::RedisSettings settings;
  {
    RedisServer server;
    settings = settings_for(server);
    EXPECT_TRUE(check_redis(settings, 2000ms).error.empty());
  }
  RedisCheck check = check_redis(settings, 2000ms);
  EXPECT_FALSE(check.reachable);
  EXPECT_FALSE(check.error.empty());
}

TEST(RedisClient, ReconnectsAndResubscribesAfterRestart) {
  RedisServer server;
  config::RedisSettings settings = settings_for(server);
  asio::io_context io_context;
  auto subscriber = std::make_shared<RedisClient>(io_context.get_executor(), settings, "sub");
  auto publisher = std::make_shared<RedisClient>(io_context.get_executor(), settings, "pub");
  subscriber->set_backoff(20ms, 200ms);
  publisher->set_backoff(20ms, 200ms);
  std::vector<std::string> messages;
  int connects = 0;
  int disconnects = 0;
  subscriber->on_connected = [&] { ++connects; };
  subscriber->on_disconnected = [&](const std::string&) { ++disconnects; };
  subscriber->subscribe("events", [&](std::string_view channel, std::string_view message) {
    EXPECT_EQ(channel, "events");
    messages.emplace_back(message);
  });
  subscriber->start();
  publisher->start();

  run_coroutine(io_context, [&]() -> awaitable<void> {
    // Publish until the subscription is in place.
    bool received = co_await poll_until(
        [&] {
          if (publisher->connected()) {
            asio::co_spawn(io_context, publisher->command("PUBLISH", "events", "first"),
                           asio::detached);
          }
          return !messages.empty();
        },
        5s);
    EXPECT_TRUE(received);
    EXPECT_EQ(messages.front(), "first");

    server.kill();
    bool lost = co_await poll_until(
        [&] { return disconnects == 1 && !subscriber->connected(); }, 5s);
    EXPECT_TRUE(lost) << "disconnects: " << disconnects;
    RedisReply offline = co_await publisher->command("PING");
    EXPECT_EQ(offline.kind, RedisReply::Kind::failed);

    server.start();
    bool back = co_await poll_until(
        [&] { return connects == 2 && publisher->connected(); }, 5s);
    EXPECT_TRUE(back) << "connects: " << connects;
    messages.clear();
    received = co_await poll_until(
        [&] {
          asio::co_spawn(io_context, publisher->command("PUBLISH", "events", "second"),
                         asio::detached);
          return !messages.empty();
        },
        5s);
    EXPECT_TRUE(received) << "no message after the restart";
    subscriber->stop();
    publisher->stop();
  });
}

TEST(RedisClient, CommandTimesOutOnStoppedServer) {
  RedisServer server;
  config::RedisSettings settings = settings_for(server);
  asio::io_context io_context;
  auto client = std::make_shared<RedisClient>(io_context.get_executor(), settings, "test");
  client->set_command_timeout(300ms);
  client->start();

  run_coroutine(io_context, [&]() -> awaitable<void> {
    bool connected = co_await poll_until([&] { return client->connected(); }, 5s);
    EXPECT_TRUE(connected);
    ::kill(server.pid(), SIGSTOP);
    auto began = std::chrono::steady_clock::now();
    RedisReply reply = co_await client->command("PING");
    auto waited = std::chrono::steady_clock::now() - began;
    ::kill(server.pid(), SIGCONT);
    EXPECT_EQ(reply.kind, RedisReply::Kind::failed);
    EXPECT_NE(reply.text.find("timed out"), std::string::npos) << reply.text;
    EXPECT_LT(waited, 2s);
    bool reconnected = co_await poll_until([&] { return client->connected(); }, 5s);
    EXPECT_TRUE(reconnected);
    client->stop();
  });
}

}  // namespace
}  // namespace modelgate::routing
