#include "gateway/upstream_pool.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include <boost/asio/error.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace modelgate::gateway {
namespace {

std::string endpoint_key(const std::string& host, std::uint16_t port) {
  std::string key = host;
  key += ':';
  key += std::to_string(port);
  return key;
}

// An idle keep-alive connection must have nothing to read: end of file means
// the backend closed it, and stray bytes mean it is out of step.
bool looks_open(UpstreamConnection& connection) {
  if (!connection.stream.socket().is_open() || connection.buffer.size() != 0) {
    return false;
  }
  char byte;
  ssize_t count = ::recv(connection.stream.socket().native_handle(), &byte, 1,
                         MSG_PEEK | MSG_DONTWAIT);
  return count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

UpstreamConnection::UpstreamConnection(asio::any_io_executor executor,
                                       std::shared_ptr<UpstreamEndpoint> endpoint)
    : stream(std::move(executor)), endpoint_(std::move(endpoint)) {
  ++endpoint_->open;
}

UpstreamConnection::~UpstreamConnection() {
  --endpoint_->open;
  endpoint_->wake_one();
}

void UpstreamEndpoint::wake_one() {
  if (waiters.empty()) {
    return;
  }
  Waiter* waiter = waiters.front();
  waiters.pop_front();
  waiter->woken = true;
  waiter->timer->cancel();
}

UpstreamPool::UpstreamPool(asio::any_io_executor executor, std::size_t max_idle_per_endpoint,
                           std::size_t max_per_endpoint,
                           std::chrono::milliseconds connect_timeout)
    : executor_(std::move(executor)),
      max_idle_per_endpoint_(max_idle_per_endpoint),
      max_per_endpoint_(std::max<std::size_t>(max_per_endpoint, 1)),
      connect_timeout_(connect_timeout) {}

UpstreamPool::~UpstreamPool() {
  // An idle connection owns a reference to its endpoint, which owns the
  // idle connection: closing them here breaks that cycle.
  for (auto& [key, state] : endpoints_) {
    std::vector<UpstreamConnectionPtr> idle = std::move(state->idle);
    idle.clear();
  }
}

const std::shared_ptr<UpstreamEndpoint>& UpstreamPool::endpoint(const std::string& host,
                                                                std::uint16_t port) {
  std::shared_ptr<UpstreamEndpoint>& endpoint = endpoints_[endpoint_key(host, port)];
  if (!endpoint) {
    endpoint = std::make_shared<UpstreamEndpoint>();
  }
  return endpoint;
}

UpstreamConnectionPtr UpstreamPool::take_idle(UpstreamEndpoint& endpoint) {
  // The most recently returned connection first. Whether the backend closed
  // it since is not checked here, which would cost a system call per
  // request: the session sends a request that fails on a reused connection
  // once more on a new one, and sweep() drops closed connections.
  while (!endpoint.idle.empty()) {
    UpstreamConnectionPtr connection = std::move(endpoint.idle.back());
    endpoint.idle.pop_back();
    idle_count_.fetch_sub(1, std::memory_order_relaxed);
    if (connection->stream.socket().is_open() && connection->buffer.size() == 0) {
      connection->reused = true;
      return connection;
    }
  }
  return nullptr;
}

UpstreamConnectionPtr UpstreamPool::reuse(const std::string& host, std::uint16_t port) {
  auto found = endpoints_.find(endpoint_key(host, port));
  if (found == endpoints_.end()) {
    return nullptr;
  }
  return take_idle(*found->second);
}

awaitable<UpstreamConnectionPtr> UpstreamPool::connect(
    const std::string& host, std::uint16_t port, std::chrono::steady_clock::time_point deadline,
    bool& waited, boost::system::error_code& error) {
  std::shared_ptr<UpstreamEndpoint> state = endpoint(host, port);
  waited = false;

  // Reuse an idle connection, else open one while under the limit, else
  // wait in line. A woken request goes ahead of requests that just came.
  bool woken = false;
  for (;;) {
    UpstreamConnectionPtr idle = take_idle(*state);
    if (idle) {
      co_return idle;
    }
    if (state->open < max_per_endpoint_ && (woken || state->waiters.empty())) {
      break;
    }

    waited = true;
    asio::steady_timer timer(executor_, deadline);
    UpstreamEndpoint::Waiter waiter{&timer};
    // Leaves the line when the wait ends without a wake-up, also when the
    // coroutine is destroyed at shutdown.
    struct LineGuard {
      UpstreamEndpoint& state;
      UpstreamEndpoint::Waiter& waiter;
      std::atomic<std::size_t>& waiting;
      ~LineGuard() {
        waiting.fetch_sub(1, std::memory_order_relaxed);
        if (!waiter.woken) {
          std::erase(state.waiters, &waiter);
        }
      }
    };
    if (woken) {
      state->waiters.push_front(&waiter);
    } else {
      state->waiters.push_back(&waiter);
    }
    waiting_count_.fetch_add(1, std::memory_order_relaxed);
    {
      LineGuard guard{*state, waiter, waiting_count_};
      boost::system::error_code wait_error;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, wait_error));
    }
    if (!waiter.woken) {
      error = asio::error::timed_out;
      co_return nullptr;
    }
    woken = true;
  }

  asio::ip::address address = asio::ip::make_address(host, error);
  if (error) {
    state->wake_one();
    co_return nullptr;
  }
  auto connection = std::make_unique<UpstreamConnection>(executor_, state);
  connection->stream.expires_after(connect_timeout_);
  co_await connection->stream.async_connect(asio::ip::tcp::endpoint(address, port),
                                            asio::redirect_error(asio::use_awaitable, error));
  if (error) {
    co_return nullptr;
  }
  connection->stream.expires_never();
  connection->stream.socket().set_option(asio::ip::tcp::no_delay(true), error);
  // The session writes requests to the socket at once when it can.
  connection->stream.socket().non_blocking(true, error);
  error = {};
  co_return connection;
}

void UpstreamPool::release(const std::string& host, std::uint16_t port,
                           UpstreamConnectionPtr connection) {
  const std::shared_ptr<UpstreamEndpoint>& state = endpoint(host, port);
  if (state->idle.size() >= max_idle_per_endpoint_) {
    return;  // closed here, which wakes a waiting request
  }
  connection->stream.expires_never();
  state->idle.push_back(std::move(connection));
  idle_count_.fetch_add(1, std::memory_order_relaxed);
  state->wake_one();
}

void UpstreamPool::sweep() {
  std::size_t count = 0;
  for (auto entry = endpoints_.begin(); entry != endpoints_.end();) {
    UpstreamEndpoint& state = *entry->second;
    std::erase_if(state.idle, [](const UpstreamConnectionPtr& connection) {
      return !looks_open(*connection);
    });
    count += state.idle.size();
    if (state.open == 0 && state.waiters.empty()) {
      entry = endpoints_.erase(entry);
    } else {
      ++entry;
    }
  }
  idle_count_.store(count, std::memory_order_relaxed);
}

}  // namespace modelgate::gateway
