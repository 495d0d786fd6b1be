#include "gateway/session.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <limits>
#include <memory>
#include <memory_resource>
#include <optional>
#include <tuple>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <nlohmann/json.hpp>

#include "gateway/access_log.hpp"
#include "gateway/client_stream.hpp"
#include "gateway/errors.hpp"
#include "gateway/http_text.hpp"
#include "gateway/log_format.hpp"
#include "gateway/tls_context.hpp"
#include "routing/logger.hpp"
#include "routing/model_request.hpp"

namespace modelgate::gateway {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using Clock = std::chrono::steady_clock;
using error_code = boost::system::error_code;
using Request = ClientRequest;
using RequestParser = http::request_parser<RequestBody, HeadAllocator>;
using UpstreamParser = http::response_parser<http::buffer_body, HeadAllocator>;
using config::Duration;

constexpr std::size_t kUpstreamHeaderLimit = 64 * 1024;
// Maximum launcher requests for one client request. An instance can begin
// to stop between being chosen and counting the request in; then the
// request goes back to the launcher.
constexpr int kMaxAcquireAttempts = 3;
// How long a TLS connection waits for the client's close_notify when it
// closes.
constexpr auto kTlsShutdownTimeout = std::chrono::seconds(1);

std::shared_ptr<spdlog::logger> log() { return component_logger("gateway"); }
std::shared_ptr<spdlog::logger> access_log() { return component_logger("access"); }

double milliseconds_since(Clock::time_point since) {
  return std::chrono::duration<double, std::milli>(Clock::now() - since).count();
}

// Returns the error kind and client message for a body whose "model"
// cannot be read.
std::pair<ErrorKind, std::string> describe_model_error(const routing::ModelRequest& parsed) {
  using routing::ModelRequestError;
  switch (parsed.error) {
    case ModelRequestError::invalid_json:
      return {ErrorKind::invalid_json, "the request body is not valid JSON: " + parsed.detail};
    case ModelRequestError::not_an_object:
      return {ErrorKind::invalid_request, "the request body must be a JSON object"};
    case ModelRequestError::missing_model:
      return {ErrorKind::invalid_request, "you must provide a model parameter"};
    case ModelRequestError::model_not_string:
      return {ErrorKind::invalid_request, "the model parameter must be a string"};
    case ModelRequestError::empty_model:
      return {ErrorKind::invalid_request, "the model parameter must not be empty"};
    case ModelRequestError::duplicate_model:
      return {ErrorKind::invalid_request, "the model parameter appears more than once"};
    case ModelRequestError::too_deep:
      return {ErrorKind::invalid_json, "the request body nests deeper than " +
                                           std::to_string(routing::kMaxJsonDepth) + " levels"};
    case ModelRequestError::none:
      break;
  }
  return {ErrorKind::invalid_request, "invalid request body"};
}

using BufferSpan = std::span<const asio::const_buffer>;
using Unsent = beast::buffers_suffix<BufferSpan>;

// Writes to a plain TCP socket what the kernel takes without waiting, which
// saves a trip through the event loop for most writes. Returns true when
// nothing is left for an asynchronous write: all bytes went out, or `error`
// is set.
bool write_now(asio::ip::tcp::socket& socket, Unsent& rest, error_code& error) {
  while (beast::buffer_bytes(rest) > 0) {
    std::size_t count = socket.write_some(rest, error);
    if (error == asio::error::would_block || error == asio::error::try_again) {
      error = {};
      return false;
    }
    if (error) {
      return true;
    }
    rest.consume(count);
  }
  return true;
}

// Writes the bytes write_now() left, through the stream's own asynchronous
// write and its timeout.
template <typename Stream>
awaitable<error_code> write_rest(Stream& stream, Unsent rest) {
  error_code error;
  co_await asio::async_write(stream, rest, asio::redirect_error(asio::use_awaitable, error));
  co_return error;
}

// Ends a relayed body at max_stream_duration: the timer cancels the upstream
// connection's pending read. It may fire after the relay ended, so it
// reaches the connection only through this shared state.
struct StreamDeadline {
  UpstreamConnection* connection = nullptr;  // null once the relay ended
  bool reached = false;
};

// Bytes to read next into `buffer`: its free space, at least 4 KiB and at
// most 64 KiB.
std::size_t read_size(const beast::flat_buffer& buffer) {
  std::size_t free = buffer.capacity() - buffer.size();
  return std::clamp<std::size_t>(free, 4096, 64 * 1024);
}

// Returns the error for a connection that ended before `parser` had its
// message: end_of_stream before the first byte, partial_message after it.
template <typename Parser>
error_code end_of_input(const Parser& parser) {
  return parser.got_some() ? error_code(http::error::partial_message)
                           : error_code(http::error::end_of_stream);
}

// Returns whether the client waits for "100 Continue" before it sends the
// body.
bool expects_continue(const Request& request) {
  auto expect = request[http::field::expect];
  return equals_ignore_case(std::string_view(expect.data(), expect.size()), "100-continue");
}

bool is_loopback_host(const std::string& host) {
  if (host == "localhost") {
    return true;
  }
  error_code error;
  asio::ip::address address = asio::ip::make_address(host, error);
  return !error && address.is_loopback();
}

std::shared_ptr<asio::ssl::context> tls_context_for(ServerContext& server, ListenerRole role) {
  if (role != ListenerRole::client || server.tls == nullptr) {
    return nullptr;
  }
  return server.tls->current();
}

class Session {
 public:
  Session(asio::ip::tcp::socket socket, ServerContext& server, ThreadContext& thread,
          ListenerRole role)
      : client_(std::move(socket), tls_context_for(server, role)), server_(server),
        thread_(thread), settings_(server.config.gateway), role_(role) {
    error_code ignored;
    client_address_ = client_.socket().remote_endpoint(ignored).address().to_string();
    // Writes try the socket at once first; see write_now().
    client_.socket().non_blocking(true, ignored);
    // The listener's configured address decides, not the connection's: a
    // listener on 0.0.0.0 is reachable from other machines even when this
    // client came over loopback, for example through a local proxy.
    std::string host = role == ListenerRole::admin ? settings_.admin_listen.value().host
                                                   : settings_.listen_address;
    listener_is_loopback_ = is_loopback_host(host);
  }

  ~Session() { *alive_ = false; }

