// The gateway as a real process in front of real stub backends on loopback.

#include "tests/support/process_harness.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace modelgate::testing {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using json = nlohmann::json;

// One deployment `demo` of the stub backend; `parameters` are extra stub
// options, `deployment_extra` extra deployment keys, `gateway_extra` extra
// gateway keys (each a YAML fragment).
std::string demo_config(const std::string& parameters = "[]",
                        const std::string& deployment_extra = "",
                        const std::string& gateway_extra = "") {
  return "gateway:\n"
         "  listen: 127.0.0.1:{{GATEWAY_PORT}}\n"
         "  log_dir: {{DIR}}/logs\n" +
         gateway_extra +
         "workers:\n"
         "  - name: local\n"
         "    runtime: process\n"
         "    ports: {{PORTS}}\n"
         "backends:\n"
         "  - backend_name: stub\n"
         "    default_run_command: >-\n"
         "      {{STUB}} --port {{port}} --model {{model_name}} --record {{DIR}}/starts.txt\n"
         "deployments:\n"
         "  - name: demo\n"
         "    backend: stub\n"
         "    backend_parameters: " + parameters + "\n" +
         deployment_extra;
}

// Pid of the n-th started stub, from the --record file ("PID PORT").
pid_t recorded_pid(const std::filesystem::path& record, std::size_t index) {
  std::vector<std::string> lines = read_lines(record);
  if (lines.size() <= index) {
    return -1;
  }
  return static_cast<pid_t>(std::stol(lines[index]));
}

std::uint16_t recorded_port(const std::filesystem::path& record, std::size_t index) {
  std::vector<std::string> lines = read_lines(record);
  if (lines.size() <= index) {
    return 0;
  }
  return static_cast<std::uint16_t>(std::stoul(lines[index].substr(lines[index].find(' ') + 1)));
}

class GatewayTest : public ::testing::Test {
 protected:
  void start(const std::string& config) {
    gateway_ = std::make_unique<GatewayProcess>(dir_, config);
    ASSERT_TRUE(gateway_->wait_ready()) << "gateway did not answer /health:\n" << gateway_->log();
  }

  std::filesystem::path record() const { return dir_.path() / "starts.txt"; }
  std::size_t starts() const { return read_lines(record()).size(); }

  void TearDown() override {
    if (HasFailure() && gateway_) {
      std::cerr << "gateway log:\n" << gateway_->log();
    }
  }

  TempDir dir_;
  std::unique_ptr<GatewayProcess> gateway_;
};

TEST_F(GatewayTest, ColdStartHoldsRequestUntilHealthy) {
  start(demo_config(R"(["--startup-delay", "400"])"));
  EXPECT_EQ(starts(), 0u) << "no backend may start before the first request";

  auto began = std::chrono::steady_clock::now();
  HttpResponse response = gateway_->chat("demo");
  auto waited = std::chrono::steady_clock::now() - began;

  ASSERT_EQ(response.status, 200) << response.body;
  json body = json::parse(response.body);
  EXPECT_EQ(body["model"], "demo");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
  EXPECT_GE(waited, 350ms) << "the request was answered before the backend finished loading";
  EXPECT_EQ(starts(), 1u);
  EXPECT_FALSE(response.header("x-request-id").empty());
}

TEST_F(GatewayTest, ConcurrentFirstRequestsShareOneStart) {
  // Two I/O threads, so that held requests are woken across threads.
  start(demo_config(R"(["--startup-delay", "300"])", "", "  io_threads: 2\n"));
  ASSERT_NE(gateway_->log().find("2 I/O thread(s)"), std::string::npos) << gateway_->log();

  constexpr int kClients = 50;
  std::atomic<int> succeeded{0};
  std::vector<std::string> failures(kClients);
  std::vector<std::thread> clients;
  for (int index = 0; index < kClients; ++index) {
    clients.emplace_back([&, index] {
      try {
        HttpResponse response = gateway_->chat("demo");
        if (response.status == 200) {
          ++succeeded;
        } else {
          failures[index] = std::to_string(response.status) + " " + response.body;
        }
      } catch (const std::exception& error) {
        failures[index] = error.what();
      }
    });
  }
  for (std::thread& client : clients) {
    client.join();
  }

  for (int index = 0; index < kClients; ++index) {
    EXPECT_TRUE(failures[index].empty()) << "client " << index << ": " << failures[index];
  }
  EXPECT_EQ(succeeded.load(), kClients);
  EXPECT_EQ(starts(), 1u) << "concurrent first requests must share one start";
}

