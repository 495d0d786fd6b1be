#pragma once

// One client connection of the stub backend. It reads requests one after the
// other, so pipelined requests get their responses in order. Each response
// goes out in one write, and a stream in one write per event.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "bench/stub_asio.hpp"
#include "bench/stub_request.hpp"
#include "bench/stub_responses.hpp"

namespace modelgate::stub {

class Server;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Server& server);

  asio::any_io_executor executor() { return socket_.get_executor(); }

  // Serves requests until the client closes the connection, a response
  // closes it, or an I/O error occurs.
  asio::awaitable<void> run();

 private:
  enum class ReadResult { request, closed, rejected };
  enum class StreamKind { chat, text };

  // A streamed completion, decided by handle_request() and sent by stream().
  struct StreamPlan {
    StreamKind kind = StreamKind::chat;
    int tokens = 0;
    bool include_usage = false;
    Usage usage;
  };

  asio::awaitable<ReadResult> read_request();

  // Decides the response to request_: fills status_ and body_, or stream_.
  void handle_request();
  void handle_chat_completion();
  void handle_completion();
  void handle_embeddings();
  void handle_models();
  void handle_stats();

  // Returns whether the request method is `allowed`, after rejecting it with
  // 405 when it is not.
  bool check_method(http::verb allowed);

  // Reads the JSON body into fields_. Returns false after rejecting the
  // request with 400.
  bool read_json_body();

  // Makes the response an OpenAI error body with `status`. Every rejection
  // goes through here, so that all of them look alike and are logged alike.
  void reject(unsigned status, std::string_view message,
              std::string_view type = "invalid_request_error",
              std::string_view code = {});

  CompletionHeader start_completion(std::string_view id_prefix);

  // Writes status_ and body_. Returns whether the connection stays open.
  asio::awaitable<bool> write_reply();

  // Streams stream_ as server-sent events. Returns whether the connection
  // stays open.
  asio::awaitable<bool> stream();
  // Appends the event in event_ to body_ as "data: EVENT\n\n", after the
  // line ": sent_ns=N\n" with --event-timestamps, inside one chunk when the
  // response uses chunked transfer encoding.
  void append_event(bool chunked);
  void append_stream_event(const CompletionHeader& header,
                           const StreamPlan& plan, int index, bool chunked);
  // Appends the final chunk, the usage chunk when requested, "data: [DONE]"
  // and, with chunked encoding, the last chunk.
  void append_stream_end(const CompletionHeader& header,
                         const StreamPlan& plan, bool chunked);

  // Watches the socket for the client closing it while a stream is sent.
  void watch_for_close();
  void on_readable(const error_code& ec, std::uint64_t generation);
  void stop_watching();

  // Framing of the response body: Content-Length, chunked transfer encoding
  // or the end of the connection.
  enum class BodyFraming { content_length, chunked, until_close };

  // Appends the status line and headers for status_ to head_.
  void append_head(BodyFraming framing, bool keep_open);
  // Returns whether the request allows the connection to stay open.
  bool keep_alive() const;
  void close();

  tcp::socket socket_;
  Server& server_;
  beast::flat_buffer buffer_;
  asio::steady_timer timer_;  // the interval between streamed chunks
  asio::steady_timer idle_timer_;  // --keep-alive-timeout between requests

  // The current request. The strings keep their capacity between requests.
  Request request_;
  std::optional<RequestParser> parser_;
  BodyFields fields_;

  // The current response.
  unsigned status_ = 200;
  bool close_after_reply_ = false;
  std::string extra_headers_;  // complete header lines, such as "Allow: GET\r\n"
  std::string head_;
  std::string body_;
  std::string event_;
  std::string stamp_;  // the ": sent_ns=N" line of the current event
  std::string completion_id_;
  std::optional<StreamPlan> stream_;

  // State of the close watcher during a stream. A handler whose generation
  // is older than watch_generation_ belongs to an earlier stream.
  bool watching_ = false;
  bool client_gone_ = false;
  std::uint64_t watch_generation_ = 0;
};

}  // namespace modelgate::stub