  awaitable<void> run();

 private:
  awaitable<bool> handshake();
  awaitable<void> close();
  awaitable<std::optional<Request>> read_request(bool first);
  awaitable<bool> handle(Request& request);
  awaitable<bool> handle_admin(Request& request, RequestRecord& record, std::string_view path,
                               bool keep_alive);
  // Returns the API key of a request to a model endpoint. Returns nullptr
  // when no keys are configured, or after rejecting the request, when it
  // also sets `keep_alive` from the rejection.
  awaitable<const config::ApiKey*> authenticate(const Request& request, RequestRecord& record,
                                                bool& keep_alive);
  // Returns whether the request may use an admin endpoint; rejects it if not.
  awaitable<bool> authorize_admin(const Request& request, RequestRecord& record,
                                  bool& keep_alive);
  // Rejects a request whose key may not use `model`, with 403 or, with
  // auth.forbidden_status 404, as if the model did not exist.
  awaitable<bool> reject_model_denied(RequestRecord& record, const std::string& model,
                                      bool keep_alive);
  awaitable<bool> handle_model_request(Request& request, RequestRecord& record);
  awaitable<routing::InstancePtr> acquire_instance(const config::Deployment& deployment,
                                                   RequestRecord& record, bool& keep_alive);
  awaitable<bool> proxy(Request& request, RequestRecord& record,
                        const config::Deployment& deployment, routing::InstanceHandle& instance);
  awaitable<error_code> read_upstream_head(UpstreamConnection& upstream, UpstreamParser& parser);
  awaitable<bool> relay_response(Request& request, RequestRecord& record,
                                 UpstreamConnectionPtr upstream,
                                 UpstreamParser& parser,
                                 routing::InstanceHandle& instance);

  awaitable<bool> reject(RequestRecord& record, ErrorKind kind, std::string message,
                         bool keep_alive);
  // Writes to a plain TCP client what the kernel takes at once. Returns
  // true when nothing is left for write_rest_to_client().
  bool write_to_client_now(Unsent& rest, error_code& error);
  // Writes what write_to_client_now() left, within client_write_timeout.
  awaitable<error_code> write_rest_to_client(Unsent rest);
  // Writes to the client: at once where the kernel takes the bytes, the
  // rest within client_write_timeout.
  awaitable<error_code> write_to_client(Unsent rest);
  // Ends a relayed response whose write to the client failed or timed out.
  // Returns false: the connection closes.
  bool client_write_failed(RequestRecord& record, const error_code& error);
  awaitable<bool> send_json(RequestRecord& record, int status, std::string body, bool keep_alive);
  awaitable<bool> send_body(RequestRecord& record, int status, std::string_view content_type,
                            std::string body, bool keep_alive);
  void finish(RequestRecord& record);

  void begin_request_memory();
  void end_request_memory();

  void watch_client(std::function<void()> on_gone);
  void arm_watch();
  void stop_watch();

  // The model list, or the model `only`; with a key, only the models the
  // key may use.
  std::string models_body(const std::string* only, const config::ApiKey* key) const;
  std::string instances_body() const;

  ClientStream client_;
  beast::flat_buffer buffer_;
  ServerContext& server_;
  ThreadContext& thread_;
  const config::GatewaySettings& settings_;
  ListenerRole role_;
  std::string client_address_;
  bool listener_is_loopback_ = false;
  // The head being sent, to the backend or to the client; kept for its
  // capacity.
  std::string head_;
  // Memory of the current request's parsed heads and body (HeadAllocator):
  // a block of the thread's head_blocks, then the heap for what does not
  // fit. It exists from the request's first byte to its end.
  std::unique_ptr<char[]> arena_block_;
  std::optional<std::pmr::monotonic_buffer_resource> arena_;

  // Disconnect watch while a request is held or waits for its backend.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool watching_ = false;
  bool client_gone_ = false;
  std::function<void()> on_client_gone_;
  // Set by proxy() when it could not connect to another gateway's instance
  // and sent nothing, so that the request can go to another instance.
  bool retry_elsewhere_ = false;
};

awaitable<void> Session::run() {
  server_.metrics.client_connection_opened();
  bool handshake_done = co_await handshake();
  bool first = true;
  while (handshake_done) {
    std::optional<Request> request = co_await read_request(first);
    first = false;
    bool keep_alive = false;
    if (request) {
      keep_alive = co_await handle(*request);
    }
    request.reset();
    end_request_memory();
    if (!keep_alive) {
      break;
    }
  }

  co_await close();
  server_.metrics.client_connection_closed();
}

awaitable<bool> Session::handshake() {
  if (!client_.is_tls()) {
    co_return true;
  }
  error_code error;
  client_.expires_after(settings_.header_timeout);
  co_await client_.tls().async_handshake(asio::ssl::stream_base::server,
                                         asio::redirect_error(asio::use_awaitable, error));
  client_.expires_never();
  if (error) {
    server_.metrics.record_tls_handshake_failure();
    log()->debug("TLS handshake with {} failed: {}", client_address_, error.message());
    co_return false;
  }
  co_return true;
}

awaitable<void> Session::close() {
  error_code ignored;
  if (client_.is_tls() && client_.socket().is_open()) {
    // Send close_notify; the client's reply is awaited only briefly.
    client_.expires_after(kTlsShutdownTimeout);
    co_await client_.tls().async_shutdown(asio::redirect_error(asio::use_awaitable, ignored));
  }
  client_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  client_.close();
}

awaitable<std::optional<Request>> Session::read_request(bool first) {
  error_code error;

  // Between requests a connection may idle for keep_alive_timeout; once
  // bytes arrive, the head must follow within header_timeout.
  if (buffer_.size() == 0) {
    client_.expires_after(first ? settings_.header_timeout : settings_.keep_alive_timeout);
    std::size_t count = co_await client_.async_read_some(
        buffer_.prepare(4096), asio::redirect_error(asio::use_awaitable, error));
    buffer_.commit(count);
    if (error == beast::error::timeout) {
      server_.metrics.record_limit_hit(first ? Limit::header_timeout : Limit::keep_alive_timeout);
    }
    if (error) {
      co_return std::nullopt;  // closed, reset or idle, so no response is due
    }
  }

  begin_request_memory();
  HeadAllocator allocator(&*arena_);
  RequestParser parser(std::piecewise_construct, std::make_tuple(allocator),
                       std::make_tuple(allocator));
  parser.header_limit(static_cast<std::uint32_t>(settings_.max_header_bytes));
  parser.body_limit(settings_.max_body_bytes);

  // The parser takes what the buffer holds, and the client is read only
  // when it needs more: a request that arrived whole costs no further
  // asynchronous operation.
  client_.expires_after(settings_.header_timeout);
  bool expect_checked = false;
  while (!parser.is_done()) {
    if (buffer_.size() > 0) {
      std::size_t used = parser.put(buffer_.data(), error);
      buffer_.consume(used);
      if (error == http::error::need_more) {
        error = {};
      } else if (error) {
        break;
      }
      if (parser.is_header_done() && !expect_checked) {
        expect_checked = true;
        if (!parser.is_done() && expects_continue(parser.get())) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          co_await asio::async_write(client_, asio::buffer(kContinue),
                                     asio::redirect_error(asio::use_awaitable, error));
          if (error) {
            break;
          }
        }
      }
      if (parser.is_done()) {
        break;
      }
      if (used > 0 && buffer_.size() > 0) {
        continue;
      }
    }
    std::size_t count = co_await client_.async_read_some(
        buffer_.prepare(read_size(buffer_)), asio::redirect_error(asio::use_awaitable, error));
    buffer_.commit(count);
    if (error == asio::error::eof) {
      // Before the first byte, the client closed between requests.
      error = end_of_input(parser);
    }
    if (error) {
      break;
    }
  }
  client_.expires_never();

