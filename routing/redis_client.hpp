#pragma once

// An asynchronous Redis connection: hiredis's async API driven by the Asio
// event loop through a stream_descriptor that watches the hiredis socket.
// The client reconnects with back-off, sends AUTH and SELECT on every
// connection, and renews its subscriptions.
//
// Every member function must run on the client's executor (a strand, or an
// io_context run by one thread), and so do the callbacks.

#include "routing/asio_prelude.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/steady_timer.hpp>

#include "config/config.hpp"

struct redisAsyncContext;

namespace modelgate::routing {

// A reply converted out of hiredis's redisReply, which hiredis frees after
// the callback.
struct RedisReply {
  enum class Kind {
    failed,   // no reply: not connected, connection lost or timed out
    nil,
    status,   // +OK
    error,    // -ERR ...
    integer,
    string,
    array,
  };
  Kind kind = Kind::failed;
  std::string text;  // status, error or string; for `failed`, the reason
  long long integer = 0;
  std::vector<RedisReply> elements;

  // True unless the command failed or Redis returned an error.
  bool ok() const { return kind != Kind::failed && kind != Kind::error; }
  static RedisReply failure(std::string reason);
};

class RedisClient : public std::enable_shared_from_this<RedisClient> {
 public:
  using Duration = std::chrono::steady_clock::duration;
  using MessageHandler = std::function<void(std::string_view channel, std::string_view message)>;

  // `name` identifies the connection in logs, such as "commands".
  RedisClient(asio::any_io_executor executor, const config::RedisSettings& settings,
              std::string name);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Starts connecting; reconnects after every loss until stop().
  void start();
  // Closes the connection and stops reconnecting. Pending commands fail.
  void stop();

  bool connected() const { return connected_; }
  const asio::any_io_executor& executor() const { return executor_; }

  // Sends one command, such as {"SET", key, value}, and returns its reply. Fails at once when not
  // connected, and after `command_timeout` without a reply, which also drops
  // the connection so that a hung server is reconnected.
  awaitable<RedisReply> command_argv(std::vector<std::string> arguments);
  // The same with the words as arguments, such as command("GET", key).
  // g++ 12 rejects a braced list of strings inside a co_await expression
  // ("array used as initializer"), so the list is built here, outside of
  // the caller's coroutine.
  template <typename... Words>
  awaitable<RedisReply> command(const Words&... words) {
    return command_argv(std::vector<std::string>{std::string(words)...});
  }

  // Subscribes to `channel` now and after every reconnect. A connection that
  // subscribes can send no other command, so use a client of its own.
  void subscribe(const std::string& channel, MessageHandler handler);

  // Called after each connection is ready (AUTH and SELECT done).
  std::function<void()> on_connected;
  // Called when a ready connection is lost, with the reason.
  std::function<void(const std::string& reason)> on_disconnected;
  // Called when a connection attempt fails, with the reason: refused,
  // timed out, or AUTH or SELECT rejected.
  std::function<void(const std::string& reason)> on_connect_failed;

  void set_command_timeout(Duration timeout) { command_timeout_ = timeout; }
  void set_backoff(Duration first, Duration max) {
    first_backoff_ = first;
    max_backoff_ = max;
  }

 private:
  class Connection;
  struct PendingCommand;

  awaitable<void> run();
  // Connects, authenticates and selects the database. Returns the reason
  // when it failed.
  awaitable<std::string> connect_once();
  awaitable<RedisReply> send(const std::vector<std::string>& arguments);
  void send_subscribe(const std::string& channel);
  // Frees the hiredis context at once. Pending commands fail.
  void drop_connection(const std::string& reason);

  static void handle_reply(redisAsyncContext* context, void* reply, void* private_data);
  static void handle_message(redisAsyncContext* context, void* reply, void* private_data);

  asio::any_io_executor executor_;
  const config::RedisSettings& settings_;
  std::string name_;
  std::shared_ptr<Connection> connection_;
  asio::steady_timer backoff_timer_;
  std::map<std::string, MessageHandler> subscriptions_;
  bool started_ = false;
  bool stopped_ = false;
  bool connected_ = false;
  Duration command_timeout_ = std::chrono::seconds(3);
  Duration connect_timeout_ = std::chrono::seconds(3);
  Duration first_backoff_ = std::chrono::milliseconds(100);
  Duration max_backoff_ = std::chrono::seconds(5);
};

// The result of check_redis().
struct RedisCheck {
  bool reachable = false;
  // Empty when the server accepted AUTH, SELECT and PING. Otherwise the
  // reason, such as "WRONGPASS invalid username-password pair".
  std::string error;
};

// Connects once with hiredis's blocking API, authenticates, selects the
// database and sends PING, with `timeout` for each step. For start-up, before
// any I/O thread runs, so that a wrong password stops the gateway with a
// clear message.
RedisCheck check_redis(const config::RedisSettings& settings,
                       std::chrono::milliseconds timeout);

}  // namespace modelgate::routing