TEST_F(GatewayTest, StreamedChunksArriveSpreadOverTime) {
  start(demo_config(R"(["--token-interval", "60", "--tokens", "8"])"));
  ASSERT_EQ(gateway_->chat("demo").status, 200);  // start the backend first

  asio::io_context io_context;
  asio::ip::tcp::socket socket(io_context);
  socket.connect({asio::ip::make_address("127.0.0.1"), gateway_->port()});
  http::request<http::string_body> request(http::verb::post, "/v1/chat/completions", 11);
  request.set(http::field::host, "127.0.0.1");
  request.set(http::field::content_type, "application/json");
  request.body() = R"({"model":"demo","stream":true,"messages":[]})";
  request.prepare_payload();
  http::write(socket, request);

  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  http::read_header(socket, buffer, parser);
  EXPECT_EQ(parser.get().result_int(), 200);
  EXPECT_EQ(parser.get()["X-Accel-Buffering"], "no");
  EXPECT_EQ(parser.get()[http::field::content_type], "text/event-stream");

  // Record when each piece of the body arrives.
  std::vector<std::chrono::steady_clock::time_point> arrivals;
  std::string text;
  char piece[4096];
  while (!parser.is_done()) {
    parser.get().body().data = piece;
    parser.get().body().size = sizeof piece;
    beast::error_code error;
    http::read_some(socket, buffer, parser, error);
    if (error == http::error::need_buffer) {
      error = {};
    }
    ASSERT_FALSE(error) << error.message();
    std::size_t count = sizeof piece - parser.get().body().size;
    if (count > 0) {
      arrivals.push_back(std::chrono::steady_clock::now());
      text.append(piece, count);
    }
  }

  EXPECT_NE(text.find("data: [DONE]"), std::string::npos) << text;
  ASSERT_GE(arrivals.size(), 6u) << "the stream arrived in " << arrivals.size()
                                 << " pieces; it was buffered";
  auto spread = arrivals.back() - arrivals.front();
  EXPECT_GE(spread, 300ms) << "8 tokens 60 ms apart arrived within "
                           << std::chrono::duration_cast<std::chrono::milliseconds>(spread).count()
                           << " ms";
}

TEST_F(GatewayTest, CrashOnStartFailsHeldRequestsWithReason) {
  start(demo_config(R"(["--crash-on-start"])"));

  HttpResponse response = gateway_->chat("demo");
  EXPECT_EQ(response.status, 502) << response.body;
  json error = json::parse(response.body)["error"];
  EXPECT_EQ(error["code"], "backend_start_failed");
  std::string message = error["message"];
  EXPECT_NE(message.find("demo"), std::string::npos) << message;
  EXPECT_NE(message.find("SIGABRT"), std::string::npos) << message;
  EXPECT_NE(message.find("crashing on start as requested"), std::string::npos) << message;

  // The next request tries again: a second instance log appears.
  HttpResponse second = gateway_->chat("demo");
  EXPECT_EQ(second.status, 502);
  std::size_t logs = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir_.path() / "logs")) {
    ++logs;
  }
  EXPECT_EQ(logs, 2u) << "each request after a failed start must try a new start";
}

TEST_F(GatewayTest, ExitOnStartReportsExitCode) {
  start(demo_config(R"(["--exit-on-start", "3"])"));

  HttpResponse response = gateway_->chat("demo");
  EXPECT_EQ(response.status, 502) << response.body;
  std::string message = json::parse(response.body)["error"]["message"];
  EXPECT_NE(message.find("exit code 3"), std::string::npos) << message;
}

TEST_F(GatewayTest, HealthCheckTimeoutGives504) {
  start(demo_config(R"(["--startup-delay", "60000"])", "    startup_timeout: 500ms\n"));

  HttpResponse response = gateway_->chat("demo");
  EXPECT_EQ(response.status, 504) << response.body;
  json error = json::parse(response.body)["error"];
  EXPECT_EQ(error["code"], "backend_start_timeout");
  std::string message = error["message"];
  EXPECT_NE(message.find("HTTP 503"), std::string::npos) << message;

  pid_t pid = recorded_pid(record(), 0);
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(wait_until([&] { return !process_alive(pid); }, 15s))
      << "the backend that timed out must be stopped";
}