  if (!error) {
    co_return parser.release();
  }

  // Send an error where the failure allows one, then close, because the
  // stream is out of step.
  RequestRecord record;
  record.id = thread_.next_request_id();
  if (error == http::error::body_limit) {
    server_.metrics.record_limit_hit(Limit::max_body_size);
    co_await reject(record, ErrorKind::body_too_large,
                    "request body exceeds the limit of " + std::to_string(settings_.max_body_bytes) +
                        " bytes",
                    false);
  } else if (error == http::error::header_limit) {
    server_.metrics.record_limit_hit(Limit::max_header_size);
    co_await reject(record, ErrorKind::header_too_large,
                    "request headers exceed the limit of " +
                        std::to_string(settings_.max_header_bytes) + " bytes",
                    false);
  } else if (error == beast::error::timeout) {
    // Beast's stream closes the socket when its timer expires, so no 408
    // can be sent: the request is logged and counted as dropped.
    log()->debug("request {} from {} did not arrive within the header timeout", record.id,
                 client_address_);
    record.dropped = "header_timeout";
    server_.metrics.record_limit_hit(Limit::header_timeout);
    finish(record);
  } else if (error.category() == make_error_code(http::error::bad_method).category() &&
             error != http::error::end_of_stream && error != http::error::partial_message) {
    co_await reject(record, ErrorKind::bad_http, "malformed HTTP request: " + error.message(),
                    false);
  }
  // Any other error is a closed or reset connection, with no client left.
  co_return std::nullopt;
}

awaitable<bool> Session::handle(Request& request) {
  RequestRecord record;
  record.id = thread_.next_request_id();
  bool keep_alive = request.keep_alive() && !server_.shutting_down.load();

  std::string_view target(request.target().data(), request.target().size());
  std::string_view path = target.substr(0, target.find('?'));
  http::verb method = request.method();

  // The admin listener serves the operator's endpoints only.
  bool admin_here = role_ == ListenerRole::admin || !settings_.admin_listen;
  bool admin_path = path == "/metrics" || path == "/admin" || path.starts_with("/admin/");
  if (admin_path && admin_here) {
    co_return co_await handle_admin(request, record, path, keep_alive);
  }
  if (path == "/health" && method == http::verb::get) {
    record.endpoint = "health";
    co_return co_await send_json(record, 200, R"({"status":"ok"})", keep_alive);
  }
  if (role_ == ListenerRole::admin) {
    co_return co_await reject(record, ErrorKind::unknown_endpoint,
                              "unknown endpoint " + std::string(method_string(method)) + " " +
                                  std::string(path) +
                                  "; the admin listener serves /admin/instances, /metrics and "
                                  "/health",
                              keep_alive);
  }

  // OpenAI endpoints routed by the body's model.
  std::string_view endpoint = model_endpoint_label(path);
  if (!endpoint.empty()) {
    record.endpoint = endpoint;
    if (method != http::verb::post) {
      co_return co_await reject(record, ErrorKind::method_not_allowed,
                                std::string(path) + " accepts POST only", keep_alive);
    }
    co_return co_await handle_model_request(request, record);
  }

  // The model list, with only the models the key may use.
  if (path == "/v1/models" || path.starts_with("/v1/models/")) {
    record.endpoint = "models";
    if (method != http::verb::get) {
      co_return co_await reject(record, ErrorKind::method_not_allowed,
                                "/v1/models accepts GET only", keep_alive);
    }
    const config::ApiKey* key = nullptr;
    if (!server_.api_keys.empty()) {
      key = co_await authenticate(request, record, keep_alive);
      if (key == nullptr) {
        co_return keep_alive;
      }
    }
    if (path == "/v1/models") {
      co_return co_await send_json(record, 200, models_body(nullptr, key), keep_alive);
    }
    std::string name = percent_decode(path.substr(std::string_view("/v1/models/").size()));
    if (server_.config.find_deployment(name) == nullptr) {
      co_return co_await reject(record, ErrorKind::model_not_found,
                                "The model '" + name + "' does not exist", keep_alive);
    }
    if (key != nullptr && !key_allows(*key, name)) {
      co_return co_await reject_model_denied(record, name, keep_alive);
    }
    co_return co_await send_json(record, 200, models_body(&name, key), keep_alive);
  }

  co_return co_await reject(record, ErrorKind::unknown_endpoint,
                            "unknown endpoint " + std::string(method_string(method)) + " " +
                                std::string(path),
                            keep_alive);
}

