#pragma once

// Keep-alive connections to backend instances, one pool per I/O thread so
// that no lock is taken on the request path.

#include "routing/asio_prelude.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>

namespace modelgate::gateway {

struct UpstreamConnection {
  explicit UpstreamConnection(asio::any_io_executor executor) : stream(std::move(executor)) {}

  boost::beast::tcp_stream stream;
  boost::beast::flat_buffer buffer;
  bool reused = false;  // came from the pool rather than a new connect
};

using UpstreamConnectionPtr = std::unique_ptr<UpstreamConnection>;

class UpstreamPool {
 public:
  UpstreamPool(asio::any_io_executor executor, std::size_t max_idle_per_endpoint,
               std::chrono::milliseconds connect_timeout);

  // Returns an idle connection to host:port that still looks open, or a new
  // one. On failure returns null and sets `error`.
  awaitable<UpstreamConnectionPtr> connect(const std::string& host, std::uint16_t port,
                                           boost::system::error_code& error);

  // Returns a connection whose last response ended cleanly and allows reuse.
  void release(const std::string& host, std::uint16_t port, UpstreamConnectionPtr connection);

  // Closes idle connections that the backend has closed.
  void sweep();

  // The number of idle connections. Safe to call from any thread.
  std::size_t idle_count() const { return idle_count_.load(std::memory_order_relaxed); }

 private:
  asio::any_io_executor executor_;
  std::size_t max_idle_per_endpoint_;
  std::chrono::milliseconds connect_timeout_;
  std::unordered_map<std::string, std::vector<UpstreamConnectionPtr>> idle_;
  // The total size of idle_, for readers on other threads.
  std::atomic<std::size_t> idle_count_{0};
};

}  // namespace modelgate::gateway
