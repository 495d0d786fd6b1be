#include "launcher/health_probe.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace modelgate::launcher {

namespace beast = boost::beast;
namespace http = beast::http;

awaitable<HealthResult> probe_health(const std::string& host, std::uint16_t port,
                                     const std::string& path,
                                     std::chrono::milliseconds timeout) {
  HealthResult result;
  auto executor = co_await asio::this_coro::executor;

  boost::system::error_code error;
  asio::ip::address address = asio::ip::make_address(host, error);
  if (error) {
    result.error = "invalid address " + host;
    co_return result;
  }

  beast::tcp_stream stream(executor);
  stream.expires_after(timeout);
  co_await stream.async_connect(asio::ip::tcp::endpoint(address, port),
                                asio::redirect_error(asio::use_awaitable, error));
  if (error) {
    result.error = error.message();
    co_return result;
  }

  http::request<http::empty_body> request(http::verb::get, path, 11);
  std::string authority = address.is_v6() ? "[" + host + "]" : host;
  request.set(http::field::host, authority + ":" + std::to_string(port));
  request.set(http::field::user_agent, "modelgate-health-check");
  request.set(http::field::connection, "close");
  co_await http::async_write(stream, request, asio::redirect_error(asio::use_awaitable, error));
  if (error) {
    result.error = error.message();
    co_return result;
  }

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(1024 * 1024);
  co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, error));
  if (error && !parser.is_header_done()) {
    result.error = error.message();
    co_return result;
  }

  result.status = parser.get().result_int();
  result.healthy = result.status >= 200 && result.status < 300;
  co_return result;
}

}  // namespace modelgate::launcher