awaitable<bool> Session::handle_admin(Request& request, RequestRecord& record,
                                      std::string_view path, bool keep_alive) {
  http::verb method = request.method();
  record.endpoint = path == "/metrics" ? "metrics" : "admin";
  if (method != http::verb::get) {
    co_return co_await reject(record, ErrorKind::method_not_allowed,
                              std::string(path) + " accepts GET only", keep_alive);
  }

  // /metrics on the client listener is open unless protect_metrics is set.
  bool open_metrics = path == "/metrics" && role_ == ListenerRole::client &&
                      !server_.config.auth.protect_metrics;
  if (!open_metrics) {
    bool allowed = co_await authorize_admin(request, record, keep_alive);
    if (!allowed) {
      co_return keep_alive;
    }
  }

  if (path == "/admin/instances") {
    co_return co_await send_json(record, 200, instances_body(), keep_alive);
  }
  if (path != "/metrics") {
    co_return co_await reject(record, ErrorKind::unknown_endpoint,
                              "unknown endpoint GET " + std::string(path) +
                                  "; the admin endpoints are /admin/instances and /metrics",
                              keep_alive);
  }

  co_return co_await send_body(record, 200, "text/plain; version=0.0.4; charset=utf-8",
                               server_.metrics.serialize(), keep_alive);
}

// Returns the key a request presents in `Authorization: Bearer KEY` or, when
// that is absent, in `x-api-key`.
std::string_view presented_key(const Request& request) {
  auto authorization = request[http::field::authorization];
  if (!authorization.empty()) {
    return bearer_token(std::string_view(authorization.data(), authorization.size()));
  }
  auto api_key = request["x-api-key"];
  return std::string_view(api_key.data(), api_key.size());
}

awaitable<const config::ApiKey*> Session::authenticate(const Request& request,
                                                       RequestRecord& record,
                                                       bool& keep_alive) {
  if (server_.api_keys.empty()) {
    co_return nullptr;
  }
  std::string_view presented = presented_key(request);
  const config::ApiKey* key = server_.api_keys.find(presented);
  if (key != nullptr) {
    record.key_name = key->name;
    co_return key;
  }

  bool missing = presented.empty();
  server_.metrics.record_auth_failure(missing ? AuthFailure::missing_key
                                              : AuthFailure::invalid_key);
  std::string message = missing ? "You didn't provide an API key. Send it as "
                                  "'Authorization: Bearer KEY' or 'x-api-key: KEY'"
                                : "Incorrect API key provided";
  keep_alive = co_await reject(record, ErrorKind::unauthorized, std::move(message), keep_alive);
  co_return nullptr;
}

awaitable<bool> Session::authorize_admin(const Request& request, RequestRecord& record,
                                         bool& keep_alive) {
  // Without admin keys, only a listener on loopback serves admin endpoints.
  if (server_.admin_keys.empty()) {
    if (listener_is_loopback_) {
      co_return true;
    }
    server_.metrics.record_auth_failure(AuthFailure::admin_denied);
    keep_alive = co_await reject(record, ErrorKind::admin_forbidden,
                                 "admin endpoints on a listener that other machines can reach "
                                 "need an admin key; the operator sets auth.admin_keys or "
                                 "gateway.admin_listen",
                                 keep_alive);
    co_return false;
  }

  const config::ApiKey* key = server_.admin_keys.find(presented_key(request));
  if (key != nullptr) {
    record.key_name = key->name;
    co_return true;
  }
  server_.metrics.record_auth_failure(AuthFailure::admin_denied);
  keep_alive = co_await reject(record, ErrorKind::unauthorized,
                               "this endpoint needs an admin key as 'Authorization: Bearer KEY'",
                               keep_alive);
  co_return false;
}

awaitable<bool> Session::reject_model_denied(RequestRecord& record, const std::string& model,
                                             bool keep_alive) {
  server_.metrics.record_auth_failure(AuthFailure::model_denied);
  if (server_.config.auth.forbidden_status == 404) {
    co_return co_await reject(record, ErrorKind::model_not_found,
                              "The model '" + model + "' does not exist", keep_alive);
  }
  co_return co_await reject(record, ErrorKind::model_forbidden,
                            "this API key may not use the model '" + model + "'", keep_alive);
}

awaitable<bool> Session::handle_model_request(Request& request, RequestRecord& record) {
  bool keep_alive = request.keep_alive() && !server_.shutting_down.load();

  // The key comes first, so that a client without one learns nothing else.
  // Without configured keys no coroutine is started for it.
  const config::ApiKey* key = nullptr;
  if (!server_.api_keys.empty()) {
    key = co_await authenticate(request, record, keep_alive);
    if (key == nullptr) {
      co_return keep_alive;
    }
  }

  // Route by the body's "model".
  routing::ModelRequest parsed = routing::parse_model_request(request.body());
  record.stream = parsed.stream;
  if (parsed.error != routing::ModelRequestError::none) {
    auto [kind, message] = describe_model_error(parsed);
    co_return co_await reject(record, kind, std::move(message), keep_alive);
  }

  const config::Deployment* deployment = server_.config.find_deployment(parsed.model);
  if (deployment == nullptr) {
    co_return co_await reject(record, ErrorKind::model_not_found,
                              "The model '" + parsed.model + "' does not exist", keep_alive);
  }
  if (key != nullptr && !key_allows(*key, deployment->name)) {
    co_return co_await reject_model_denied(record, deployment->name, keep_alive);
  }
  record.deployment = deployment->name;

  // A RUNNING instance serves at once; otherwise the request is held.
  routing::InstancePtr instance = server_.routes.snapshot()->pick(deployment->name);
  if (!instance || !instance->try_acquire()) {
    instance = co_await acquire_instance(*deployment, record, keep_alive);
    if (!instance) {
      co_return keep_alive;
    }
  }
  record.instance = instance->id();

  bool result = co_await proxy(request, record, *deployment, *instance);
  instance->release();

  // The instance of a gateway that died: once more, on another instance or
  // a new one. The flag stays set meanwhile, so that a second refusal gets
  // an error response instead of another retry.
  if (retry_elsewhere_) {
    instance = server_.routes.snapshot()->pick(deployment->name);
    if (!instance || !instance->try_acquire()) {
      instance = co_await acquire_instance(*deployment, record, keep_alive);
      if (!instance) {
        retry_elsewhere_ = false;
        co_return keep_alive;
      }
    }
    record.instance = instance->id();
    result = co_await proxy(request, record, *deployment, *instance);
    instance->release();
    retry_elsewhere_ = false;
  }
  co_return result && keep_alive;
}

