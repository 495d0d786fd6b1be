#include "gateway/http_text.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace modelgate::gateway {
namespace {

namespace http = boost::beast::http;

using Request = ClientRequest;
using Response = BackendResponse;

// A head split into its start line and fields, in order.
struct ParsedHead {
  std::string start_line;
  std::vector<std::pair<std::string, std::string>> fields;
  bool ends_with_blank_line = false;

  int count(std::string_view name) const {
    int found = 0;
    for (const auto& [field, value] : fields) {
      if (equals_ignore_case(field, name)) {
        ++found;
      }
    }
    return found;
  }

  // The value of the first field with this name, or "<absent>".
  std::string value(std::string_view name) const {
    for (const auto& [field, value] : fields) {
      if (equals_ignore_case(field, name)) {
        return value;
      }
    }
    return "<absent>";
  }
};

ParsedHead parse_head(std::string_view text) {
  ParsedHead head;
  constexpr std::string_view kEnd = "\r\n\r\n";
  head.ends_with_blank_line =
      text.size() >= kEnd.size() && text.substr(text.size() - kEnd.size()) == kEnd &&
      text.find(kEnd) == text.size() - kEnd.size();

  std::size_t line_end = text.find("\r\n");
  head.start_line = std::string(text.substr(0, line_end));
  std::size_t position = line_end + 2;
  while (position < text.size()) {
    line_end = text.find("\r\n", position);
    if (line_end == std::string_view::npos || line_end == position) {
      break;
    }
    std::string_view line = text.substr(position, line_end - position);
    std::size_t colon = line.find(": ");
    head.fields.emplace_back(std::string(line.substr(0, colon)),
                             colon == std::string_view::npos
                                 ? std::string()
                                 : std::string(line.substr(colon + 2)));
    position = line_end + 2;
  }
  return head;
}

Request chat_request() {
  Request request(http::verb::post, "/v1/chat/completions?trace=1", 11);
  request.set(http::field::host, "gateway.example:8080");
  request.set(http::field::content_type, "application/json");
  request.body() = R"({"model":"m"})";
  return request;
}

ParsedHead upstream_head(const Request& request, std::string_view host = "127.0.0.1") {
  std::string head;
  append_upstream_head(head, request, host, 8001, "req-1", "10.0.0.5");
  return parse_head(head);
}

TEST(AppendUpstreamHead, KeepsMethodAndTarget) {
  ParsedHead head = upstream_head(chat_request());

  EXPECT_EQ(head.start_line, "POST /v1/chat/completions?trace=1 HTTP/1.1") << "request line";
  EXPECT_TRUE(head.ends_with_blank_line) << "the head ends with one blank line";
}

TEST(AppendUpstreamHead, DropsHopByHopFields) {
  Request request = chat_request();
  const std::vector<std::string> hop_by_hop = {
      "Connection",          "Keep-Alive", "TE",      "Transfer-Encoding",
      "Upgrade",             "Proxy-Authorization", "Proxy-Connection", "Trailer",
  };
  for (const std::string& name : hop_by_hop) {
    request.insert(name, "x");
  }

  ParsedHead head = upstream_head(request);

  for (const std::string& name : hop_by_hop) {
    EXPECT_EQ(head.count(name), 0) << "forwarded hop-by-hop field " << name;
  }
}

TEST(AppendUpstreamHead, DropsFieldsNamedInConnection) {
  Request request = chat_request();
  request.set(http::field::connection, "keep-alive, X-Hop-One ,x-hop-two,,\tX-Hop-Three");
  request.insert("X-Hop-One", "1");
  request.insert("x-hop-two", "2");
  request.insert("X-HOP-THREE", "3");
  request.insert("X-End-To-End", "kept");

  ParsedHead head = upstream_head(request);

  EXPECT_EQ(head.count("X-Hop-One"), 0) << "field named in Connection";
  EXPECT_EQ(head.count("X-Hop-Two"), 0) << "field named in lower case in Connection";
  EXPECT_EQ(head.count("X-Hop-Three"), 0) << "field named after a tab in Connection";
  EXPECT_EQ(head.value("X-End-To-End"), "kept") << "field not named in Connection";
}

TEST(AppendUpstreamHead, DropsClientCredentials) {
  Request request = chat_request();
  request.set(http::field::authorization, "Bearer sk-client");
  request.insert("X-Api-Key", "sk-client");

  ParsedHead head = upstream_head(request);

  EXPECT_EQ(head.count("Authorization"), 0) << "forwarded the client's Authorization";
  EXPECT_EQ(head.count("X-Api-Key"), 0) << "forwarded the client's x-api-key";
}

TEST(AppendUpstreamHead, SendsDeploymentKey) {
  Request request = chat_request();
  request.set(http::field::authorization, "Bearer sk-client");

  std::string text;
  append_upstream_head(text, request, "127.0.0.1", 8001, "req-1", "10.0.0.5", "backend-key");
  ParsedHead head = parse_head(text);

  EXPECT_EQ(head.count("Authorization"), 1) << "Authorization fields";
  EXPECT_EQ(head.value("Authorization"), "Bearer backend-key");
  EXPECT_TRUE(head.ends_with_blank_line);
}

TEST(AppendUpstreamHead, ReplacesHost) {
  ParsedHead head = upstream_head(chat_request());

  EXPECT_EQ(head.count("Host"), 1) << "Host fields";
  EXPECT_EQ(head.value("Host"), "127.0.0.1:8001") << "Host";
}

TEST(AppendUpstreamHead, BracketsIpv6Host) {
  ParsedHead head = upstream_head(chat_request(), "::1");

  // Host carries the host of a URI, where an IPv6 literal is written in brackets.
  EXPECT_EQ(head.value("Host"), "[::1]:8001") << "Host for backend address ::1";
}

TEST(AppendUpstreamHead, SetsContentLengthToBodySize) {
  Request request = chat_request();
  request.set(http::field::content_length, "999");
  request.set(http::field::transfer_encoding, "chunked");

  ParsedHead head = upstream_head(request);

  EXPECT_EQ(head.count("Content-Length"), 1) << "Content-Length fields";
  EXPECT_EQ(head.value("Content-Length"), std::to_string(request.body().size()))
      << "Content-Length";
  EXPECT_EQ(head.count("Transfer-Encoding"), 0) << "Transfer-Encoding fields";
}

TEST(AppendUpstreamHead, EmptyBodyHasZeroLength) {
  Request request(http::verb::get, "/v1/models", 11);

  ParsedHead head = upstream_head(request);

  EXPECT_EQ(head.start_line, "GET /v1/models HTTP/1.1") << "request line";
  EXPECT_EQ(head.value("Content-Length"), "0") << "Content-Length of an empty body";
}

TEST(AppendUpstreamHead, ReplacesClientRequestId) {
  Request request = chat_request();
  request.insert("X-Request-Id", "client-chosen");
  request.insert("x-request-id", "second-client-value");

  ParsedHead head = upstream_head(request);

  EXPECT_EQ(head.count("X-Request-Id"), 1) << "X-Request-Id fields";
  EXPECT_EQ(head.value("X-Request-Id"), "req-1") << "X-Request-Id";
}

TEST(AppendUpstreamHead, AddsForwardedFor) {
  ParsedHead head = upstream_head(chat_request());

  EXPECT_EQ(head.count("X-Forwarded-For"), 1) << "X-Forwarded-For fields";
  EXPECT_EQ(head.value("X-Forwarded-For"), "10.0.0.5") << "X-Forwarded-For";
}

TEST(AppendUpstreamHead, AppendsToForwardedFor) {
  Request request = chat_request();
  request.insert("X-Forwarded-For", "203.0.113.7, 198.51.100.2");

  ParsedHead head = upstream_head(request);

  EXPECT_EQ(head.count("X-Forwarded-For"), 1) << "X-Forwarded-For fields";
  EXPECT_EQ(head.value("X-Forwarded-For"), "203.0.113.7, 198.51.100.2, 10.0.0.5")
      << "X-Forwarded-For";
}

TEST(AppendUpstreamHead, JoinsRepeatedForwardedFor) {
  Request request = chat_request();
  request.insert("X-Forwarded-For", "203.0.113.7");
  request.insert("X-Forwarded-For", "198.51.100.2");

  ParsedHead head = upstream_head(request);

  // Repeated fields form one comma-separated list, in order.
  EXPECT_EQ(head.count("X-Forwarded-For"), 1) << "X-Forwarded-For fields";
  EXPECT_EQ(head.value("X-Forwarded-For"), "203.0.113.7, 198.51.100.2, 10.0.0.5")
      << "X-Forwarded-For from two client fields";
}

TEST(AppendUpstreamHead, DropsExpect) {
  Request request = chat_request();
  request.set(http::field::expect, "100-continue");

  ParsedHead head = upstream_head(request);

  EXPECT_EQ(head.count("Expect"), 0) << "Expect fields";
}

TEST(AppendUpstreamHead, KeepsEndToEndFields) {
  Request request = chat_request();
  request.set(http::field::accept, "text/event-stream");
  request.insert("OpenAI-Organization", "org-1");
  request.insert("X-Custom", "a, b");

  ParsedHead head = upstream_head(request);

  EXPECT_EQ(head.value("Content-Type"), "application/json") << "Content-Type";
  EXPECT_EQ(head.value("Accept"), "text/event-stream") << "Accept";
  EXPECT_EQ(head.value("OpenAI-Organization"), "org-1") << "OpenAI-Organization";
  EXPECT_EQ(head.value("X-Custom"), "a, b") << "X-Custom";
}

Response backend_response(http::status status = http::status::ok) {
  Response response(status, 11);
  response.set(http::field::content_type, "application/json");
  response.set(http::field::content_length, "42");
  return response;
}

ParsedHead client_head(const Response& response, bool stream, bool chunked, bool keep_alive) {
  std::string out;
  append_response_head(out, response, "req-1", stream, chunked, keep_alive);
  return parse_head(out);
}

TEST(AppendResponseHead, WritesStatusLine) {
  Response response = backend_response(http::status::not_found);

  ParsedHead head = client_head(response, false, false, true);

  EXPECT_EQ(head.start_line, "HTTP/1.1 404 Not Found") << "status line";
  EXPECT_TRUE(head.ends_with_blank_line) << "the head ends with one blank line";
}

TEST(AppendResponseHead, KeepsBackendReason) {
  Response response = backend_response();
  response.reason("Fine");

  ParsedHead head = client_head(response, false, false, true);

  EXPECT_EQ(head.start_line, "HTTP/1.1 200 Fine") << "status line";
}

TEST(AppendResponseHead, AppendsToExistingText) {
  std::string out = "previous";

  append_response_head(out, backend_response(), "req-1", false, false, true);

  EXPECT_EQ(out.rfind("previousHTTP/1.1 200 OK\r\n", 0), 0u) << "output: " << out;
}

TEST(AppendResponseHead, DropsHopByHopFields) {
  Response response = backend_response();
  const std::vector<std::string> hop_by_hop = {
      "Connection", "Keep-Alive",        "TE",      "Transfer-Encoding",
      "Upgrade",    "Proxy-Authenticate", "Trailer", "Proxy-Connection",
  };
  for (const std::string& name : hop_by_hop) {
    response.insert(name, "x");
  }
  response.set(http::field::connection, "close, X-Backend-Hop");
  response.insert("X-Backend-Hop", "1");

  ParsedHead head = client_head(response, false, false, true);

  for (const std::string& name : hop_by_hop) {
    EXPECT_EQ(head.count(name), 0) << "forwarded hop-by-hop field " << name;
  }
  EXPECT_EQ(head.count("X-Backend-Hop"), 0) << "field named in the backend's Connection";
}

TEST(AppendResponseHead, KeepsContentLengthUnlessChunked) {
  Response response = backend_response();

  ParsedHead plain = client_head(response, false, false, true);
  ParsedHead chunked = client_head(response, false, true, true);

  EXPECT_EQ(plain.count("Content-Length"), 1) << "Content-Length fields, not chunked";
  EXPECT_EQ(plain.value("Content-Length"), "42") << "Content-Length, not chunked";
  EXPECT_EQ(plain.count("Transfer-Encoding"), 0) << "Transfer-Encoding, not chunked";
  EXPECT_EQ(chunked.count("Content-Length"), 0) << "Content-Length fields, chunked";
  EXPECT_EQ(chunked.count("Transfer-Encoding"), 1) << "Transfer-Encoding fields, chunked";
  EXPECT_EQ(chunked.value("Transfer-Encoding"), "chunked") << "Transfer-Encoding, chunked";
}

TEST(AppendResponseHead, NoLengthWithoutBackendLength) {
  Response response(http::status::ok, 11);
  response.set(http::field::content_type, "text/event-stream");

  ParsedHead head = client_head(response, true, false, false);

  EXPECT_EQ(head.count("Content-Length"), 0) << "Content-Length fields";
  EXPECT_EQ(head.count("Transfer-Encoding"), 0) << "Transfer-Encoding fields";
}

TEST(AppendResponseHead, AccelBufferingOnlyForStreams) {
  Response response = backend_response();
  response.insert("X-Accel-Buffering", "yes");

  ParsedHead stream = client_head(response, true, true, true);
  ParsedHead plain = client_head(response, false, false, true);

  EXPECT_EQ(stream.count("X-Accel-Buffering"), 1) << "X-Accel-Buffering fields, stream";
  EXPECT_EQ(stream.value("X-Accel-Buffering"), "no") << "X-Accel-Buffering, stream";
  EXPECT_EQ(plain.count("X-Accel-Buffering"), 0) << "X-Accel-Buffering fields, no stream";
}

TEST(AppendResponseHead, ConnectionCloseOnlyWithoutKeepAlive) {
  Response response = backend_response();
  response.set(http::field::connection, "close");

  ParsedHead closing = client_head(response, false, false, false);
  ParsedHead keep_alive = client_head(response, false, false, true);

  EXPECT_EQ(closing.count("Connection"), 1) << "Connection fields without keep-alive";
  EXPECT_EQ(closing.value("Connection"), "close") << "Connection without keep-alive";
  EXPECT_EQ(keep_alive.count("Connection"), 0) << "Connection fields with keep-alive";
}

TEST(AppendResponseHead, ReplacesRequestId) {
  Response response = backend_response();
  response.insert("X-Request-Id", "backend-id");

  ParsedHead head = client_head(response, false, false, true);

  EXPECT_EQ(head.count("X-Request-Id"), 1) << "X-Request-Id fields";
  EXPECT_EQ(head.value("X-Request-Id"), "req-1") << "X-Request-Id";
}

TEST(AppendResponseHead, KeepsEndToEndFields) {
  Response response = backend_response();
  response.insert("X-Backend-Model", "qwen");
  response.insert("Set-Cookie", "a=1");
  response.insert("Set-Cookie", "b=2");

  ParsedHead head = client_head(response, false, false, true);

  EXPECT_EQ(head.value("Content-Type"), "application/json") << "Content-Type";
  EXPECT_EQ(head.value("X-Backend-Model"), "qwen") << "X-Backend-Model";
  EXPECT_EQ(head.count("Set-Cookie"), 2) << "Set-Cookie fields, which must stay apart";
}

TEST(ChunkSizeLine, WritesLowercaseHex) {
  EXPECT_EQ(chunk_size_line(0x1a2f), "1a2f\r\n");
  EXPECT_EQ(chunk_size_line(0), "0\r\n");
  EXPECT_EQ(chunk_size_line(15), "f\r\n");
  EXPECT_EQ(chunk_size_line(16), "10\r\n");
  EXPECT_EQ(chunk_size_line(4096), "1000\r\n");
  EXPECT_EQ(chunk_size_line(std::numeric_limits<std::size_t>::max()),
            std::string(sizeof(std::size_t) * 2, 'f') + "\r\n");
}

TEST(PercentDecode, DecodesValidEscapes) {
  EXPECT_EQ(percent_decode("%2F%zz"), "/%zz");
  EXPECT_EQ(percent_decode("org%2Fllama"), "org/llama");
  EXPECT_EQ(percent_decode("%2f"), "/") << "lowercase hex";
  EXPECT_EQ(percent_decode("%41%42c"), "ABc");
  EXPECT_EQ(percent_decode("qwen%3A7b"), "qwen:7b");
  EXPECT_EQ(percent_decode("%E6%A8%A1"), "\xe6\xa8\xa1") << "UTF-8 bytes";
  EXPECT_EQ(percent_decode("%00"), std::string(1, '\0')) << "NUL";
}

TEST(PercentDecode, KeepsInvalidEscapes) {
  EXPECT_EQ(percent_decode(""), "");
  EXPECT_EQ(percent_decode("%"), "%");
  EXPECT_EQ(percent_decode("%4"), "%4");
  EXPECT_EQ(percent_decode("abc%2"), "abc%2");
  EXPECT_EQ(percent_decode("%g1"), "%g1");
  EXPECT_EQ(percent_decode("%1g"), "%1g");
  EXPECT_EQ(percent_decode("%%41"), "%A");
  EXPECT_EQ(percent_decode("a+b"), "a+b") << "plus is not a space in a path";
}

TEST(ModelEndpointLabel, LabelsModelPaths) {
  EXPECT_EQ(model_endpoint_label("/v1/chat/completions"), "chat_completions");
  EXPECT_EQ(model_endpoint_label("/v1/completions"), "completions");
  EXPECT_EQ(model_endpoint_label("/v1/embeddings"), "embeddings");
}

TEST(ModelEndpointLabel, OtherPathsAreEmpty) {
  for (std::string_view path : {"", "/", "/v1/models", "/v1/chat/completions/",
                                "/V1/completions", "/v1/chat/completions?x=1",
                                "/v2/embeddings", "/metrics"}) {
    EXPECT_EQ(model_endpoint_label(path), "") << "label of " << path;
  }
}

TEST(EqualsIgnoreCase, ComparesAsciiCaseInsensitively) {
  EXPECT_TRUE(equals_ignore_case("Content-Length", "content-length"));
  EXPECT_TRUE(equals_ignore_case("X-REQUEST-ID", "x-request-id"));
  EXPECT_TRUE(equals_ignore_case("", ""));
  EXPECT_FALSE(equals_ignore_case("host", "hosts")) << "different lengths";
  EXPECT_FALSE(equals_ignore_case("host", "hist"));
  EXPECT_FALSE(equals_ignore_case("[", "{")) << "0x5b and 0x7b differ by the case bit only";
  EXPECT_FALSE(equals_ignore_case("\xc4", "\xe4")) << "bytes above 0x7f are not folded";
}

TEST(IsHopByHop, MatchesFieldsInAnyCase) {
  for (std::string_view name : {"Connection", "keep-alive", "PROXY-CONNECTION",
                                "Proxy-Authenticate", "proxy-authorization", "TE", "Trailer",
                                "transfer-encoding", "Upgrade"}) {
    EXPECT_TRUE(is_hop_by_hop(name)) << name;
  }
  for (std::string_view name :
       {"Content-Length", "Content-Type", "X-Request-Id", "Keep", "Trailers", "", "Host"}) {
    EXPECT_FALSE(is_hop_by_hop(name)) << name;
  }
}

TEST(IsEventStream, MatchesMediaType) {
  EXPECT_TRUE(is_event_stream("text/event-stream"));
  EXPECT_TRUE(is_event_stream("Text/Event-Stream; charset=utf-8"));
  EXPECT_TRUE(is_event_stream("text/event-stream ;charset=utf-8"));
  EXPECT_FALSE(is_event_stream("application/json"));
  EXPECT_FALSE(is_event_stream("text/event-streams"));
  EXPECT_FALSE(is_event_stream(""));
}

TEST(AppendStatusLine, UsesStandardReason) {
  std::string out;

  append_status_line(out, 503);
  append_status_line(out, 200, "Fine");

  EXPECT_EQ(out, "HTTP/1.1 503 Service Unavailable\r\nHTTP/1.1 200 Fine\r\n");
}

TEST(MethodString, NamesMethod) {
  EXPECT_EQ(method_string(http::verb::post), "POST");
  EXPECT_EQ(method_string(http::verb::get), "GET");
}

}  // namespace
}  // namespace modelgate::gateway