TEST_F(GatewayTest, IdleInstanceStopsAndRestartsOnNextRequest) {
  start(demo_config("[]", "    idle_timeout: 1s\n"));

  ASSERT_EQ(gateway_->chat("demo").status, 200);
  pid_t first = recorded_pid(record(), 0);
  ASSERT_GT(first, 0);

  EXPECT_TRUE(wait_until([&] { return !process_alive(first); }, 15s))
      << "the idle backend pid " << first << " was not stopped";
  EXPECT_TRUE(wait_until(
      [&] {
        json models = json::parse(http_request(gateway_->port(), "GET", "/v1/models").body);
        return models["data"][0]["state"] == "stopped";
      },
      5s));

  ASSERT_EQ(gateway_->chat("demo").status, 200);
  EXPECT_EQ(starts(), 2u) << "the request after an idle stop must start a new instance";
}

TEST_F(GatewayTest, NoBackendOutlivesSigterm) {
  start(demo_config());
  ASSERT_EQ(gateway_->chat("demo").status, 200);
  pid_t backend = recorded_pid(record(), 0);
  ASSERT_GT(backend, 0);

  gateway_->process().signal(SIGTERM);
  std::optional<int> status = gateway_->process().wait_exit(15s);
  ASSERT_TRUE(status.has_value()) << "the gateway did not exit after SIGTERM";
  ASSERT_TRUE(WIFEXITED(*status)) << "wait status " << *status;
  EXPECT_EQ(WEXITSTATUS(*status), 0) << "wait status " << *status;
  EXPECT_FALSE(process_alive(backend)) << "backend pid " << backend << " outlived the gateway";
}

TEST_F(GatewayTest, NoBackendOutlivesSigkill) {
  start(demo_config());
  ASSERT_EQ(gateway_->chat("demo").status, 200);
  pid_t backend = recorded_pid(record(), 0);
  ASSERT_GT(backend, 0);

  gateway_->process().signal(SIGKILL);
  ASSERT_TRUE(gateway_->process().wait_exit(5s).has_value());
  EXPECT_TRUE(wait_until([&] { return !process_alive(backend); }, 15s))
      << "backend pid " << backend << " outlived a gateway killed with SIGKILL";
}

TEST_F(GatewayTest, ClientDisconnectCancelsUpstreamStream) {
  start(demo_config(R"(["--token-interval", "100", "--tokens", "100"])"));
  ASSERT_EQ(gateway_->chat("demo", R"("max_tokens":1)").status, 200);
  std::uint16_t backend_port = recorded_port(record(), 0);
  ASSERT_NE(backend_port, 0);

  {
    asio::io_context io_context;
    asio::ip::tcp::socket socket(io_context);
    socket.connect({asio::ip::make_address("127.0.0.1"), gateway_->port()});
    http::request<http::string_body> request(http::verb::post, "/v1/chat/completions", 11);
    request.set(http::field::host, "127.0.0.1");
    request.body() = R"({"model":"demo","stream":true,"messages":[]})";
    request.prepare_payload();
    http::write(socket, request);
    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    http::read_header(socket, buffer, parser);
    ASSERT_EQ(parser.get().result_int(), 200);
  }  // the client closes mid-stream

  EXPECT_TRUE(wait_until(
      [&] {
        json stats = json::parse(http_request(backend_port, "GET", "/stub/stats").body);
        return stats["cancelled_streams"] == 1;
      },
      5s))
      << "the backend kept streaming to a client that left";
}

TEST_F(GatewayTest, IdleUpstreamClosedByBackendIsRetried) {
  // The backend closes idle connections after 100 ms, as uvicorn does after
  // 5 s. The next request goes out on the pooled connection, fails, and is
  // sent again on a new one; the client sees no error.
  start(demo_config(R"(["--keep-alive-timeout", "100"])"));
  ASSERT_EQ(gateway_->chat("demo").status, 200);
  std::uint16_t backend_port = recorded_port(record(), 0);
  ASSERT_NE(backend_port, 0);

  auto idle_closes = [&] {
    return json::parse(http_request(backend_port, "GET", "/stub/stats").body)["idle_closes"]
        .get<int>();
  };

  for (int round = 1; round <= 3; ++round) {
    ASSERT_TRUE(wait_until([&] { return idle_closes() >= round; }))
        << "the backend did not close the idle connection";
    HttpResponse response = gateway_->chat("demo");
    EXPECT_EQ(response.status, 200) << "round " << round << ": " << response.body;
  }
  EXPECT_EQ(gateway_->log().find("upstream failed"), std::string::npos) << gateway_->log();
}