awaitable<routing::InstancePtr> Session::acquire_instance(const config::Deployment& deployment,
                                                          RequestRecord& record,
                                                          bool& keep_alive) {
  Clock::time_point held_since = Clock::now();
  Clock::time_point deadline = held_since + settings_.hold_timeout;
  auto executor = co_await asio::this_coro::executor;

  for (int attempt = 0; attempt < kMaxAcquireAttempts; ++attempt) {
    // Requests held on all I/O threads count against max_held_requests
    // together.
    if (server_.held_requests.fetch_add(1) >= settings_.max_held_requests) {
      server_.held_requests.fetch_sub(1);
      server_.metrics.record_limit_hit(Limit::max_held_requests);
      keep_alive = co_await reject(record, ErrorKind::queue_full,
                                   std::to_string(settings_.max_held_requests) +
                                       " requests are already waiting for models to start",
                                   keep_alive);
      co_return nullptr;
    }

    auto held = std::make_shared<launcher::HeldRequest>(executor, deadline, record.id);
    watch_client([held] {
      held->complete({launcher::AcquireStatus::client_gone, nullptr, "the client disconnected"});
    });
    launcher::AcquireResult result = co_await server_.launcher.acquire(deployment, held);
    stop_watch();
    server_.held_requests.fetch_sub(1);
    record.held = true;
    record.held_ms = milliseconds_since(held_since);

    using launcher::AcquireStatus;
    switch (result.status) {
      case AcquireStatus::ready:
        if (result.instance->try_acquire()) {
          co_return result.instance;
        }
        continue;  // it began to stop in between; ask again
      case AcquireStatus::client_gone:
        record.dropped = "client_gone_while_held";
        finish(record);
        keep_alive = false;
        co_return nullptr;
      case AcquireStatus::start_failed:
        keep_alive = co_await reject(record, ErrorKind::backend_start_failed, result.reason,
                                     keep_alive);
        co_return nullptr;
      case AcquireStatus::start_timed_out:
        keep_alive = co_await reject(record, ErrorKind::backend_start_timeout, result.reason,
                                     keep_alive);
        co_return nullptr;
      case AcquireStatus::hold_timed_out:
        server_.metrics.record_limit_hit(Limit::hold_timeout);
        keep_alive = co_await reject(
            record, ErrorKind::hold_timeout,
            "timed out after " + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                                    settings_.hold_timeout)
                                                    .count()) +
                " s waiting for model '" + deployment.name + "' to become ready",
            keep_alive);
        co_return nullptr;
      case AcquireStatus::queue_full:
        server_.metrics.record_limit_hit(Limit::max_held_requests_per_deployment);
        keep_alive = co_await reject(record, ErrorKind::queue_full, result.reason, keep_alive);
        co_return nullptr;
      case AcquireStatus::shutting_down:
        keep_alive = co_await reject(record, ErrorKind::shutting_down, result.reason, false);
        co_return nullptr;
    }
  }

  keep_alive = co_await reject(record, ErrorKind::backend_error,
                               "model '" + deployment.name +
                                   "' kept stopping while this request waited; retry",
                               keep_alive);
  co_return nullptr;
}

awaitable<bool> Session::proxy(Request& request, RequestRecord& record,
                               const config::Deployment& deployment,
                               routing::InstanceHandle& instance) {
  bool keep_alive = request.keep_alive() && !server_.shutting_down.load();
  // The head stays in head_ for a second attempt; relay_response() then
  // replaces it with the response head.
  head_.clear();
  append_upstream_head(head_, request, instance.host(), instance.port(), record.id,
                       client_address_, deployment.upstream_api_key);
  std::string_view backend = instance.id();

  // The backend may close a reused keep-alive connection just as the request
  // goes out. Such a failure gets one more try on a new connection.
  for (int attempt = 0; attempt < 2; ++attempt) {
    // At max_upstream_connections the request waits for a connection, as
    // long as it could have been held.
    error_code error;
    bool waited = false;
    UpstreamConnectionPtr upstream = thread_.upstream_pool.reuse(instance.host(), instance.port());
    if (!upstream) {
      upstream = co_await thread_.upstream_pool.connect(
          instance.host(), instance.port(), record.received + settings_.hold_timeout, waited,
          error);
    }
    if (waited) {
      server_.metrics.record_limit_hit(Limit::max_upstream_connections);
    }
    if (!upstream && waited && error == asio::error::timed_out) {
      co_return co_await reject(record, ErrorKind::hold_timeout,
                                "timed out waiting for one of the " +
                                    std::to_string(settings_.max_upstream_connections) +
                                    " connections to instance " + std::string(backend) +
                                    " of model '" + record.deployment + "' to become free",
                                keep_alive);
    }
    if (!upstream) {
      server_.metrics.record_upstream_error(record.deployment, UpstreamErrorKind::connect);
      if (!retry_elsewhere_ && server_.routes.report_unreachable(instance)) {
        retry_elsewhere_ = true;
        co_return true;
      }
      co_return co_await reject(record, ErrorKind::backend_error,
                                "cannot connect to instance " + std::string(backend) + " of model '" +
                                    record.deployment + "': " + error.message(),
                                keep_alive);
    }

    if (settings_.upstream_response_timeout > Duration::zero()) {
      upstream->stream.expires_after(settings_.upstream_response_timeout);
    }
    std::array<asio::const_buffer, 2> buffers{asio::buffer(head_),
                                              asio::buffer(request.body())};
    Unsent unsent{BufferSpan(buffers)};
    if (!write_now(upstream->stream.socket(), unsent, error)) {
      error = co_await write_rest(upstream->stream, unsent);
    }
    if (error && upstream->reused && attempt == 0) {
      continue;
    }
    if (error) {
      server_.metrics.record_upstream_error(
          record.deployment,
          error == beast::error::timeout ? UpstreamErrorKind::timeout : UpstreamErrorKind::reset);
      co_return co_await reject(record, ErrorKind::backend_error,
                                "sending the request to instance " + std::string(backend) +
                                    " failed: " + error.message(),
                                keep_alive);
    }

    // Wait for the response head; a client that leaves cancels the request.
    UpstreamParser parser(std::piecewise_construct, std::make_tuple(),
                          std::make_tuple(HeadAllocator(&*arena_)));
    parser.header_limit(kUpstreamHeaderLimit);
    // Beast 1.74 compares the length against an empty optional as if it
    // were a limit of zero, so "no limit" is the largest value instead.
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    UpstreamConnection* watched = upstream.get();
    watch_client([watched] { watched->stream.cancel(); });
    error = co_await read_upstream_head(*upstream, parser);
    stop_watch();

    if (client_gone_) {
      record.dropped = "client_gone_while_waiting";
      finish(record);
      co_return false;
    }
    if (error && upstream->reused && attempt == 0 && !parser.got_some()) {
      continue;
    }
    if (error == beast::error::timeout) {
      server_.metrics.record_upstream_error(record.deployment, UpstreamErrorKind::timeout);
      server_.metrics.record_limit_hit(Limit::upstream_response_timeout);
      co_return co_await reject(record, ErrorKind::backend_timeout,
                                "instance " + std::string(backend) + " of model '" +
                                    record.deployment +
                                    "' did not respond within upstream_response_timeout",
                                keep_alive);
    }
    if (error) {
      server_.metrics.record_upstream_error(record.deployment, UpstreamErrorKind::reset);
      co_return co_await reject(record, ErrorKind::backend_error,
                                "instance " + std::string(backend) + " of model '" +
                                    record.deployment + "' closed the connection before responding: " +
                                    error.message(),
                                keep_alive);
    }
    co_return co_await relay_response(request, record, std::move(upstream), parser, instance);
  }
  co_return false;  // not reached: the second attempt always returns
}

