#pragma once

// The client listener and the I/O threads. Each I/O thread runs its own
// io_context with its own upstream pool; the acceptor hands new connections
// to the threads in turn.

#include "routing/asio_prelude.hpp"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "gateway/server_context.hpp"

namespace modelgate::gateway {

// Counts open client connections against gateway.max_client_connections.
// The acceptor waits while the count is at the limit; a connection that
// closes wakes it.
class ConnectionLimit {
 public:
  ConnectionLimit(asio::any_io_executor acceptor_executor, std::size_t max);

  // A connection's share of the count, given back when it is destroyed.
  class Slot {
   public:
    Slot() = default;
    explicit Slot(ConnectionLimit* limit) : limit_(limit) {}
    Slot(Slot&& other) noexcept : limit_(std::exchange(other.limit_, nullptr)) {}
    Slot& operator=(Slot&&) = delete;
    ~Slot();

   private:
    ConnectionLimit* limit_ = nullptr;
  };

  bool full() const;
  // Waits on the acceptor's executor until a connection may be accepted.
  awaitable<void> wait_for_room();
  Slot take();
  void cancel();

 private:
  void release();

  asio::any_io_executor executor_;
  asio::steady_timer wakeup_;
  std::size_t max_;
  std::atomic<std::size_t> open_{0};
};

class Server {
 public:
  // `contexts` are the I/O threads' io_contexts; the acceptor runs on the
  // first.
  Server(ServerContext& context, std::vector<asio::io_context*> contexts,
         ListenerRole role = ListenerRole::client);
  ~Server();

  // Binds the listener: gateway.listen for the client role,
  // gateway.admin_listen for the admin role. Throws std::runtime_error
  // naming the address.
  void listen();
  // Starts accepting and sweeping idle upstream connections.
  void start();
  // Closes the listener; open connections finish their current request.
  void stop_accepting();

  asio::ip::tcp::endpoint local_endpoint() const;

 private:
  awaitable<void> accept_loop();

  ServerContext& context_;
  std::vector<asio::io_context*> contexts_;
  ListenerRole role_;
  std::vector<std::unique_ptr<ThreadContext>> threads_;
  asio::ip::tcp::acceptor acceptor_;
  ConnectionLimit connection_limit_;
};

}  // namespace modelgate::gateway
