#include "bench/stub_session.hpp"

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <exception>
#include <iterator>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "bench/stub_server.hpp"

namespace modelgate::stub {
namespace {

constexpr std::uint32_t kMaxHeaderBytes = 16 * 1024;
constexpr std::uint64_t kMaxBodyBytes = 16 * 1024 * 1024;

auto use_awaitable_with(error_code& ec) {
  return asio::redirect_error(asio::use_awaitable, ec);
}

std::string_view to_std(beast::string_view text) {
  return {text.data(), text.size()};
}

bool is_http_error(const error_code& ec) {
  return ec.category() ==
         http::make_error_code(http::error::bad_target).category();
}

}  // namespace

Session::Session(tcp::socket socket, Server& server)
    : socket_(std::move(socket)),
      server_(server),
      timer_(socket_.get_executor()),
      idle_timer_(socket_.get_executor()) {}

asio::awaitable<void> Session::run() {
  try {
    for (;;) {
      const ReadResult result = co_await read_request();
      if (result == ReadResult::closed) {
        break;
      }

      // A request that could not be read has its error reply ready, and the
      // connection closes after it because the rest of the request is unread.
      if (result == ReadResult::rejected) {
        co_await write_reply();
        break;
      }

      handle_request();
      // Each co_await is a statement of its own: g++ 12 mishandles
      // co_await inside a conditional expression.
      bool keep_open = false;
      if (stream_) {
        keep_open = co_await stream();
      } else {
        keep_open = co_await write_reply();
      }
      if (!keep_open) {
        break;
      }
    }
  } catch (const std::exception& exception) {
    server_.logger().error("connection failed: {}", exception.what());
  }

  close();
}

asio::awaitable<Session::ReadResult> Session::read_request() {
  // Reset the request and response of the previous exchange. The status
  // stays 200 unless reject() sets another.
  request_.clear();
  parser_.emplace(request_);
  parser_->header_limit(kMaxHeaderBytes);
  parser_->body_limit(kMaxBodyBytes);
  status_ = 200;
  close_after_reply_ = false;
  extra_headers_.clear();
  body_.clear();
  stream_.reset();

  // With --keep-alive-timeout, a connection that stays idle is closed, as
  // uvicorn (which serves vLLM) does after 5 s.
  const std::chrono::milliseconds idle_limit = server_.options().keep_alive_timeout;
  if (idle_limit.count() > 0 && buffer_.size() == 0) {
    idle_timer_.expires_after(idle_limit);
    idle_timer_.async_wait([this](const error_code& wait_error) {
      if (!wait_error) {
        server_.stats().idle_closes.fetch_add(1, std::memory_order_relaxed);
        error_code ignored;
        socket_.close(ignored);
      }
    });
  }

  // Read the header, send "100 Continue" when the request expects it, then
  // read the body.
  error_code ec;
  co_await http::async_read_header(socket_, buffer_, *parser_,
                                   use_awaitable_with(ec));
  idle_timer_.cancel();
  if (!ec && !parser_->is_done()) {
    if (request_.expect_continue && request_.version >= 11) {
      static constexpr std::string_view kContinue =
          "HTTP/1.1 100 Continue\r\n\r\n";
      co_await asio::async_write(socket_, asio::buffer(kContinue),
                                 use_awaitable_with(ec));
      if (ec) {
        co_return ReadResult::closed;
      }
    }
    co_await http::async_read(socket_, buffer_, *parser_,
                              use_awaitable_with(ec));
  }

  if (!ec) {
    co_return ReadResult::request;
  }

  // The client closed the connection between requests, or in the middle of
  // one, or the socket failed.
  if (!is_http_error(ec) || ec == http::error::end_of_stream ||
      ec == http::error::partial_message) {
    co_return ReadResult::closed;
  }

  close_after_reply_ = true;
  if (ec == http::error::body_limit) {
    reject(413,
           fmt::format("The request body exceeds the limit of {} bytes.",
                       kMaxBodyBytes),
           "invalid_request_error", "request_too_large");
  } else if (ec == http::error::header_limit) {
    reject(431,
           fmt::format("The request header exceeds the limit of {} bytes.",
                       kMaxHeaderBytes));
  } else {
    reject(400, fmt::format("Malformed HTTP request: {}.", ec.message()));
  }
  co_return ReadResult::rejected;
}

void Session::handle_request() {
  const std::string_view path = request_.path();

  // The counters are readable while the model loads, and reading them does
  // not count as a request.
  if (path == "/stub/stats") {
    handle_stats();
    return;
  }

  server_.stats().requests.fetch_add(1, std::memory_order_relaxed);

  if (server_.loading()) {
    fmt::format_to(std::back_inserter(extra_headers_), "Retry-After: {}\r\n",
                   server_.seconds_until_loaded());
    reject(503,
           fmt::format("Model {} is loading. Retry later.",
                       server_.options().model),
           "unavailable_error", "model_loading");
    return;
  }

  const std::string& api_key = server_.options().api_key;
  if (!api_key.empty() && path != "/health" &&
      request_.authorization != "Bearer " + api_key) {
    reject(401, "Incorrect API key provided.", "invalid_request_error",
           "invalid_api_key");
    return;
  }

  if (path == "/v1/chat/completions") {
    handle_chat_completion();
  } else if (path == "/v1/completions") {
    handle_completion();
  } else if (path == "/v1/embeddings") {
    handle_embeddings();
  } else if (path == "/v1/models" || path.starts_with("/v1/models/")) {
    handle_models();
  } else if (path == "/health") {
    if (check_method(http::verb::get)) {
      body_ = R"({"status":"ok"})";
    }
  } else {
    reject(404,
           fmt::format("Unknown request URL: {} {}.", request_.method_name,
                       path),
           "invalid_request_error", "unknown_url");
  }
}

void Session::handle_chat_completion() {
  if (!check_method(http::verb::post) || !read_json_body()) {
    return;
  }
  if (!fields_.has_messages) {
    reject(400, "Missing required parameter: messages.",
           "invalid_request_error", "missing_required_parameter");
    return;
  }

  const int tokens = fields_.max_tokens
                         ? static_cast<int>(*fields_.max_tokens)
                         : server_.options().tokens;
  const Usage usage{fields_.prompt_words, static_cast<std::size_t>(tokens)};
  if (fields_.stream) {
    stream_ = StreamPlan{StreamKind::chat, tokens, fields_.include_usage, usage};
    return;
  }

  append_chat_completion(body_, start_completion("chatcmpl-"), tokens, usage);
}

void Session::handle_completion() {
  if (!check_method(http::verb::post) || !read_json_body()) {
    return;
  }

  const int tokens = fields_.max_tokens
                         ? static_cast<int>(*fields_.max_tokens)
                         : server_.options().tokens;
  const Usage usage{fields_.prompt_words, static_cast<std::size_t>(tokens)};
  if (fields_.stream) {
    stream_ = StreamPlan{StreamKind::text, tokens, fields_.include_usage, usage};
    return;
  }

  append_text_completion(body_, start_completion("cmpl-"), tokens, usage);
}

void Session::handle_embeddings() {
  if (!check_method(http::verb::post) || !read_json_body()) {
    return;
  }
  if (!fields_.has_input) {
    reject(400, "Missing required parameter: input.", "invalid_request_error",
           "missing_required_parameter");
    return;
  }

  const int dimensions = fields_.dimensions
                             ? static_cast<int>(*fields_.dimensions)
                             : server_.options().dimensions;
  append_embedding_list(body_, server_.model_json(), fields_.input_hashes,
                        dimensions, fields_.base64, fields_.prompt_words);
}

void Session::handle_models() {
  if (!check_method(http::verb::get)) {
    return;
  }

  const std::string_view path = request_.path();
  constexpr std::string_view kPrefix = "/v1/models/";
  if (!path.starts_with(kPrefix)) {
    append_model_list(body_, server_.model_json(), server_.created());
      return;
  }

  const std::string_view id = path.substr(kPrefix.size());
  if (id != server_.options().model) {
    reject(404, fmt::format("The model {} does not exist.", id),
           "invalid_request_error", "model_not_found");
    return;
  }
  append_model_object(body_, server_.model_json(), server_.created());
}

void Session::handle_stats() {
  if (!check_method(http::verb::get)) {
    return;
  }

  const Stats& stats = server_.stats();
  fmt::format_to(
      std::back_inserter(body_),
      R"({{"requests":{},"active_streams":{},"completed_streams":{},"cancelled_streams":{},)"
      R"("idle_closes":{}}})",
      stats.requests.load(), stats.active_streams.load(),
      stats.completed_streams.load(), stats.cancelled_streams.load(),
      stats.idle_closes.load());
}

bool Session::check_method(http::verb allowed) {
  if (request_.method == allowed) {
    return true;
  }

  const std::string_view allowed_name = to_std(http::to_string(allowed));
  fmt::format_to(std::back_inserter(extra_headers_), "Allow: {}\r\n",
                 allowed_name);
  reject(405,
         fmt::format("Method {} is not allowed for {}. Use {}.",
                     request_.method_name, request_.path(), allowed_name),
         "invalid_request_error", "method_not_allowed");
  return false;
}

bool Session::read_json_body() {
  const std::string error = read_body(request_.body, fields_);
  if (error.empty()) {
    return true;
  }
  reject(400, error);
  return false;
}

void Session::reject(unsigned status, std::string_view message,
                     std::string_view type, std::string_view code) {
  status_ = status;
  body_.clear();
  append_error_body(body_, message, type, code);

  server_.logger().debug("{} {} rejected with {}: {} (request id {})",
                         request_.method_name, request_.target, status,
                         message,
                         request_.has_request_id ? request_.request_id : "-");
}

CompletionHeader Session::start_completion(std::string_view id_prefix) {
  completion_id_.clear();
  fmt::format_to(std::back_inserter(completion_id_), "{}{:x}-{}", id_prefix,
                 server_.pid(), server_.next_completion_number());
  return CompletionHeader{completion_id_,
                          static_cast<std::int64_t>(std::time(nullptr)),
                          server_.model_json()};
}

asio::awaitable<bool> Session::write_reply() {
  const bool keep_open = keep_alive();
  head_.clear();
  append_head(BodyFraming::content_length, keep_open);

  const std::array<asio::const_buffer, 2> buffers{asio::buffer(head_),
                                                  asio::buffer(body_)};
  error_code ec;
  co_await asio::async_write(socket_, buffers, use_awaitable_with(ec));
  co_return !ec && keep_open;
}

asio::awaitable<bool> Session::stream() {
  const StreamPlan plan = *stream_;
  const CompletionHeader header =
      start_completion(plan.kind == StreamKind::chat ? "chatcmpl-" : "cmpl-");
  Stats& stats = server_.stats();
  stats.active_streams.fetch_add(1, std::memory_order_relaxed);

  // An HTTP/1.0 client gets the events without chunked encoding, and the
  // closed connection ends the stream.
  const bool chunked = request_.version >= 11;
  const bool keep_open = chunked && keep_alive();

  // The head and the first event go out in one write.
  status_ = 200;
  extra_headers_ += "Cache-Control: no-cache\r\n";
  head_.clear();
  append_head(chunked ? BodyFraming::chunked : BodyFraming::until_close,
              keep_open);
  body_.clear();
  append_stream_event(header, plan, 0, chunked);

  error_code ec;
  const std::array<asio::const_buffer, 2> buffers{asio::buffer(head_),
                                                  asio::buffer(body_)};
  co_await asio::async_write(socket_, buffers, use_awaitable_with(ec));
  client_gone_ = false;
  if (!ec) {
    watch_for_close();
  }

  // One write per token, with --token-interval before each one after the
  // first. The close watcher cancels the timer when the client leaves.
  const auto interval = server_.options().token_interval;
  for (int index = 1; index < plan.tokens && !ec && !client_gone_; ++index) {
    if (interval.count() > 0) {
      timer_.expires_after(interval);
      error_code timer_ec;
      co_await timer_.async_wait(use_awaitable_with(timer_ec));
      if (client_gone_) {
        break;
      }
    }
    body_.clear();
    append_stream_event(header, plan, index, chunked);
    co_await asio::async_write(socket_, asio::buffer(body_),
                               use_awaitable_with(ec));
  }

  // The final chunk, the usage chunk, [DONE] and the end of the chunked body
  // go out in one write.
  bool completed = !ec && !client_gone_;
  if (completed) {
    body_.clear();
    append_stream_end(header, plan, chunked);
    co_await asio::async_write(socket_, asio::buffer(body_),
                               use_awaitable_with(ec));
    completed = !ec;
  }
  stop_watching();

  stats.active_streams.fetch_sub(1, std::memory_order_relaxed);
  if (completed) {
    stats.completed_streams.fetch_add(1, std::memory_order_relaxed);
    co_return keep_open;
  }

  stats.cancelled_streams.fetch_add(1, std::memory_order_relaxed);
  server_.logger().debug(
      "stream {} cancelled: the client closed the connection ({}) "
      "(request id {})",
      header.id, ec ? ec.message() : "end of stream",
      request_.has_request_id ? request_.request_id : "-");
  co_return false;
}

void Session::append_event(bool chunked) {
  constexpr std::string_view kPrefix = "data: ";
  constexpr std::string_view kSuffix = "\n\n";
  stamp_.clear();
  if (server_.options().event_timestamps) {
    const auto now = std::chrono::steady_clock::now().time_since_epoch();
    fmt::format_to(std::back_inserter(stamp_), ": sent_ns={}\n",
                   std::chrono::nanoseconds(now).count());
  }
  if (chunked) {
    fmt::format_to(std::back_inserter(body_), "{:x}\r\n",
                   stamp_.size() + kPrefix.size() + event_.size() +
                       kSuffix.size());
  }
  body_ += stamp_;
  body_ += kPrefix;
  body_ += event_;
  body_ += kSuffix;
  if (chunked) {
    body_ += "\r\n";
  }
}

void Session::append_stream_event(const CompletionHeader& header,
                                  const StreamPlan& plan, int index,
                                  bool chunked) {
  event_.clear();
  if (plan.kind == StreamKind::chat) {
    append_chat_chunk(event_, header, index);
  } else {
    append_text_chunk(event_, header, index);
  }
  append_event(chunked);
}

void Session::append_stream_end(const CompletionHeader& header,
                                const StreamPlan& plan, bool chunked) {
  const bool chat = plan.kind == StreamKind::chat;

  event_.clear();
  if (chat) {
    append_chat_final_chunk(event_, header);
  } else {
    append_text_final_chunk(event_, header);
  }
  append_event(chunked);

  if (plan.include_usage) {
    event_.clear();
    append_usage_chunk(event_, header,
                       chat ? "chat.completion.chunk" : "text_completion",
                       plan.usage);
    append_event(chunked);
  }

  event_ = "[DONE]";
  append_event(chunked);
  if (chunked) {
    body_ += "0\r\n\r\n";
  }
}

void Session::watch_for_close() {
  watching_ = true;
  socket_.async_wait(
      tcp::socket::wait_read,
      [self = shared_from_this(), generation = watch_generation_](
          const error_code& ec) { self->on_readable(ec, generation); });
}

void Session::on_readable(const error_code& ec, std::uint64_t generation) {
  if (generation != watch_generation_ || ec == asio::error::operation_aborted) {
    return;
  }
  watching_ = false;

  // Readable means data, end of stream or an error. Peek to tell them apart
  // without taking bytes that belong to the parser. A client that only shuts
  // down its sending side counts as gone too.
  if (!ec) {
    char byte = 0;
    const auto received = ::recv(socket_.native_handle(), &byte, 1,
                                 MSG_PEEK | MSG_DONTWAIT);
    // NOTE: after a pipelined request arrives during a stream, a client
    // that leaves is noticed only when a write fails.
    if (received > 0) {
      return;
    }
    if (received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
                         errno == EINTR)) {
      watch_for_close();
      return;
    }
  }

