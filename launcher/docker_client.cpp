#include "launcher/docker_client.hpp"

#include <openssl/ssl.h>

#include <limits>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <nlohmann/json.hpp>

namespace modelgate::launcher {

namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using boost::system::error_code;

namespace {

// Connecting gets its own limit, so that a request without a deadline (wait,
// logs) still fails at once when the engine is unreachable.
constexpr auto kConnectTimeout = std::chrono::seconds(10);
// Whole responses larger than this are errors. Lists of containers and
// images stay far below it.
constexpr std::size_t kMaxResponseBytes = 64 * 1024 * 1024;

using Parser = http::response_parser<http::buffer_body>;
using Request = http::request<http::string_body>;
using UnixStream = beast::basic_stream<asio::local::stream_protocol>;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// One connection to the engine, whatever the transport.
class Connection {
 public:
  virtual ~Connection() = default;
  // EngineDuration::max() means no deadline.
  virtual void expires_after(EngineDuration timeout) = 0;
  virtual awaitable<void> write(Request& request, error_code& error) = 0;
  virtual awaitable<void> read_header(beast::flat_buffer& buffer, Parser& parser,
                                      error_code& error) = 0;
  virtual awaitable<void> read_some(beast::flat_buffer& buffer, Parser& parser,
                                    error_code& error) = 0;
  virtual void close() = 0;
};

template <typename Stream>
class StreamConnection final : public Connection {
 public:
  explicit StreamConnection(Stream stream) : stream_(std::move(stream)) {}

  Stream& stream() { return stream_; }

  void expires_after(EngineDuration timeout) override {
    if (timeout == EngineDuration::max()) {
      beast::get_lowest_layer(stream_).expires_never();
    } else {
      beast::get_lowest_layer(stream_).expires_after(timeout);
    }
  }

  awaitable<void> write(Request& request, error_code& error) override {
    co_await http::async_write(stream_, request, asio::redirect_error(asio::use_awaitable, error));
  }

  awaitable<void> read_header(beast::flat_buffer& buffer, Parser& parser,
                              error_code& error) override {
    co_await http::async_read_header(stream_, buffer, parser,
                                     asio::redirect_error(asio::use_awaitable, error));
  }

  awaitable<void> read_some(beast::flat_buffer& buffer, Parser& parser,
                            error_code& error) override {
    co_await http::async_read_some(stream_, buffer, parser,
                                   asio::redirect_error(asio::use_awaitable, error));
  }

  void close() override { beast::get_lowest_layer(stream_).close(); }

 private:
  Stream stream_;
};

// Returns a hint for the connect errors that operators meet most often.
std::string connect_hint(const error_code& error) {
  if (error == asio::error::not_found || error.value() == ENOENT) {
    return " (the socket does not exist: is the engine running, and is the worker's endpoint "
           "right?)";
  }
  if (error == asio::error::access_denied || error.value() == EACCES) {
    return " (the gateway's user may not use the socket: run the gateway as root or as a member "
           "of the socket's group)";
  }
  if (error == asio::error::connection_refused) {
    return " (nothing accepts connections there: is the engine running?)";
  }
  if (error == beast::error::timeout) {
    return " (no answer within " + std::to_string(kConnectTimeout.count()) + " s)";
  }
  return {};
}

std::string describe_request(std::string_view method, const std::string& target) {
  return std::string(method) + " " + target;
}

}  // namespace

struct DockerClient::TlsContext {
  TlsContext() : context(ssl::context::tls_client) {}
  ssl::context context;
};

class DockerStream::Impl {
 public:
  explicit Impl(std::unique_ptr<Connection> connection) : connection(std::move(connection)) {
    // No limit. Boost 1.74 compares Content-Length with an empty limit
    // (boost::none) as exceeding it, so the largest number stands for none.
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  }

