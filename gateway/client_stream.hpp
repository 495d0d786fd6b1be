#pragma once

// A client connection's byte stream: plain TCP, or TLS over TCP. One type
// serves both, so the session's code and Beast's algorithms are compiled
// once. Each read or write picks the layer with one branch.

#include "routing/asio_prelude.hpp"

#include <chrono>
#include <memory>
#include <optional>

#include <boost/asio/async_result.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

namespace modelgate::gateway {

class ClientStream {
 public:
  using executor_type = boost::beast::tcp_stream::executor_type;
  using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

  // TLS is used when `tls` is not null.
  ClientStream(asio::ip::tcp::socket socket, const std::shared_ptr<asio::ssl::context>& tls) {
    if (tls) {
      tls_context_ = tls;
      tls_.emplace(std::move(socket), *tls);
    } else {
      plain_.emplace(std::move(socket));
    }
  }

  bool is_tls() const { return tls_.has_value(); }

  // The TCP layer, for timeouts and the socket.
  boost::beast::tcp_stream& tcp() { return tls_ ? tls_->next_layer() : *plain_; }
  asio::ip::tcp::socket& socket() { return tcp().socket(); }
  executor_type get_executor() { return tcp().get_executor(); }

  void expires_after(std::chrono::steady_clock::duration timeout) { tcp().expires_after(timeout); }
  void expires_never() { tcp().expires_never(); }
  void close() { tcp().close(); }

  // The TLS layer; only when is_tls().
  TlsStream& tls() { return *tls_; }

  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& target) {
          if (tls_) {
            tls_->async_read_some(target, std::move(handler));
          } else {
            plain_->async_read_some(target, std::move(handler));
          }
        },
        token, buffers);
  }

  template <typename ConstBuffers, typename Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& source) {
          if (tls_) {
            tls_->async_write_some(source, std::move(handler));
          } else {
            plain_->async_write_some(source, std::move(handler));
          }
        },
        token, buffers);
  }

 private:
  // The context outlives the stream even when a reload replaces it.
  std::shared_ptr<asio::ssl::context> tls_context_;
  std::optional<TlsStream> tls_;
  std::optional<boost::beast::tcp_stream> plain_;
};

}  // namespace modelgate::gateway