  client_gone_ = true;
  timer_.cancel();
}

void Session::stop_watching() {
  ++watch_generation_;
  if (!watching_) {
    return;
  }
  watching_ = false;
  error_code ignored;
  socket_.cancel(ignored);
}

void Session::append_head(BodyFraming framing, bool keep_open) {
  const auto status = static_cast<http::status>(status_);
  fmt::format_to(std::back_inserter(head_), "HTTP/1.1 {} {}\r\n", status_,
                 to_std(http::obsolete_reason(status)));

  switch (framing) {
    case BodyFraming::content_length:
      fmt::format_to(std::back_inserter(head_),
                     "Content-Type: application/json\r\n"
                     "Content-Length: {}\r\n",
                     body_.size());
      break;
    case BodyFraming::chunked:
      head_ +=
          "Content-Type: text/event-stream\r\n"
          "Transfer-Encoding: chunked\r\n";
      break;
    case BodyFraming::until_close:
      head_ += "Content-Type: text/event-stream\r\n";
      break;
  }

  fmt::format_to(std::back_inserter(head_), "X-Stub-Pid: {}\r\n",
                 server_.pid());
  if (request_.has_request_id) {
    fmt::format_to(std::back_inserter(head_), "X-Stub-Request-Id: {}\r\n",
                   request_.request_id);
  }
  head_ += extra_headers_;

  if (!keep_open) {
    head_ += "Connection: close\r\n";
  } else if (request_.version == 10) {
    head_ += "Connection: keep-alive\r\n";
  }
  head_ += "\r\n";
}

bool Session::keep_alive() const {
  return !close_after_reply_ && parser_ && parser_->is_header_done() &&
         parser_->keep_alive();
}

void Session::close() {
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
  socket_.close(ignored);
}

}  // namespace modelgate::stub
