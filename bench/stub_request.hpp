#pragma once

// One HTTP request as the stub backend reads it: the request line, the two
// headers it acts on, the body, and the fields of a JSON body that change the
// response.
//
// The strings are members of a session and keep their capacity from one
// request to the next, so a keep-alive connection allocates nothing per
// request once its buffers have grown.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bench/stub_asio.hpp"

namespace modelgate::stub {

struct Request {
  http::verb method = http::verb::unknown;
  std::string method_name;  // as received, for error messages
  std::string target;
  int version = 11;  // 10 for HTTP/1.0, 11 for HTTP/1.1
  bool has_request_id = false;
  std::string request_id;  // the X-Request-Id header
  std::string authorization;  // the Authorization header
  bool expect_continue = false;
  std::string body;

  void clear();

  // Returns the target without its query string.
  std::string_view path() const;
};

// Reads the request line, headers and body into a Request. Everything else is
// left to beast::http::basic_parser, including keep-alive and chunked bodies.
class RequestParser final : public http::basic_parser<true> {
 public:
  explicit RequestParser(Request& request) : request_(request) {}

 private:
  void on_request_impl(http::verb method, beast::string_view method_name,
                       beast::string_view target, int version,
                       error_code& ec) override;
  void on_response_impl(int status, beast::string_view reason, int version,
                        error_code& ec) override;
  void on_field_impl(http::field name, beast::string_view name_string,
                     beast::string_view value, error_code& ec) override;
  void on_header_impl(error_code& ec) override;
  void on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                         error_code& ec) override;
  std::size_t on_body_impl(beast::string_view body, error_code& ec) override;
  void on_chunk_header_impl(std::uint64_t size, beast::string_view extensions,
                            error_code& ec) override;
  std::size_t on_chunk_body_impl(std::uint64_t remain, beast::string_view body,
                                 error_code& ec) override;
  void on_finish_impl(error_code& ec) override;

  Request& request_;
};

// The members of a JSON request body that the stub acts on. Members it does
// not act on are checked only for being valid JSON.
struct BodyFields {
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::optional<std::int64_t> max_tokens;  // max_tokens or max_completion_tokens
  std::optional<std::int64_t> dimensions;
  bool base64 = false;  // encoding_format is "base64"
  bool has_messages = false;
  bool has_input = false;

  // Whitespace-separated words in the strings of messages, prompt and input,
  // which stand in for prompt tokens in `usage`.
  std::size_t prompt_words = 0;

  // One hash per embedding input, which seeds that input's vector.
  std::vector<std::uint64_t> input_hashes;

  void clear();
};

// Parses `body` in one pass into `fields`. Returns an empty string on success,
// otherwise the message for a 400 response: invalid JSON, a body that is not
// an object, or a member of the wrong type.
std::string read_body(std::string_view body, BodyFields& fields);

}  // namespace modelgate::stub
