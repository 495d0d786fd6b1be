#pragma once

// The Asio and Beast headers of the stub backend, after the project's
// prelude that must precede them.

#include "routing/asio_prelude.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace modelgate::stub {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using error_code = boost::system::error_code;

}  // namespace modelgate::stub
