#include "bench/stub_server.hpp"

#include <unistd.h>

#include <ctime>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "bench/stub_responses.hpp"
#include "bench/stub_session.hpp"

namespace modelgate::stub {
namespace {

// Pause after a failed accept, such as when the process is out of file
// descriptors, so that the loop does not spin.
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);

asio::awaitable<void> run_session(std::shared_ptr<Session> session) {
  co_await session->run();
}

}  // namespace

Server::Server(asio::io_context& io, const Options& options,
               std::shared_ptr<spdlog::logger> logger)
    : io_(io),
      options_(options),
      logger_(std::move(logger)),
      acceptor_(io),
      loading_timer_(io),
      created_(static_cast<std::int64_t>(std::time(nullptr))),
      pid_(static_cast<int>(::getpid())) {
  append_json_string(model_json_, options_.model);
}

void Server::listen() {
  tcp::resolver resolver(io_);
  const auto endpoints =
      resolver.resolve(options_.host, std::to_string(options_.port),
                       tcp::resolver::passive | tcp::resolver::numeric_service);
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();

  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen(asio::socket_base::max_listen_connections);
}

void Server::start() {
  if (options_.startup_delay.count() > 0) {
    loading_ = true;
    loaded_at_ = std::chrono::steady_clock::now() + options_.startup_delay;
    loading_timer_.expires_at(loaded_at_);
    loading_timer_.async_wait([this](const error_code& ec) {
      if (ec) {
        return;
      }
      loading_ = false;
      logger_->info("model {} loaded after {} ms", options_.model,
                    options_.startup_delay.count());
    });
  }

  asio::co_spawn(io_, accept_connections(), asio::detached);
}

std::string Server::local_address() const {
  const tcp::endpoint endpoint = acceptor_.local_endpoint();
  const std::string host = endpoint.address().to_string();
  if (endpoint.address().is_v6()) {
    return fmt::format("[{}]:{}", host, endpoint.port());
  }
  return fmt::format("{}:{}", host, endpoint.port());
}

std::uint16_t Server::local_port() const {
  return acceptor_.local_endpoint().port();
}

std::int64_t Server::seconds_until_loaded() const {
  const auto remaining = loaded_at_ - std::chrono::steady_clock::now();
  const auto seconds =
      std::chrono::ceil<std::chrono::seconds>(remaining).count();
  return seconds < 1 ? 1 : static_cast<std::int64_t>(seconds);
}

asio::any_io_executor Server::connection_executor() {
  if (options_.threads == 1) {
    return io_.get_executor();
  }
  return asio::make_strand(io_);
}

asio::awaitable<void> Server::accept_connections() {
  asio::steady_timer retry_timer(io_);

  for (;;) {
    error_code ec;
    tcp::socket socket = co_await acceptor_.async_accept(
        connection_executor(), asio::redirect_error(asio::use_awaitable, ec));

    if (ec == asio::error::operation_aborted) {
      co_return;
    }

    if (ec) {
      logger_->warn("accepting a connection failed: {}; retrying in {} ms",
                    ec.message(), kAcceptRetryDelay.count());
      retry_timer.expires_after(kAcceptRetryDelay);
      co_await retry_timer.async_wait(
          asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }

    // Streamed chunks are small writes that Nagle's algorithm would delay.
    socket.set_option(tcp::no_delay(true), ec);

    auto session = std::make_shared<Session>(std::move(socket), *this);
    const auto executor = session->executor();
    asio::co_spawn(executor, run_session(std::move(session)), asio::detached);
  }
}

}  // namespace modelgate::stub
