#pragma once

// The stub backend's listener and the state that all of its connections
// share: options, counters and the loading period after start-up.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <spdlog/logger.h>

#include "bench/stub_asio.hpp"
#include "bench/stub_options.hpp"

namespace modelgate::stub {

// Counters that GET /stub/stats returns.
struct Stats {
  // Requests received, except GET /stub/stats itself.
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> active_streams{0};
  // Streams that sent data: [DONE].
  std::atomic<std::uint64_t> completed_streams{0};
  // Streams whose client closed the connection before data: [DONE].
  std::atomic<std::uint64_t> cancelled_streams{0};
  // Connections closed after --keep-alive-timeout without a request.
  std::atomic<std::uint64_t> idle_closes{0};
};

class Server {
 public:
  Server(asio::io_context& io, const Options& options,
         std::shared_ptr<spdlog::logger> logger);

  // Resolves --host and listens on it. Throws boost::system::system_error
  // when the address does not resolve or the port does not bind.
  void listen();

  // Starts accepting connections and the --startup-delay period. Call after
  // listen().
  void start();

  // The bound address as "HOST:PORT", with brackets around an IPv6 host.
  std::string local_address() const;
  std::uint16_t local_port() const;

  const Options& options() const { return options_; }
  spdlog::logger& logger() const { return *logger_; }
  Stats& stats() { return stats_; }

  // True during --startup-delay, when every model endpoint returns 503.
  bool loading() const { return loading_.load(std::memory_order_relaxed); }
  // Whole seconds until loading ends, at least 1, for Retry-After.
  std::int64_t seconds_until_loaded() const;

  // The --model id as a JSON string, with quotes.
  std::string_view model_json() const { return model_json_; }
  // Start-up time in Unix seconds, the `created` time of the model.
  std::int64_t created() const { return created_; }
  int pid() const { return pid_; }

  // Returns a number that is unique within this process, for completion ids.
  std::uint64_t next_completion_number() {
    return completion_number_.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  asio::awaitable<void> accept_connections();

  // Executor of a new connection: a strand when several threads run the
  // io_context, so that a connection's handlers never run concurrently.
  asio::any_io_executor connection_executor();

  asio::io_context& io_;
  const Options& options_;
  std::shared_ptr<spdlog::logger> logger_;
  tcp::acceptor acceptor_;
  asio::steady_timer loading_timer_;

  Stats stats_;
  std::atomic<bool> loading_{false};
  std::chrono::steady_clock::time_point loaded_at_;

  std::string model_json_;
  std::int64_t created_ = 0;
  int pid_ = 0;
  std::atomic<std::uint64_t> completion_number_{0};
};

}  // namespace modelgate::stub
