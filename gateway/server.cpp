#include "gateway/server.hpp"

#include <random>
#include <stdexcept>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "gateway/session.hpp"
#include "routing/logger.hpp"

namespace modelgate::gateway {
namespace {

constexpr auto kSweepInterval = std::chrono::seconds(10);

// Request ids start with 8 random hex digits per I/O thread, so that ids of
// different gateway processes and threads do not collide.
std::string random_prefix() {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device device;
  std::uint32_t value = device();
  std::string prefix;
  for (int digit = 0; digit < 8; ++digit) {
    prefix += kHex[(value >> (digit * 4)) & 0xf];
  }
  return prefix;
}

awaitable<void> sweep_loop(ThreadContext& thread) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    timer.expires_after(kSweepInterval);
    boost::system::error_code error;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, error));
    if (error) {
      co_return;
    }
    thread.upstream_pool.sweep();
  }
}

}  // namespace

ConnectionLimit::ConnectionLimit(asio::any_io_executor acceptor_executor, std::size_t max)
    : executor_(acceptor_executor), wakeup_(std::move(acceptor_executor)), max_(max) {}

ConnectionLimit::Slot::~Slot() {
  if (limit_ != nullptr) {
    limit_->release();
  }
}

bool ConnectionLimit::full() const { return open_.load() >= max_; }

awaitable<void> ConnectionLimit::wait_for_room() {
  while (full()) {
    // release() cancels the wait. The expiry only bounds the wait in case
    // a wake-up is lost.
    wakeup_.expires_after(std::chrono::seconds(1));
    boost::system::error_code error;
    co_await wakeup_.async_wait(asio::redirect_error(asio::use_awaitable, error));
    if (error && error != asio::error::operation_aborted) {
      break;
    }
  }
}

ConnectionLimit::Slot ConnectionLimit::take() {
  ++open_;
  return Slot(this);
}

void ConnectionLimit::cancel() { wakeup_.cancel(); }

void ConnectionLimit::release() {
  // Only the connection that brings the count below the limit wakes the
  // acceptor; the timer is touched only on the acceptor's executor.
  if (open_.fetch_sub(1) == max_) {
    asio::post(executor_, [this] { wakeup_.cancel(); });
  }
}

Server::Server(ServerContext& context, std::vector<asio::io_context*> contexts, ListenerRole role)
    : context_(context),
      contexts_(std::move(contexts)),
      role_(role),
      acceptor_(*contexts_.front()),
      connection_limit_(contexts_.front()->get_executor(),
                        context.config.gateway.max_client_connections) {
  for (asio::io_context* io_context : contexts_) {
    threads_.push_back(std::make_unique<ThreadContext>(io_context->get_executor(),
                                                       context.config.gateway, random_prefix()));
  }
  if (role_ != ListenerRole::client) {
    return;
  }
  context_.metrics.set_upstream_idle_source([this] {
    std::size_t count = 0;
    for (const auto& thread : threads_) {
      count += thread->upstream_pool.idle_count();
    }
    return count;
  });
  context_.metrics.set_upstream_waiting_source([this] {
    std::size_t count = 0;
    for (const auto& thread : threads_) {
      count += thread->upstream_pool.waiting_count();
    }
    return count;
  });
}

Server::~Server() {
  if (role_ == ListenerRole::client) {
    context_.metrics.set_upstream_idle_source({});
    context_.metrics.set_upstream_waiting_source({});
  }
}

void Server::listen() {
  const config::GatewaySettings& settings = context_.config.gateway;
  std::string host = settings.listen_address;
  std::uint16_t port = settings.listen_port;
  std::string key = "gateway.listen";
  if (role_ == ListenerRole::admin) {
    host = settings.admin_listen.value().host;
    port = settings.admin_listen->port;
    key = "gateway.admin_listen";
  }

  boost::system::error_code error;
  asio::ip::address address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host,
                                                     error);
  if (error) {
    throw std::runtime_error("invalid address '" + host + "' in " + key +
                             "; write an IP address such as 127.0.0.1 or [::1]");
  }
  asio::ip::tcp::endpoint endpoint(address, port);

  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true));
  acceptor_.bind(endpoint, error);
  if (error) {
    throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port) + ": " +
                             error.message() + "; free the port or change " + key);
  }
  acceptor_.listen(asio::socket_base::max_listen_connections);
}

void Server::start() {
  asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached);
  for (std::size_t index = 0; index < contexts_.size(); ++index) {
    asio::co_spawn(*contexts_[index], sweep_loop(*threads_[index]), asio::detached);
  }
}

void Server::stop_accepting() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  asio::post(acceptor_.get_executor(), [this] { connection_limit_.cancel(); });
}

asio::ip::tcp::endpoint Server::local_endpoint() const {
  boost::system::error_code ignored;
  return acceptor_.local_endpoint(ignored);
}

awaitable<void> Server::accept_loop() {
  auto log = component_logger("gateway");
  std::size_t next = 0;
  asio::steady_timer backoff(acceptor_.get_executor());

  while (acceptor_.is_open()) {
    // At max_client_connections new connections wait in the listen backlog.
    if (role_ == ListenerRole::client && connection_limit_.full()) {
      context_.metrics.record_limit_hit(Limit::max_client_connections);
      log->debug("max_client_connections ({}) reached; new connections wait in the backlog",
                 context_.config.gateway.max_client_connections);
      co_await connection_limit_.wait_for_room();
      if (!acceptor_.is_open()) {
        co_return;
      }
    }

    asio::io_context& target = *contexts_[next];
    ThreadContext& thread = *threads_[next];
    next = (next + 1) % contexts_.size();

    boost::system::error_code error;
    asio::ip::tcp::socket socket = co_await acceptor_.async_accept(
        target, asio::redirect_error(asio::use_awaitable, error));
    if (error == asio::error::operation_aborted || !acceptor_.is_open()) {
      co_return;
    }
    if (error) {
      // Out of descriptors or memory: wait instead of spinning.
      log->warn("accepting a client connection failed: {}", error.message());
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, error));
      continue;
    }

    ConnectionLimit::Slot slot =
        role_ == ListenerRole::client ? connection_limit_.take() : ConnectionLimit::Slot();
    asio::co_spawn(target,
                   serve_connection(std::move(socket), context_, thread, role_, std::move(slot)),
                   [log](std::exception_ptr failure) {
                     if (!failure) {
                       return;
                     }
                     try {
                       std::rethrow_exception(failure);
                     } catch (const std::exception& exception) {
                       log->error("client connection ended with an exception: {}",
                                  exception.what());
                     }
                   });
  }
}

}  // namespace modelgate::gateway