awaitable<error_code> Session::read_upstream_head(UpstreamConnection& upstream,
                                                  UpstreamParser& parser) {
  // As for requests: parse what is buffered, read only when more is needed.
  error_code error;
  while (!parser.is_header_done()) {
    if (upstream.buffer.size() > 0) {
      std::size_t used = parser.put(upstream.buffer.data(), error);
      upstream.buffer.consume(used);
      if (error != http::error::need_more) {
        co_return error;
      }
      error = {};
      if (parser.is_header_done()) {
        break;
      }
    }
    asio::mutable_buffer target = upstream.buffer.prepare(read_size(upstream.buffer));
    std::size_t count = 0;
    if (settings_.upstream_response_timeout > Duration::zero()) {
      count = co_await upstream.stream.async_read_some(
          target, asio::redirect_error(asio::use_awaitable, error));
    } else {
      // Without a timeout the socket is read directly: one recv() without
      // the stream's timer bookkeeping.
      count = co_await upstream.stream.socket().async_read_some(
          target, asio::redirect_error(asio::use_awaitable, error));
    }
    upstream.buffer.commit(count);
    if (error == asio::error::eof) {
      co_return end_of_input(parser);
    }
    if (error) {
      co_return error;
    }
  }
  co_return error;
}

awaitable<bool> Session::relay_response(Request& request, RequestRecord& record,
                                        UpstreamConnectionPtr upstream,
                                        UpstreamParser& parser,
                                        routing::InstanceHandle& instance) {
  upstream->stream.expires_never();
  auto& response = parser.get();
  bool keep_alive = request.keep_alive() && !server_.shutting_down.load();

  // Framing towards the client: the upstream's length when it sent one,
  // else chunked for HTTP/1.1 clients and end-of-connection for HTTP/1.0.
  bool has_body = !parser.is_done();
  bool length_known = parser.content_length().has_value();
  bool chunked = has_body && !length_known && request.version() >= 11;
  if (has_body && !length_known && request.version() < 11) {
    keep_alive = false;
  }
  record.status = response.result_int();
  if (record.status >= 500) {
    server_.metrics.record_upstream_error(record.deployment, UpstreamErrorKind::backend_5xx);
  }
  auto content_type = response[http::field::content_type];
  record.stream = record.stream ||
                  is_event_stream(std::string_view(content_type.data(), content_type.size()));

  head_.clear();
  append_response_head(head_, response, record.id, record.stream, chunked, keep_alive);

  // A body still to come from the backend must end by max_stream_duration
  // after the request arrived. A body that came with the head needs no timer.
  bool body_buffered = length_known && upstream->buffer.size() >= *parser.content_length();
  std::shared_ptr<StreamDeadline> deadline;
  std::optional<asio::steady_timer> deadline_timer;
  if (has_body && !body_buffered && settings_.max_stream_duration > Duration::zero()) {
    deadline = std::make_shared<StreamDeadline>();
    deadline->connection = upstream.get();
    deadline_timer.emplace(upstream->stream.get_executor(),
                           record.received + settings_.max_stream_duration);
    deadline_timer->async_wait([deadline](const error_code& wait_error) {
      if (!wait_error && deadline->connection != nullptr) {
        deadline->reached = true;
        deadline->connection->stream.cancel();
      }
    });
  }
  // Whatever way the relay ends, the timer no longer reaches the connection.
  struct DeadlineRelease {
    StreamDeadline* deadline;
    ~DeadlineRelease() {
      if (deadline != nullptr) {
        deadline->connection = nullptr;
      }
    }
  } release_deadline{deadline.get()};

  // Send the head at once unless body bytes are already here to go with it.
  bool head_sent = false;
  error_code error;
  if (!has_body || upstream->buffer.size() == 0) {
    std::array<asio::const_buffer, 1> head{asio::buffer(head_)};
    Unsent unsent{BufferSpan(head)};
    if (!write_to_client_now(unsent, error)) {
      error = co_await write_rest_to_client(unsent);
    }
    head_sent = true;
    record.first_byte_ms = milliseconds_since(record.received);
    if (error) {
      co_return client_write_failed(record, error);
    }
  }

  // Relay the body piece by piece as it arrives; nothing is buffered whole.
  // The buffer is the I/O thread's, taken only while this body is relayed,
  // so that idle keep-alive connections and held requests cost none. It goes
  // back to the pool only when the relay completes. On other exits it is
  // freed, because a coroutine destroyed at shutdown outlives the pool.
  const std::size_t relay_bytes = thread_.relay_buffers.block_bytes();
  std::unique_ptr<char[]> relay_buffer;
  if (has_body) {
    relay_buffer = thread_.relay_buffers.take();
  }
  std::string chunk_prefix;
  bool starved = false;  // the parser needs bytes that are not buffered yet
  while (!parser.is_done()) {
    response.body().data = relay_buffer.get();
    response.body().size = relay_bytes;
    // Bytes that came with the head, or in an earlier read, are parsed
    // before the backend is read again.
    error = {};
    if (upstream->buffer.size() == 0 || starved) {
      // The stream has no timeout here (max_stream_duration cancels the
      // socket's operations), so its socket is read directly.
      std::size_t received = co_await upstream->stream.socket().async_read_some(
          upstream->buffer.prepare(read_size(upstream->buffer)),
          asio::redirect_error(asio::use_awaitable, error));
      upstream->buffer.commit(received);
      if (error == asio::error::eof) {
        // The end of a body without framing, or one cut short.
        error = {};
        parser.put_eof(error);
      }
    }
    if (!error && upstream->buffer.size() > 0) {
      std::size_t used = parser.put(upstream->buffer.data(), error);
      upstream->buffer.consume(used);
      starved = error == http::error::need_more;
      if (starved || error == http::error::need_buffer) {
        error = {};
      }
    }
    std::size_t count = relay_bytes - response.body().size;

    if (deadline && deadline->reached) {
      // max_stream_duration passed. Closing both connections shows the
      // client that the response is incomplete and stops the backend.
      server_.metrics.record_limit_hit(Limit::max_stream_duration);
      log()->info("request {} to instance {} of '{}' ended after max_stream_duration", record.id,
                  instance.id(), printable(record.deployment));
      if (!head_sent) {
        co_return co_await reject(record, ErrorKind::backend_timeout,
                                  "the response did not end within max_stream_duration",
                                  keep_alive);
      }
      record.dropped = "max_stream_duration";
      finish(record);
      co_return false;
    }
    if (error) {
      // The backend broke off mid-response. Without a head sent, the client
      // still gets an error; after it, closing the connection is the signal.
      log()->warn("request {} to instance {} of '{}': upstream failed mid-response: {}", record.id,
                  instance.id(), printable(record.deployment), error.message());
      server_.metrics.record_upstream_error(record.deployment, UpstreamErrorKind::reset);
      if (!head_sent) {
        co_return co_await reject(record, ErrorKind::backend_error,
                                  "instance " + instance.id() + " broke off its response: " +
                                      error.message(),
                                  keep_alive);
      }
      record.dropped = "upstream_failed_mid_body";
      finish(record);
      co_return false;
    }

    if (count == 0) {
      continue;
    }
    std::array<asio::const_buffer, 4> buffers;
    std::size_t used = 0;
    if (!head_sent) {
      buffers[used++] = asio::buffer(head_);
    }
    if (chunked) {
      chunk_prefix = chunk_size_line(count);
      buffers[used++] = asio::buffer(chunk_prefix);
    }
    buffers[used++] = asio::buffer(relay_buffer.get(), count);
    if (chunked) {
      buffers[used++] = asio::buffer(std::string_view("\r\n"));
    }
    Unsent unsent{BufferSpan(buffers.data(), used)};
    if (!write_to_client_now(unsent, error)) {
      error = co_await write_rest_to_client(unsent);
    }
    if (!head_sent) {
      head_sent = true;
      record.first_byte_ms = milliseconds_since(record.received);
    }
    if (error) {
      // The client left or stopped reading: drop the upstream connection,
      // which cancels the backend's work on it.
      co_return client_write_failed(record, error);
    }
    record.bytes_sent += count;
    if (record.stream) {
      server_.metrics.record_stream_chunk(record.deployment);
    }
  }

  if (chunked) {
    std::array<asio::const_buffer, 1> last_chunk{asio::buffer(std::string_view("0\r\n\r\n"))};
    error = co_await write_to_client(Unsent{BufferSpan(last_chunk)});
    if (error) {
      co_return client_write_failed(record, error);
    }
  }

  thread_.relay_buffers.give_back(std::move(relay_buffer));
  if (parser.keep_alive()) {
    upstream->stream.expires_never();
    thread_.upstream_pool.release(instance.host(), instance.port(), std::move(upstream));
  }
  finish(record);
  co_return keep_alive;
}

