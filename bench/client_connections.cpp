// The modes that open many connections at once, on one thread with Asio
// coroutines: flood (one request per connection, count the responses) and idle
// (the same, then keep the connections open).

#include "bench/client_common.hpp"

#include <signal.h>

#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <fmt/format.h>

namespace modelgate::bench_client {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;

struct Connection {
  explicit Connection(asio::io_context& io) : socket(io) {}

  tcp::socket socket;
  beast::flat_buffer buffer;
};

// Opens the connections with at most --connect-batch connects in progress,
// sends one chat completion on each, and counts the responses. A 200
// response counts as ok only when its body is a chat completion.
class ConnectionSet {
 public:
  ConnectionSet(asio::io_context& io, const Options& options)
      : io_(io), options_(options), request_(chat_request(options, false)),
        endpoint_(asio::ip::make_address(options.host), options.port), deadline_(io) {}

  // Runs until every connection has its response or failed, or until the
  // timeout, then calls `on_done` once.
  void start(std::function<void()> on_done) {
    on_done_ = std::move(on_done);
    started_ = Clock::now();
    int starters = std::min(options_.connect_batch, options_.connections);
    for (int index = 0; index < starters; ++index) {
      asio::co_spawn(io_, open_connections(), asio::detached);
    }
    deadline_.expires_after(options_.timeout);
    deadline_.async_wait([this](const error_code& error) {
      if (error) {
        return;
      }
      timed_out_ = true;
      close_all();
      finish();
    });
  }

  void close_all() {
    for (auto& connection : connections_) {
      error_code ignored;
      connection->socket.close(ignored);
    }
  }

  void cancel_deadline() { deadline_.cancel(); }

  std::vector<std::pair<std::string, std::string>> fields() const {
    auto since_start = [this](std::optional<Clock::time_point> time) {
      return time ? fmt::format("{:.1f}", microseconds_between(started_, *time) / 1000.0)
                  : std::string("-");
    };
    return {{"connections", std::to_string(options_.connections)},
            {"connected", std::to_string(connected_)},
            {"sent", std::to_string(sent_)},
            {"ok", std::to_string(ok_)},
            {"other_status", std::to_string(other_status_)},
            {"failed", std::to_string(failed_)},
            {"timed_out", timed_out_ ? "1" : "0"},
            {"all_sent_ms", since_start(last_sent_)},
            {"first_answer_ms", since_start(first_answer_)},
            {"last_answer_ms", since_start(last_answer_)}};
  }

  bool all_ok() const { return ok_ == options_.connections; }

  void print_errors() const {
    for (const auto& [message, count] : errors_) {
      std::cerr << count << " x " << message << "\n";
    }
  }

 private:
  awaitable<void> open_connections() {
    while (next_ < options_.connections && !timed_out_) {
      ++next_;
      auto& connection = connections_.emplace_back(std::make_unique<Connection>(io_));
      co_await open_and_send(*connection);
    }
  }

  awaitable<void> open_and_send(Connection& connection) {
    error_code error;
    co_await connection.socket.async_connect(endpoint_,
                                             asio::redirect_error(asio::use_awaitable, error));
    if (error) {
      fail("connect: " + error.message());
      co_return;
    }
    ++connected_;
    co_await asio::async_write(connection.socket, asio::buffer(request_),
                               asio::redirect_error(asio::use_awaitable, error));
    if (error) {
      fail("write: " + error.message());
      co_return;
    }
    ++sent_;
    last_sent_ = Clock::now();
    asio::co_spawn(io_, read_answer(connection), asio::detached);
  }

  awaitable<void> read_answer(Connection& connection) {
    error_code error;
    http::response_parser<http::string_body> parser;
    co_await http::async_read(connection.socket, connection.buffer, parser,
                              asio::redirect_error(asio::use_awaitable, error));
    if (error) {
      fail("read: " + error.message());
      co_return;
    }

    Clock::time_point now = Clock::now();
    first_answer_ = first_answer_.value_or(now);
    last_answer_ = now;
    const auto& response = parser.get();
    if (response.result_int() == 200 &&
        response.body().find("\"chat.completion\"") != std::string::npos) {
      ++ok_;
    } else {
      ++other_status_;
      errors_["HTTP " + std::to_string(response.result_int()) + ": " +
              response.body().substr(0, 200)]++;
    }
    finish_one();
  }

  void fail(std::string message) {
    if (timed_out_) {
      return;
    }
    ++failed_;
    errors_[std::move(message)]++;
    finish_one();
  }

  void finish_one() {
    ++finished_;
    if (finished_ == options_.connections) {
      finish();
    }
  }

  void finish() {
    if (on_done_) {
      auto on_done = std::move(on_done_);
      on_done_ = nullptr;
      on_done();
    }
  }

  asio::io_context& io_;
  const Options& options_;
  std::string request_;
  tcp::endpoint endpoint_;
  asio::steady_timer deadline_;
  std::function<void()> on_done_;
  std::vector<std::unique_ptr<Connection>> connections_;

  int next_ = 0;
  int connected_ = 0;
  int sent_ = 0;
  int ok_ = 0;
  int other_status_ = 0;
  int failed_ = 0;
  int finished_ = 0;
  bool timed_out_ = false;
  Clock::time_point started_;
  std::optional<Clock::time_point> last_sent_;
  std::optional<Clock::time_point> first_answer_;
  std::optional<Clock::time_point> last_answer_;
  std::map<std::string, int> errors_;
};

}  // namespace

int run_flood(const Options& options) {
  asio::io_context io(1);
  ConnectionSet connections(io, options);
  connections.start([&] {
    connections.cancel_deadline();
    connections.close_all();
  });
  io.run();

  connections.print_errors();
  print_result("FLOOD", connections.fields());
  return connections.all_ok() ? 0 : 1;
}

int run_idle(const Options& options) {
  asio::io_context io(1);
  ConnectionSet connections(io, options);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  asio::steady_timer hold(io);

  // Once every connection has its response, report and keep them open until a
  // signal, or for --timeout-ms at most.
  connections.start([&] {
    connections.print_errors();
    print_result("IDLE", connections.fields());
    hold.expires_after(options.timeout);
    hold.async_wait([&](const error_code& error) {
      if (!error) {
        signals.cancel();
        connections.close_all();
      }
    });
    signals.async_wait([&](const error_code& error, int) {
      if (!error) {
        hold.cancel();
        connections.cancel_deadline();
        connections.close_all();
      }
    });
  });
  io.run();
  return connections.all_ok() ? 0 : 1;
}

}  // namespace modelgate::bench_client
