#pragma once

// Include this before any Boost.Asio or Boost.Beast header.
//
// Boost 1.74's asio/awaitable.hpp uses std::exchange without including
// <utility>, which g++ 12's standard headers no longer pull in on their own.
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

namespace modelgate {

namespace asio = boost::asio;

template <typename T = void>
using awaitable = asio::awaitable<T>;

}  // namespace modelgate
