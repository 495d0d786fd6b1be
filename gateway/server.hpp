#pragma once

// The client listener and the I/O threads. Each I/O thread runs its own
// io_context with its own upstream pool; the acceptor hands new connections
// to the threads in turn.

#include "routing/asio_prelude.hpp"

#include <memory>
#include <thread>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include "gateway/server_context.hpp"

namespace modelgate::gateway {

class Server {
 public:
  // `contexts` are the I/O threads' io_contexts; the acceptor runs on the
  // first.
  Server(ServerContext& context, std::vector<asio::io_context*> contexts);
  ~Server();

  // Binds the listener. Throws std::runtime_error naming the address.
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
  std::vector<std::unique_ptr<ThreadContext>> threads_;
  asio::ip::tcp::acceptor acceptor_;
};

}  // namespace modelgate::gateway
