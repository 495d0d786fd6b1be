#pragma once

// Keep-alive connections to backend instances, one pool per I/O thread so
// that no lock is taken on the request path. Each pool opens at most a
// fixed number of connections per instance; further requests wait for one
// in arrival order.

#include "routing/asio_prelude.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>

namespace modelgate::gateway {

struct UpstreamEndpoint;

struct UpstreamConnection {
  UpstreamConnection(asio::any_io_executor executor, std::shared_ptr<UpstreamEndpoint> endpoint);
  ~UpstreamConnection();  // gives its place in the endpoint's limit back

  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  boost::beast::tcp_stream stream;
  boost::beast::flat_buffer buffer;
  bool reused = false;  // came from the pool rather than a new connect

 private:
  std::shared_ptr<UpstreamEndpoint> endpoint_;
};

using UpstreamConnectionPtr = std::unique_ptr<UpstreamConnection>;

// The connections of one pool to one instance.
struct UpstreamEndpoint {
  // A request waiting for a connection; its timer's cancellation wakes it.
  struct Waiter {
    asio::steady_timer* timer;
    bool woken = false;
  };

  // Wakes the longest-waiting request, if any.
  void wake_one();

  std::vector<UpstreamConnectionPtr> idle;
  std::size_t open = 0;  // idle, in use and connecting
  std::deque<Waiter*> waiters;
};

class UpstreamPool {
 public:
  // `max_per_endpoint` caps the connections this pool opens to one instance.
  UpstreamPool(asio::any_io_executor executor, std::size_t max_idle_per_endpoint,
               std::size_t max_per_endpoint, std::chrono::milliseconds connect_timeout);
  ~UpstreamPool();

  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // Returns an idle connection to host:port, or null. Unlike connect(), it
  // never waits, and it is a plain function rather than a coroutine.
  UpstreamConnectionPtr reuse(const std::string& host, std::uint16_t port);

  // Returns an idle connection to host:port, or a new one. At the limit,
  // waits for one until `deadline`, and sets `waited`. On failure returns
  // null and sets `error`: timed_out when the deadline passed while waiting.
  awaitable<UpstreamConnectionPtr> connect(const std::string& host, std::uint16_t port,
                                           std::chrono::steady_clock::time_point deadline,
                                           bool& waited, boost::system::error_code& error);

  // Returns a connection whose last response ended cleanly and allows reuse.
  void release(const std::string& host, std::uint16_t port, UpstreamConnectionPtr connection);

  // Closes idle connections that the backend has closed.
  void sweep();

  // The number of idle connections. Safe to call from any thread.
  std::size_t idle_count() const { return idle_count_.load(std::memory_order_relaxed); }
  // The number of requests waiting for a connection. Safe to call from any
  // thread.
  std::size_t waiting_count() const { return waiting_count_.load(std::memory_order_relaxed); }

 private:
  const std::shared_ptr<UpstreamEndpoint>& endpoint(const std::string& host, std::uint16_t port);
  // Takes an idle connection, or returns null.
  UpstreamConnectionPtr take_idle(UpstreamEndpoint& endpoint);

  asio::any_io_executor executor_;
  std::size_t max_idle_per_endpoint_;
  std::size_t max_per_endpoint_;
  std::chrono::milliseconds connect_timeout_;
  std::unordered_map<std::string, std::shared_ptr<UpstreamEndpoint>> endpoints_;
  // Totals over endpoints_, for readers on other threads.
  std::atomic<std::size_t> idle_count_{0};
  std::atomic<std::size_t> waiting_count_{0};
};

}  // namespace modelgate::gateway
