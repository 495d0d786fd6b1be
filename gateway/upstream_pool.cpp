#include "gateway/upstream_pool.hpp"

#include <sys/socket.h>

#include <cerrno>

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

UpstreamPool::UpstreamPool(asio::any_io_executor executor, std::size_t max_idle_per_endpoint,
                           std::chrono::milliseconds connect_timeout)
    : executor_(std::move(executor)),
      max_idle_per_endpoint_(max_idle_per_endpoint),
      connect_timeout_(connect_timeout) {}

awaitable<UpstreamConnectionPtr> UpstreamPool::connect(const std::string& host,
                                                       std::uint16_t port,
                                                       boost::system::error_code& error) {
  // Reuse the most recently returned connection that is still open.
  auto found = idle_.find(endpoint_key(host, port));
  if (found != idle_.end()) {
    auto& connections = found->second;
    while (!connections.empty()) {
      UpstreamConnectionPtr connection = std::move(connections.back());
      connections.pop_back();
      idle_count_.fetch_sub(1, std::memory_order_relaxed);
      if (looks_open(*connection)) {
        connection->reused = true;
        co_return connection;
      }
    }
  }

  asio::ip::address address = asio::ip::make_address(host, error);
  if (error) {
    co_return nullptr;
  }
  auto connection = std::make_unique<UpstreamConnection>(executor_);
  connection->stream.expires_after(connect_timeout_);
  co_await connection->stream.async_connect(asio::ip::tcp::endpoint(address, port),
                                            asio::redirect_error(asio::use_awaitable, error));
  if (error) {
    co_return nullptr;
  }
  connection->stream.expires_never();
  connection->stream.socket().set_option(asio::ip::tcp::no_delay(true), error);
  error = {};
  co_return connection;
}

void UpstreamPool::release(const std::string& host, std::uint16_t port,
                           UpstreamConnectionPtr connection) {
  auto& connections = idle_[endpoint_key(host, port)];
  if (connections.size() >= max_idle_per_endpoint_) {
    return;
  }
  connection->stream.expires_never();
  connections.push_back(std::move(connection));
  idle_count_.fetch_add(1, std::memory_order_relaxed);
}

void UpstreamPool::sweep() {
  std::size_t count = 0;
  for (auto entry = idle_.begin(); entry != idle_.end();) {
    std::erase_if(entry->second, [](const UpstreamConnectionPtr& connection) {
      return !looks_open(*connection);
    });
    count += entry->second.size();
    if (entry->second.empty()) {
      entry = idle_.erase(entry);
    } else {
      ++entry;
    }
  }
  idle_count_.store(count, std::memory_order_relaxed);
}

}  // namespace modelgate::gateway