TEST_F(GatewayTest, HeldRequestLeavesQueueWhenClientDisconnects) {
  start(demo_config(R"(["--startup-delay", "1500"])"));

  {
    asio::io_context io_context;
    asio::ip::tcp::socket socket(io_context);
    socket.connect({asio::ip::make_address("127.0.0.1"), gateway_->port()});
    http::request<http::string_body> request(http::verb::post, "/v1/chat/completions", 11);
    request.set(http::field::host, "127.0.0.1");
    request.body() = R"({"model":"demo","messages":[]})";
    request.prepare_payload();
    http::write(socket, request);
    ASSERT_TRUE(wait_until(
        [&] { return gateway_->log().find("starting on") != std::string::npos; }, 5s))
        << "the request did not start the backend";
  }  // the client leaves while held

  EXPECT_TRUE(wait_until(
      [&] { return gateway_->log().find("dropped=client_gone_while_held") != std::string::npos; }, 5s))
      << "the held request did not leave the queue when its client disconnected";
}

TEST_F(GatewayTest, FullQueueGets503WithRetryAfter) {
  // Two I/O threads, so that the queue limit holds for requests on both.
  start(demo_config(R"(["--startup-delay", "1000"])", "",
                    "  io_threads: 2\n"
                    "  max_held_requests_per_deployment: 2\n"));
  ASSERT_NE(gateway_->log().find("2 I/O thread(s)"), std::string::npos) << gateway_->log();

  std::vector<HttpResponse> responses(3);
  std::vector<std::thread> clients;
  for (int index = 0; index < 3; ++index) {
    clients.emplace_back([&, index] { responses[index] = gateway_->chat("demo"); });
  }
  for (std::thread& client : clients) {
    client.join();
  }

  int ok = 0;
  int rejected = 0;
  for (const HttpResponse& response : responses) {
    if (response.status == 200) {
      ++ok;
    } else if (response.status == 503) {
      ++rejected;
      EXPECT_FALSE(response.header("retry-after").empty());
      EXPECT_EQ(json::parse(response.body)["error"]["code"], "queue_full");
    }
  }
  EXPECT_EQ(ok, 2);
  EXPECT_EQ(rejected, 1);
}

TEST_F(GatewayTest, RejectsBadRequestsWithOpenAIErrors) {
  start(demo_config("[]", "", "  max_body_size: 1KiB\n"));

  HttpResponse unknown = gateway_->chat("no-such-model");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(json::parse(unknown.body)["error"]["code"], "model_not_found");

  HttpResponse invalid = http_request(gateway_->port(), "POST", "/v1/chat/completions", "{\"model\":");
  EXPECT_EQ(invalid.status, 400);
  EXPECT_EQ(json::parse(invalid.body)["error"]["code"], "invalid_json");

  HttpResponse missing = http_request(gateway_->port(), "POST", "/v1/embeddings", R"({"input":"x"})");
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(json::parse(missing.body)["error"]["type"], "invalid_request_error");

  HttpResponse large = http_request(gateway_->port(), "POST", "/v1/chat/completions",
                                    R"({"model":"demo","pad":")" + std::string(2000, 'x') + "\"}");
  EXPECT_EQ(large.status, 413);
  EXPECT_EQ(json::parse(large.body)["error"]["code"], "request_too_large");

  EXPECT_EQ(starts(), 0u) << "no backend may start for an invalid request";
}

TEST_F(GatewayTest, ResponsesPassThroughWithRequestId) {
  start(demo_config());

  HttpResponse response = gateway_->chat("demo");
  ASSERT_EQ(response.status, 200);
  EXPECT_FALSE(response.header("x-stub-pid").empty()) << "backend headers must reach the client";
  EXPECT_EQ(response.header("x-stub-request-id"), response.header("x-request-id"))
      << "the request id must be passed upstream";

  HttpResponse embeddings = http_request(gateway_->port(), "POST", "/v1/embeddings",
                                         R"({"model":"demo","input":"hello"})");
  EXPECT_EQ(embeddings.status, 200) << embeddings.body;
  HttpResponse completions = http_request(gateway_->port(), "POST", "/v1/completions",
                                          R"({"model":"demo","prompt":"hello"})");
  EXPECT_EQ(completions.status, 200) << completions.body;

  json models = json::parse(http_request(gateway_->port(), "GET", "/v1/models").body);
  EXPECT_EQ(models["object"], "list");
  EXPECT_EQ(models["data"][0]["id"], "demo");
  EXPECT_EQ(models["data"][0]["state"], "running");
}

}  // namespace
}  // namespace modelgate::testing