bool Session::client_write_failed(RequestRecord& record, const error_code& error) {
  if (error == beast::error::timeout) {
    log()->debug("request {} from {}: the client read nothing for client_write_timeout",
                 record.id, client_address_);
    record.dropped = "client_write_timeout";
  } else {
    record.dropped = "client_write_failed";
  }
  finish(record);
  return false;
}

bool Session::write_to_client_now(Unsent& rest, error_code& error) {
  return !client_.is_tls() && write_now(client_.socket(), rest, error);
}

awaitable<error_code> Session::write_to_client(Unsent rest) {
  error_code error;
  if (!write_to_client_now(rest, error)) {
    error = co_await write_rest_to_client(rest);
  }
  co_return error;
}

awaitable<error_code> Session::write_rest_to_client(Unsent rest) {
  client_.expires_after(settings_.client_write_timeout);
  error_code error = co_await write_rest(client_, rest);
  client_.expires_never();
  if (error == beast::error::timeout) {
    server_.metrics.record_limit_hit(Limit::client_write_timeout);
  }
  co_return error;
}

awaitable<bool> Session::reject(RequestRecord& record, ErrorKind kind, std::string message,
                                bool keep_alive) {
  ErrorInfo info = error_info(kind);
  log()->debug("request {} model '{}' rejected with {} {}: {}", record.id,
               printable(record.deployment), info.status, info.code, printable(message, 2000));

  std::string body = error_body(kind, message);
  head_.clear();
  append_status_line(head_, info.status);
  append_header(head_, "Content-Type", "application/json");
  append_header(head_, "Content-Length", std::to_string(body.size()));
  append_header(head_, "X-Request-Id", record.id);
  if (info.retry_after_seconds) {
    append_header(head_, "Retry-After", std::to_string(*info.retry_after_seconds));
  }
  if (info.status == 401) {
    append_header(head_, "WWW-Authenticate", "Bearer realm=\"modelgate\"");
  }
  if (!keep_alive) {
    append_header(head_, "Connection", "close");
  }
  head_ += "\r\n";

  std::array<asio::const_buffer, 2> buffers{asio::buffer(head_), asio::buffer(body)};
  error_code error = co_await write_to_client(Unsent{BufferSpan(buffers)});

  record.status = info.status;
  record.bytes_sent = body.size();
  if (error) {
    record.dropped = "client_write_failed";
  }
  finish(record);
  co_return keep_alive && !error;
}

