#include "gateway/server.hpp"

#include <random>
#include <stdexcept>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
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

Server::Server(ServerContext& context, std::vector<asio::io_context*> contexts)
    : context_(context), contexts_(std::move(contexts)), acceptor_(*contexts_.front()) {
  for (asio::io_context* io_context : contexts_) {
    threads_.push_back(std::make_unique<ThreadContext>(io_context->get_executor(),
                                                       context.config.gateway, random_prefix()));
  }
  context_.metrics.set_upstream_idle_source([this] {
    std::size_t count = 0;
    for (const auto& thread : threads_) {
      count += thread->upstream_pool.idle_count();
    }
    return count;
  });
}

Server::~Server() { context_.metrics.set_upstream_idle_source({}); }

void Server::listen() {
  const config::GatewaySettings& settings = context_.config.gateway;
  boost::system::error_code error;
  asio::ip::address address = asio::ip::make_address(settings.listen_address, error);
  if (error) {
    throw std::runtime_error("invalid listen address '" + settings.listen_address + "'");
  }
  asio::ip::tcp::endpoint endpoint(address, settings.listen_port);

  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true));
  acceptor_.bind(endpoint, error);
  if (error) {
    throw std::runtime_error("cannot listen on " + settings.listen_address + ":" +
                             std::to_string(settings.listen_port) + ": " + error.message() +
                             "; free the port or change gateway.listen");
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

    asio::co_spawn(target, serve_connection(std::move(socket), context_, thread),
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
