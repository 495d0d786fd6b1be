#pragma once

// One client connection: reads requests, answers the gateway's own
// endpoints, and proxies model requests to a backend instance.

#include "routing/asio_prelude.hpp"

#include <boost/asio/ip/tcp.hpp>

#include "gateway/server.hpp"
#include "gateway/server_context.hpp"

namespace modelgate::gateway {

awaitable<void> serve_connection(asio::ip::tcp::socket socket, ServerContext& server,
                                 ThreadContext& thread, ListenerRole role,
                                 ConnectionLimit::Slot slot);

}  // namespace modelgate::gateway