awaitable<bool> Session::send_json(RequestRecord& record, int status, std::string body,
                                   bool keep_alive) {
  co_return co_await send_body(record, status, "application/json", std::move(body), keep_alive);
}

awaitable<bool> Session::send_body(RequestRecord& record, int status,
                                   std::string_view content_type, std::string body,
                                   bool keep_alive) {
  head_.clear();
  append_status_line(head_, status);
  append_header(head_, "Content-Type", content_type);
  append_header(head_, "Content-Length", std::to_string(body.size()));
  append_header(head_, "X-Request-Id", record.id);
  if (!keep_alive) {
    append_header(head_, "Connection", "close");
  }
  head_ += "\r\n";

  std::array<asio::const_buffer, 2> buffers{asio::buffer(head_), asio::buffer(body)};
  error_code error = co_await write_to_client(Unsent{BufferSpan(buffers)});
  record.status = status;
  record.bytes_sent = body.size();
  if (error) {
    record.dropped = "client_write_failed";
  }
  finish(record);
  co_return keep_alive && !error;
}

void Session::finish(RequestRecord& record) {
  auto duration = Clock::now() - record.received;
  if (record.held) {
    server_.metrics.record_held(record.deployment,
                                std::chrono::duration<double, std::milli>(record.held_ms));
  }
  if (record.dropped.empty()) {
    std::optional<std::chrono::duration<double>> first_byte;
    if (record.first_byte_ms >= 0) {
      first_byte = std::chrono::duration<double, std::milli>(record.first_byte_ms);
    }
    server_.metrics.record_request(record.deployment, record.endpoint, record.status, duration,
                                   first_byte);
  } else {
    server_.metrics.record_dropped(record.deployment, record.dropped);
  }

  auto logger = access_log();
  if (!logger->should_log(spdlog::level::info)) {
    return;
  }
  double duration_ms = std::chrono::duration<double, std::milli>(duration).count();
  if (server_.log_format == LogFormat::json) {
    logger->info(access_log_json(record, duration_ms, std::chrono::system_clock::now()));
  } else {
    logger->info(access_log_text(record, duration_ms));
  }
}

void Session::begin_request_memory() {
  arena_block_ = thread_.head_blocks.take();
  arena_.emplace(arena_block_.get(), thread_.head_blocks.block_bytes(),
                 std::pmr::new_delete_resource());
}

void Session::end_request_memory() {
  arena_.reset();
  thread_.head_blocks.give_back(std::move(arena_block_));
}

void Session::watch_client(std::function<void()> on_gone) {
  watching_ = true;
  client_gone_ = false;
  on_client_gone_ = std::move(on_gone);
  arm_watch();
}

void Session::arm_watch() {
  client_.socket().async_wait(
      asio::ip::tcp::socket::wait_read, [this, alive = alive_](const error_code& error) {
        if (!*alive || error || !watching_) {
          return;
        }
        char byte;
        ssize_t count = ::recv(client_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
          arm_watch();
          return;
        }
        if (count > 0) {
          // A pipelined request: the connection is alive, and its bytes stay
          // in the socket for the next read.
          watching_ = false;
          return;
        }
        watching_ = false;
        client_gone_ = true;
        on_client_gone_();
      });
}

void Session::stop_watch() {
  if (!watching_) {
    return;
  }
  watching_ = false;
  error_code ignored;
  client_.socket().cancel(ignored);
}

std::string Session::models_body(const std::string* only, const config::ApiKey* key) const {
  auto created = std::chrono::duration_cast<std::chrono::seconds>(
                     server_.started_at.time_since_epoch())
                     .count();
  nlohmann::json data = nlohmann::json::array();
  for (const launcher::DeploymentStatus& status : server_.launcher.deployments()) {
    if (only != nullptr && status.name != *only) {
      continue;
    }
    if (key != nullptr && !key_allows(*key, status.name)) {
      continue;
    }
    nlohmann::json model = {{"id", status.name},
                            {"object", "model"},
                            {"created", created},
                            {"owned_by", "modelgate"},
                            {"state", status.state}};
    if (only != nullptr) {
      return model.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
    data.push_back(std::move(model));
  }
  nlohmann::json body = {{"object", "list"}, {"data", std::move(data)}};
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string Session::instances_body() const {
  nlohmann::ordered_json body = nlohmann::ordered_json::array();
  for (const launcher::InstanceStatus& status : server_.launcher.instances()) {
    nlohmann::ordered_json instance = {
        {"id", status.id},
        {"deployment", status.deployment},
        {"state", routing::to_string(status.state)},
        {"endpoint", status.endpoint},
        {"runtime_id", status.runtime_id},
        {"uptime_seconds", std::round(status.uptime_seconds * 1000) / 1000},
        {"in_flight", status.in_flight},
        {"error", nullptr},
        {"last_log_lines", status.last_log_lines},
    };
    if (!status.error.empty()) {
      instance["error"] = status.error;
    }
    body.push_back(std::move(instance));
  }
  return body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace

std::unique_ptr<char[]> BlockPool::take() {
  if (kept_.empty()) {
    return std::make_unique_for_overwrite<char[]>(block_bytes_);
  }
  std::unique_ptr<char[]> block = std::move(kept_.back());
  kept_.pop_back();
  return block;
}

void BlockPool::give_back(std::unique_ptr<char[]> block) {
  if (block && kept_.size() < max_kept_) {
    kept_.push_back(std::move(block));
  }
}

std::string ThreadContext::next_request_id() {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = request_id_prefix;
  std::uint64_t value = ++request_counter;
  char digits[16];
  for (int index = 15; index >= 0; --index) {
    digits[index] = kHex[value & 0xf];
    value >>= 4;
  }
  id.append(digits, 16);
  return id;
}

awaitable<void> serve_connection(asio::ip::tcp::socket socket, ServerContext& server,
                                 ThreadContext& thread, ListenerRole role,
                                 [[maybe_unused]] ConnectionLimit::Slot slot) {
  // `slot` counts the connection until this coroutine ends.
  error_code ignored;
  socket.set_option(asio::ip::tcp::no_delay(true), ignored);
  Session session(std::move(socket), server, thread, role);
  co_await session.run();
}

}  // namespace modelgate::gateway