  std::unique_ptr<Connection> connection;
  beast::flat_buffer buffer;
  Parser parser;
};

DockerStream::DockerStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DockerStream::~DockerStream() = default;

int DockerStream::status() const { return impl_->parser.get().result_int(); }

awaitable<std::size_t> DockerStream::read_some(std::span<char> buffer, error_code& error) {
  Parser& parser = impl_->parser;
  if (parser.is_done()) {
    error = http::error::end_of_stream;
    co_return 0;
  }

  parser.get().body().data = buffer.data();
  parser.get().body().size = buffer.size();
  co_await impl_->connection->read_some(impl_->buffer, parser, error);
  if (error == http::error::need_buffer) {
    error = {};
  }
  std::size_t count = buffer.size() - parser.get().body().size;
  if (!error && count == 0 && parser.is_done()) {
    error = http::error::end_of_stream;
  }
  co_return count;
}

awaitable<std::string> DockerStream::read_rest(std::size_t max_bytes, error_code& error) {
  std::string body;
  char piece[16 * 1024];
  for (;;) {
    std::size_t count = co_await read_some(piece, error);
    body.append(piece, count);
    if (error == http::error::end_of_stream) {
      error = {};
      break;
    }
    if (error) {
      break;
    }
    if (body.size() > max_bytes) {
      error = http::error::body_limit;
      break;
    }
  }
  co_return body;
}

void DockerStream::close() { impl_->connection->close(); }

bool is_end_of_body(const error_code& error) { return error == http::error::end_of_stream; }

DockerClient::DockerClient(DockerEndpoint endpoint) : endpoint_(std::move(endpoint)) {
  if (endpoint_.host.empty() || !endpoint_.uses_tls()) {
    return;
  }

  tls_ = std::make_unique<TlsContext>();
  ssl::context& context = tls_->context;
  auto fail = [&](const std::string& what, const std::filesystem::path& file,
                  const error_code& error) {
    setup_error_ = "cannot load " + what + (file.empty() ? "" : " " + file.string()) +
                   " for the container engine at " + endpoint_.text + ": " + error.message();
  };

  error_code error;
  if (endpoint_.tls_ca.empty()) {
    context.set_default_verify_paths(error);
    if (error) {
      fail("the system's CA certificates", "", error);
      return;
    }
  } else {
    context.load_verify_file(endpoint_.tls_ca.string(), error);
    if (error) {
      fail("the CA certificate", endpoint_.tls_ca, error);
      return;
    }
  }
  if (!endpoint_.tls_cert.empty()) {
    context.use_certificate_chain_file(endpoint_.tls_cert.string(), error);
    if (error) {
      fail("the client certificate", endpoint_.tls_cert, error);
      return;
    }
    context.use_private_key_file(endpoint_.tls_key.string(), ssl::context::pem, error);
    if (error) {
      fail("the client key", endpoint_.tls_key, error);
      return;
    }
  }
  context.set_verify_mode(ssl::verify_peer);
}

DockerClient::~DockerClient() = default;

awaitable<DockerStreamResult> DockerClient::open(std::string_view method, std::string target,
                                                 std::string body, EngineDuration head_timeout) {
  auto executor = co_await asio::this_coro::executor;
  DockerStreamResult result;
  std::string where = "container engine at " + endpoint_.text;
  error_code error;
  if (!setup_error_.empty()) {
    result.error = setup_error_;
    co_return result;
  }

  // Connect over the configured transport.
  std::unique_ptr<Connection> connection;
  if (!endpoint_.socket_path.empty()) {
    auto unix_connection = std::make_unique<StreamConnection<UnixStream>>(UnixStream(executor));
    unix_connection->expires_after(kConnectTimeout);
    co_await unix_connection->stream().async_connect(
        asio::local::stream_protocol::endpoint(endpoint_.socket_path),
        asio::redirect_error(asio::use_awaitable, error));
    connection = std::move(unix_connection);
  } else {
    asio::ip::tcp::resolver resolver(executor);
    auto addresses = co_await resolver.async_resolve(
        endpoint_.host, std::to_string(endpoint_.port),
        asio::redirect_error(asio::use_awaitable, error));
    if (error) {
      result.error = "cannot resolve the " + where + ": " + error.message();
      co_return result;
    }

    beast::tcp_stream tcp(executor);
    tcp.expires_after(kConnectTimeout);
    co_await tcp.async_connect(addresses, asio::redirect_error(asio::use_awaitable, error));
    if (!error && tls_) {
      auto tls_connection =
          std::make_unique<StreamConnection<TlsStream>>(TlsStream(std::move(tcp), tls_->context));
      TlsStream& stream = tls_connection->stream();
      // SNI and the name check use the configured host name.
      ::SSL_set_tlsext_host_name(stream.native_handle(), endpoint_.host.c_str());
      stream.set_verify_callback(ssl::host_name_verification(endpoint_.host));
      co_await stream.async_handshake(ssl::stream_base::client,
                                      asio::redirect_error(asio::use_awaitable, error));
      if (error) {
        result.error = "TLS handshake with the " + where + " failed: " + error.message();
        co_return result;
      }
      connection = std::move(tls_connection);
    } else {
      connection = std::make_unique<StreamConnection<beast::tcp_stream>>(std::move(tcp));
    }
  }
  if (error) {
    result.error = "cannot connect to the " + where + ": " + error.message() + connect_hint(error);
    co_return result;
  }

  // Send the request and read the response head.
  std::string path = "/" + std::string(kDockerApiVersion) + target;
  Request request(http::string_to_verb(beast::string_view(method.data(), method.size())), path, 11);
  request.set(http::field::host, endpoint_.host.empty() ? "docker" : endpoint_.host);
  request.set(http::field::user_agent, "modelgate");
  request.keep_alive(false);
  if (!body.empty()) {
    request.set(http::field::content_type, "application/json");
  }
  request.body() = std::move(body);
  request.prepare_payload();

  connection->expires_after(head_timeout);
  co_await connection->write(request, error);
  if (error) {
    result.error = "cannot send " + describe_request(method, target) + " to the " + where + ": " +
                   error.message();
    co_return result;
  }

  auto impl = std::make_unique<DockerStream::Impl>(std::move(connection));
  co_await impl->connection->read_header(impl->buffer, impl->parser, error);
  if (error) {
    result.error = "no answer to " + describe_request(method, target) + " from the " + where +
                   ": " + error.message();
    co_return result;
  }
  impl->connection->expires_after(EngineDuration::max());
  result.stream = std::make_shared<DockerStream>(std::move(impl));
  co_return result;
}

awaitable<DockerResponse> DockerClient::call(std::string_view method, std::string target,
                                             std::string body, EngineDuration timeout) {
  DockerResponse response;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool limited = timeout != EngineDuration::max();

  DockerStreamResult opened = co_await open(method, target, std::move(body), timeout);
  if (!opened.stream) {
    response.error = std::move(opened.error);
    co_return response;
  }

  // The rest of the body must arrive within what is left of `timeout`.
  std::shared_ptr<DockerStream> stream = opened.stream;
  asio::steady_timer limit(co_await asio::this_coro::executor);
  if (limited) {
    limit.expires_at(deadline);
    limit.async_wait([weak = std::weak_ptr<DockerStream>(stream)](const error_code& error) {
      auto alive = weak.lock();
      if (!error && alive) {
        alive->close();
      }
    });
  }

  error_code error;
  response.body = co_await stream->read_rest(kMaxResponseBytes, error);
  limit.cancel();
  if (error) {
    bool timed_out = limited && std::chrono::steady_clock::now() >= deadline;
    response.error = "cannot read the answer to " + describe_request(method, target) +
                     " from the container engine at " + endpoint_.text + ": " +
                     (timed_out ? std::string("timed out") : error.message());
    co_return response;
  }
  response.status = stream->status();
  co_return response;
}

std::string DockerClient::describe_failure(const DockerResponse& response) const {
  if (response.status == 0) {
    return response.error;
  }
  return "the container engine at " + endpoint_.text + " answered HTTP " +
         std::to_string(response.status) + ": " + response.message();
}

std::string DockerResponse::message() const {
  if (status == 0) {
    return error;
  }
  if (!ok()) {
    auto parsed = nlohmann::json::parse(body, nullptr, false);
    if (parsed.is_object() && parsed.contains("message") && parsed["message"].is_string()) {
      return parsed["message"].get<std::string>();
    }
  }
  std::string text = body.substr(0, 300);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.pop_back();
  }
  return text.empty() ? "HTTP " + std::to_string(status) : text;
}

}  // namespace modelgate::launcher
