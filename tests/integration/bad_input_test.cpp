// Hostile and broken requests sent as raw bytes to a real gateway. Each gets
// its documented status and error code, the gateway serves the next good
// request normally, and no backend starts for an invalid request.

#include "tests/support/process_harness.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <memory>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace modelgate::testing {
namespace {

using json = nlohmann::json;

struct BadRequest {
  std::string scenario;
  std::string bytes;   // sent as they are
  int status;          // expected status; 0: the connection closes without a response
  std::string code;    // expected error.code, empty to skip the check
};

std::string post(const std::string& body, const std::string& extra_headers = "") {
  return "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
         extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string nested(int depth) {
  return R"({"model":"demo","x":)" + std::string(depth, '[') + std::string(depth, ']') + "}";
}

std::vector<BadRequest> bad_requests() {
  return {
      // Bodies that are not usable JSON.
      {"EmptyBody", post(""), 400, "invalid_json"},
      {"TruncatedJson", post(R"({"model":"demo")"), 400, "invalid_json"},
      {"TrailingGarbage", post(R"({"model":"demo"} x)"), 400, "invalid_json"},
      {"NotJsonAtAll", post("model=demo"), 400, "invalid_json"},
      {"SingleQuotes", post("{'model':'demo'}"), 400, "invalid_json"},
      {"InvalidUtf8InString", post("{\"model\":\"de\xff\xfemo\"}"), 400, "invalid_json"},
      {"NulByteInBody", post(std::string("{\"model\":\"demo\"}\0", 17)), 400, "invalid_json"},
      {"TopLevelArray", post(R"([{"model":"demo"}])"), 400, "invalid_request"},
      {"TopLevelString", post(R"("demo")"), 400, "invalid_request"},
      {"TopLevelNumber", post("42"), 400, "invalid_request"},
      {"TopLevelNull", post("null"), 400, "invalid_request"},
      {"Nested10000Deep", post(nested(10000)), 400, "invalid_json"},
      // "model" missing or of the wrong type.
      {"ModelMissing", post(R"({"messages":[]})"), 400, "invalid_request"},
      {"ModelNumber", post(R"({"model":7})"), 400, "invalid_request"},
      {"ModelNull", post(R"({"model":null})"), 400, "invalid_request"},
      {"ModelObject", post(R"({"model":{"name":"demo"}})"), 400, "invalid_request"},
      {"ModelArray", post(R"({"model":["demo"]})"), 400, "invalid_request"},
      {"ModelBoolean", post(R"({"model":true})"), 400, "invalid_request"},
      {"ModelEmpty", post(R"({"model":""})"), 400, "invalid_request"},
      {"DuplicateModelKeys", post(R"({"model":"demo","model":"other"})"), 400, "invalid_request"},
      {"ModelOnlyNested", post(R"({"x":{"model":"demo"}})"), 400, "invalid_request"},
      // Model names that name no deployment.
      {"ModelTenKilobytes", post(R"({"model":")" + std::string(10240, 'm') + "\"}"), 404,
       "model_not_found"},
      {"ModelControlCharacters", post(R"({"model":"de\u0000mo\n\r\t"})"), 404, "model_not_found"},
      {"ModelEscapeSequence", post(R"({"model":"\u001b[31mred"})"), 404, "model_not_found"},
      {"ModelDotDotPath", post(R"({"model":"../../etc/passwd"})"), 404, "model_not_found"},
      {"ModelPercentSlash", post(R"({"model":"demo%2F..%2F"})"), 404, "model_not_found"},
      {"ModelShellText", post(R"({"model":"demo; rm -rf / #"})"), 404, "model_not_found"},
      {"ModelTemplateText", post(R"({"model":"{{port}}"})"), 404, "model_not_found"},
      {"ModelCaseDiffers", post(R"({"model":"DEMO"})"), 404, "model_not_found"},
      {"ModelTrailingSpace", post(R"({"model":"demo "})"), 404, "model_not_found"},
      // Wrong endpoint or method.
      {"UnknownEndpoint", "POST /v1/unknown HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
       404, "unknown_url"},
      {"PathTraversalTarget", "GET /v1/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 404,
       "unknown_url"},
      {"GetOnChatCompletions", "GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n", 405,
       "method_not_allowed"},
      {"DeleteOnModels", "DELETE /v1/models HTTP/1.1\r\nHost: x\r\n\r\n", 405,
       "method_not_allowed"},
      {"UnknownModelById", "GET /v1/models/nope%2Fx HTTP/1.1\r\nHost: x\r\n\r\n", 404,
       "model_not_found"},
      // Size limits (max_body_size 64KiB, max_header_size 8KiB in this test).
      {"BodyOverLimit", post(R"({"model":"demo","pad":")" + std::string(70000, 'x') + "\"}"), 413,
       "request_too_large"},
      {"ContentLengthOverLimit",
       "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", 413,
       "request_too_large"},
      {"HeaderOverLimit",
       "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(9000, 'h') + "\r\n\r\n", 431,
       "header_too_large"},
      // Malformed HTTP.
      {"ChunkedBadSize",
       "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
       "zz\r\n{}\r\n0\r\n\r\n",
       400, "bad_request"},
      {"ChunkedSizeTooLarge",
       "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
       "ffffffffffffffffff\r\n{}\r\n0\r\n\r\n",
       400, ""},
      {"BadContentLength",
       "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}", 400,
       "bad_request"},
      {"TwoContentLengths",
       "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
       400, "bad_request"},
      {"HeaderInjectionInValue",
       "GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\rX-Injected: 1\r\n\r\n", 400, "bad_request"},
      {"SpaceBeforeColon", "GET /health HTTP/1.1\r\nHost : x\r\n\r\n", 400, "bad_request"},
      {"BadMethodToken", "GE(T /health HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"},
      {"BadVersion", "GET /health HTTP/9.9\r\nHost: x\r\n\r\n", 400, "bad_request"},
      {"NotHttp", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, "bad_request"},
      // A request that never completes is closed once header_timeout passes.
      {"StopsMidBody",
       "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"model\":",
       0, ""},
      {"StopsMidHead", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le", 0, ""},
      // Well-formed oddities the gateway serves.
      {"Http10Request", "GET /health HTTP/1.0\r\n\r\n", 200, ""},
      {"WrongContentTypeStillJson",
       "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
       "Content-Length: 14\r\n\r\n{\"model\":\"no\"}",
       404, "model_not_found"},
  };
}

// Sends raw bytes and reads until the gateway closes the connection or the
// first response is complete enough to parse its status line and body.
struct RawResult {
  int status = 0;
  std::string body;
  std::string raw;
};

RawResult send_raw(std::uint16_t port, const std::string& bytes) {
  asio::io_context io_context;
  asio::ip::tcp::socket socket(io_context);
  socket.connect({asio::ip::make_address("127.0.0.1"), port});
  timeval limit{10, 0};
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);

  boost::system::error_code error;
  asio::write(socket, asio::buffer(bytes), error);

  RawResult result;
  char buffer[65536];
  for (;;) {
    std::size_t count = socket.read_some(asio::buffer(buffer), error);
    result.raw.append(buffer, count);
    if (error) {
      break;
    }
    // One response is enough: stop once its body is complete.
    std::size_t head_end = result.raw.find("\r\n\r\n");
    if (head_end == std::string::npos) {
      continue;
    }
    std::size_t length_at = result.raw.find("Content-Length: ");
    if (length_at != std::string::npos && length_at < head_end) {
      std::size_t length = std::stoul(result.raw.substr(length_at + 16));
      if (result.raw.size() >= head_end + 4 + length) {
        result.body = result.raw.substr(head_end + 4, length);
        break;
      }
    }
  }

  if (result.raw.starts_with("HTTP/1.1 ")) {
    result.status = std::stoi(result.raw.substr(9, 3));
  }
  return result;
}

TEST(BadInput, EachRequestGetsDocumentedAnswer) {
  TempDir dir;
  GatewayProcess gateway(dir,
                         "gateway:\n"
                         "  listen: 127.0.0.1:{{GATEWAY_PORT}}\n"
                         "  log_dir: {{DIR}}/logs\n"
                         "  max_body_size: 64KiB\n"
                         "  max_header_size: 8KiB\n"
                         "  header_timeout: 1s\n"
                         "workers:\n"
                         "  - name: local\n"
                         "    ports: {{PORTS}}\n"
                         "backends:\n"
                         "  - backend_name: stub\n"
                         "    default_run_command: '{{STUB}} --port {{port}} --model {{model_name}} "
                         "--record {{DIR}}/starts.txt'\n"
                         "deployments:\n"
                         "  - name: demo\n"
                         "    backend: stub\n");
  ASSERT_TRUE(gateway.wait_ready()) << gateway.log();
  std::vector<BadRequest> requests = bad_requests();
  ASSERT_GE(requests.size(), 50u);

  for (const BadRequest& request : requests) {
    SCOPED_TRACE(request.scenario);
    RawResult result = send_raw(gateway.port(), request.bytes);
    EXPECT_EQ(result.status, request.status) << request.scenario << " got:\n"
                                             << result.raw.substr(0, 400);
    if (!request.code.empty() && result.status == request.status) {
      json body = json::parse(result.body, nullptr, false);
      ASSERT_FALSE(body.is_discarded()) << request.scenario << ": body is not JSON: " << result.body;
      EXPECT_EQ(body["error"]["code"], request.code) << request.scenario << ": " << result.body;
      EXPECT_TRUE(body["error"]["message"].is_string()) << request.scenario;
      EXPECT_TRUE(body["error"]["type"].is_string()) << request.scenario;
    }

    // The gateway still serves a good request.
    EXPECT_EQ(http_request(gateway.port(), "GET", "/health").status, 200)
        << "the gateway did not recover after " << request.scenario;
  }

  EXPECT_FALSE(std::filesystem::exists(dir.path() / "starts.txt"))
      << "a backend was started for an invalid request";

  // A good model request after all of them is served.
  EXPECT_EQ(gateway.chat("demo").status, 200) << gateway.log();
}

TEST(BadInput, PipelinedRequestsAnsweredInOrder) {
  TempDir dir;
  GatewayProcess gateway(dir,
                         "gateway:\n  listen: 127.0.0.1:{{GATEWAY_PORT}}\n  log_dir: {{DIR}}/logs\n"
                         "workers:\n  - name: local\n    ports: {{PORTS}}\n"
                         "backends:\n  - backend_name: stub\n"
                         "    default_run_command: '{{STUB}} --port {{port}} --model {{model_name}}'\n"
                         "deployments:\n  - name: demo\n    backend: stub\n");
  ASSERT_TRUE(gateway.wait_ready()) << gateway.log();

  std::string pipelined = post(R"({"model":"demo","max_tokens":1})") +
                          "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n" +
                          post(R"({"model":"nope"})", "Connection: close\r\n");
  asio::io_context io_context;
  asio::ip::tcp::socket socket(io_context);
  socket.connect({asio::ip::make_address("127.0.0.1"), gateway.port()});
  timeval limit{20, 0};
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  asio::write(socket, asio::buffer(pipelined));

  std::string all;
  boost::system::error_code error;
  char buffer[65536];
  while (!error) {
    std::size_t count = socket.read_some(asio::buffer(buffer), error);
    all.append(buffer, count);
  }

  std::size_t first = all.find("HTTP/1.1 200");
  std::size_t models = all.find("\"object\":\"list\"");
  std::size_t not_found = all.find("HTTP/1.1 404");
  ASSERT_NE(first, std::string::npos) << all;
  ASSERT_NE(models, std::string::npos) << all;
  ASSERT_NE(not_found, std::string::npos) << all;
  EXPECT_LT(first, models) << "responses out of order:\n" << all;
  EXPECT_LT(models, not_found) << "responses out of order:\n" << all;
}

// Valid requests whose bytes arrive in pieces, in chunks or after an
// interim response. Each is read whole and forwarded.
class FramingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    gateway_ = std::make_unique<GatewayProcess>(
        dir_,
        "gateway:\n  listen: 127.0.0.1:{{GATEWAY_PORT}}\n  log_dir: {{DIR}}/logs\n"
        "workers:\n  - name: local\n    ports: {{PORTS}}\n"
        "backends:\n  - backend_name: stub\n"
        "    default_run_command: '{{STUB}} --port {{port}} --model {{model_name}}'\n"
        "deployments:\n  - name: demo\n    backend: stub\n");
    ASSERT_TRUE(gateway_->wait_ready()) << gateway_->log();
    socket_.connect({asio::ip::make_address("127.0.0.1"), gateway_->port()});
    socket_.set_option(asio::ip::tcp::no_delay(true));
    timeval limit{20, 0};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  }

  // Reads until `marker` arrived or the connection ended.
  std::string read_until(const std::string& marker) {
    boost::system::error_code error;
    char buffer[4096];
    while (received_.find(marker) == std::string::npos && !error) {
      std::size_t count = socket_.read_some(asio::buffer(buffer), error);
      received_.append(buffer, count);
    }
    return received_;
  }

  TempDir dir_;
  std::unique_ptr<GatewayProcess> gateway_;
  asio::io_context io_context_;
  asio::ip::tcp::socket socket_{io_context_};
  std::string received_;
};

TEST_F(FramingTest, RequestSentByteByByte) {
  std::string request = post(R"({"model":"demo","messages":[{"role":"user","content":"hi"}],"max_tokens":2})", "Connection: close\r\n");
  for (char byte : request) {
    asio::write(socket_, asio::buffer(&byte, 1));
  }
  std::string response = read_until("\"finish_reason\"");
  EXPECT_TRUE(response.starts_with("HTTP/1.1 200")) << response << gateway_->log();
  EXPECT_NE(response.find("chat.completion"), std::string::npos) << response;
}

TEST_F(FramingTest, ChunkedRequestBodyForwarded) {
  std::string body = R"({"model":"demo","messages":[{"role":"user","content":"hi"}],"max_tokens":2})";
  std::string request =
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  for (std::size_t at = 0; at < body.size(); at += 10) {
    std::string piece = body.substr(at, 10);
    char size[16];
    std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
    request += size + piece + "\r\n";
  }
  request += "0\r\n\r\n";
  asio::write(socket_, asio::buffer(request));
  std::string response = read_until("\"finish_reason\"");
  EXPECT_TRUE(response.starts_with("HTTP/1.1 200")) << response << gateway_->log();
}

TEST_F(FramingTest, ExpectContinueGetsInterimResponse) {
  std::string body = R"({"model":"demo","messages":[{"role":"user","content":"hi"}],"max_tokens":2})";
  std::string head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                     "Content-Type: application/json\r\nExpect: 100-continue\r\n"
                     "Connection: close\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n";
  asio::write(socket_, asio::buffer(head));
  // The body goes out only after the interim response, as clients do.
  std::string interim = read_until("\r\n\r\n");
  ASSERT_TRUE(interim.starts_with("HTTP/1.1 100 Continue\r\n")) << interim;
  received_.clear();
  asio::write(socket_, asio::buffer(body));
  std::string response = read_until("\"finish_reason\"");
  EXPECT_TRUE(response.starts_with("HTTP/1.1 200")) << response << gateway_->log();
}

}  // namespace
}  // namespace modelgate::testing
