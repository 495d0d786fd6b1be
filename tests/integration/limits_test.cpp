// The gateway's configurable limits, each reached by a real client against
// the gateway and the stub backend on loopback, and each counted in
// modelgate_limit_hits_total.

#include "tests/support/process_harness.hpp"

#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace modelgate::testing {
namespace {

using json = nlohmann::json;
using asio::ip::tcp;

const std::string kChatRequestTemplate =
    "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
    "Content-Length: ";

// The admin listener serves /metrics, so that it can be read while the
// client listener is at a limit.
std::string limits_config(const std::string& gateway_extra,
                          const std::string& chat_parameters = "[]") {
  return two_model_config("  admin_listen: 127.0.0.1:{{ADMIN_PORT}}\n" + gateway_extra, "", "",
                          chat_parameters);
}

std::string chat_request(const std::string& fields = "") {
  std::string body = R"({"model":"chat","messages":[{"role":"user","content":"hi"}])" +
                     (fields.empty() ? "" : "," + fields) + "}";
  return kChatRequestTemplate + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// A raw client connection with a receive timeout.
class RawClient {
 public:
  explicit RawClient(std::uint16_t port, int receive_buffer = 0) : socket_(io_context_) {
    socket_.open(tcp::v4());
    if (receive_buffer > 0) {
      // Set before connecting, so that the TCP window stays small.
      ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVBUF, &receive_buffer,
                   sizeof receive_buffer);
    }
    socket_.connect({asio::ip::make_address("127.0.0.1"), port});
  }

  void send(const std::string& bytes) { asio::write(socket_, asio::buffer(bytes)); }

  // Reads what arrives within `timeout`; stops at the end of the connection.
  std::string read_for(std::chrono::milliseconds timeout) {
    timeval limit{static_cast<time_t>(timeout.count() / 1000),
                  static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    char data[4096];
    ssize_t count = ::recv(socket_.native_handle(), data, sizeof data, 0);
    if (count <= 0) {
      closed_ = count == 0;
      return {};
    }
    return std::string(data, static_cast<std::size_t>(count));
  }

  // Reads until the peer closes or `timeout` passes in total.
  std::string read_until_closed(std::chrono::milliseconds timeout) {
    std::string all;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!closed_ && std::chrono::steady_clock::now() < deadline) {
      all += read_for(100ms);
    }
    return all;
  }

  bool closed() const { return closed_; }
  void close() { socket_.close(); }

 private:
  asio::io_context io_context_;
  tcp::socket socket_;
  bool closed_ = false;
};

class LimitsTest : public ::testing::Test {
 protected:
  void start(const std::string& config) {
    gateway_ = std::make_unique<GatewayProcess>(dir_, config);
    ASSERT_TRUE(gateway_->wait_ready()) << "gateway did not answer /health:\n" << gateway_->log();
  }

  double limit_hits(const std::string& limit) {
    return metric_value(gateway_->metrics(),
                        "modelgate_limit_hits_total{limit=\"" + limit + "\"}");
  }

  std::uint16_t backend_port(std::size_t index) const {
    std::vector<std::string> lines = read_lines(dir_.path() / "starts.txt");
    if (lines.size() <= index) {
      return 0;
    }
    return static_cast<std::uint16_t>(
        std::stoul(lines[index].substr(lines[index].find(' ') + 1)));
  }

  void TearDown() override {
    if (HasFailure() && gateway_) {
      std::cerr << "gateway log:\n" << gateway_->log();
    }
  }

  TempDir dir_;
  std::unique_ptr<GatewayProcess> gateway_;
};

TEST_F(LimitsTest, MaxClientConnectionsMakesNewConnectionsWait) {
  start(limits_config("  max_client_connections: 2\n"));

  RawClient first(gateway_->port());
  RawClient second(gateway_->port());
  first.send(chat_request());
  second.send(chat_request());
  ASSERT_NE(first.read_for(10s).find("200 OK"), std::string::npos);
  ASSERT_NE(second.read_for(10s).find("200 OK"), std::string::npos);

  // The third connection waits in the listen backlog, unanswered.
  RawClient third(gateway_->port());
  third.send(chat_request());
  EXPECT_TRUE(wait_until([&] { return limit_hits("max_client_connections") >= 1; }))
      << gateway_->metrics();
  EXPECT_EQ(third.read_for(300ms), "") << "a connection beyond the limit was served";

  // Closing one connection lets the third in, and nothing was lost.
  first.close();
  EXPECT_NE(third.read_for(10s).find("200 OK"), std::string::npos);
}

TEST_F(LimitsTest, MaxHeldRequestsRejectsOverflow) {
  start(limits_config("  max_held_requests: 1\n", R"(["--startup-delay", "1500"])"));

  std::atomic<int> held_status{0};
  std::thread held([&] {
    held_status = http_request(gateway_->port(), "POST", "/v1/chat/completions",
                               R"({"model":"chat","messages":[]})")
                      .status;
  });
  ASSERT_TRUE(wait_until([&] {
    return metric_value(gateway_->metrics(), R"(modelgate_held_requests{deployment="chat"})") ==
           1;
  })) << gateway_->metrics();

  // Another deployment's request finds the gateway-wide queue full.
  HttpResponse overflow = http_request(gateway_->port(), "POST", "/v1/embeddings",
                                       R"({"model":"embed","input":"x"})");
  EXPECT_EQ(overflow.status, 503) << overflow.body;
  EXPECT_EQ(overflow.header("retry-after"), "5");
  EXPECT_EQ(json::parse(overflow.body)["error"]["code"], "queue_full");
  EXPECT_EQ(limit_hits("max_held_requests"), 1);

  held.join();
  EXPECT_EQ(held_status.load(), 200) << "the held request must still be served";
}

TEST_F(LimitsTest, MaxHeldRequestsPerDeploymentRejectsOverflow) {
  start(limits_config("  max_held_requests_per_deployment: 1\n",
                      R"(["--startup-delay", "1500"])"));

  std::thread held([&] {
    http_request(gateway_->port(), "POST", "/v1/chat/completions",
                 R"({"model":"chat","messages":[]})");
  });
  ASSERT_TRUE(wait_until([&] {
    return metric_value(gateway_->metrics(), R"(modelgate_held_requests{deployment="chat"})") ==
           1;
  })) << gateway_->metrics();

  HttpResponse overflow = http_request(gateway_->port(), "POST", "/v1/chat/completions",
                                       R"({"model":"chat","messages":[]})");
  EXPECT_EQ(overflow.status, 503) << overflow.body;
  EXPECT_EQ(limit_hits("max_held_requests_per_deployment"), 1);
  held.join();
}

TEST_F(LimitsTest, ClientWriteTimeoutReleasesBackend) {
  // A long stream with no pause, to a client that reads nothing.
  start(limits_config("  client_write_timeout: 300ms\n", R"(["--tokens", "1000000"])"));
  ASSERT_EQ(http_request(gateway_->port(), "POST", "/v1/chat/completions",
                         R"({"model":"chat","messages":[],"max_tokens":1})")
                .status,
            200);
  std::uint16_t backend = backend_port(0);
  ASSERT_NE(backend, 0);

  RawClient stalled(gateway_->port(), 4096);
  stalled.send(chat_request(R"("stream":true)"));

  EXPECT_TRUE(wait_until([&] { return limit_hits("client_write_timeout") >= 1; }, 20s))
      << gateway_->metrics();
  EXPECT_EQ(metric_value(gateway_->metrics(),
                         R"(modelgate_requests_dropped_total{deployment="chat",reason="client_write_timeout"})"),
            1);
  EXPECT_TRUE(wait_until(
      [&] {
        json stats = json::parse(http_request(backend, "GET", "/stub/stats").body);
        return stats["cancelled_streams"] == 1;
      },
      10s))
      << "the backend kept streaming for a client that stopped reading";
}

TEST_F(LimitsTest, MaxStreamDurationEndsLongStream) {
  // 100 events 50 ms apart take 5 s; the limit ends the stream after 600 ms.
  start(limits_config("  max_stream_duration: 600ms\n",
                      R"(["--token-interval", "50", "--tokens", "100"])"));

  RawClient client(gateway_->port());
  auto began = std::chrono::steady_clock::now();
  client.send(chat_request(R"("stream":true)"));
  std::string received = client.read_until_closed(20s);
  auto took = std::chrono::steady_clock::now() - began;

  EXPECT_TRUE(client.closed()) << "the gateway did not close the connection";
  EXPECT_NE(received.find("200 OK"), std::string::npos) << received;
  EXPECT_NE(received.find("data: {"), std::string::npos) << received;
  EXPECT_EQ(received.find("data: [DONE]"), std::string::npos)
      << "the stream ran to its end despite max_stream_duration";
  EXPECT_EQ(received.find("\r\n0\r\n\r\n"), std::string::npos)
      << "the cut response must not end like a complete one";
  EXPECT_LT(took, 4s);
  EXPECT_EQ(limit_hits("max_stream_duration"), 1);
  EXPECT_EQ(metric_value(gateway_->metrics(),
                         R"(modelgate_requests_dropped_total{deployment="chat",reason="max_stream_duration"})"),
            1);
}

TEST_F(LimitsTest, MaxUpstreamConnectionsQueuesRequests) {
  // One connection to the instance: a second request waits for the first
  // stream (20 events 50 ms apart) to end, then is served on it.
  start(limits_config("  max_upstream_connections: 1\n",
                      R"(["--token-interval", "50", "--tokens", "20"])"));
  ASSERT_EQ(http_request(gateway_->port(), "POST", "/v1/chat/completions",
                         R"({"model":"chat","messages":[],"max_tokens":1})")
                .status,
            200);

  RawClient streaming(gateway_->port());
  streaming.send(chat_request(R"("stream":true)"));
  ASSERT_NE(streaming.read_for(10s).find("200 OK"), std::string::npos);

  std::atomic<int> queued_status{0};
  std::thread queued([&] {
    queued_status = http_request(gateway_->port(), "POST", "/v1/chat/completions",
                                 R"({"model":"chat","messages":[],"max_tokens":1})")
                        .status;
  });
  EXPECT_TRUE(wait_until([&] {
    return metric_value(gateway_->metrics(), "modelgate_upstream_waiting_requests") == 1;
  })) << gateway_->metrics();

  std::string rest = streaming.read_until_closed(2s);
  queued.join();
  EXPECT_EQ(queued_status.load(), 200);
  EXPECT_EQ(limit_hits("max_upstream_connections"), 1) << "counted when the wait ends";
  EXPECT_EQ(metric_value(gateway_->metrics(), "modelgate_upstream_waiting_requests"), 0);
}

TEST_F(LimitsTest, BodyAndHeaderLimitsAreCounted) {
  start(limits_config("  max_body_size: 1KiB\n  max_header_size: 2KiB\n"));

  std::string large(2000, 'x');
  HttpResponse body = http_request(gateway_->port(), "POST", "/v1/chat/completions",
                                   R"({"model":"chat","messages":[],"pad":")" + large + "\"}");
  EXPECT_EQ(body.status, 413) << body.body;
  HttpResponse header = http_request(gateway_->port(), "GET", "/v1/models", {},
                                     {{"X-Padding", std::string(3000, 'y')}});
  EXPECT_EQ(header.status, 431) << header.body;

  EXPECT_EQ(limit_hits("max_body_size"), 1);
  EXPECT_EQ(limit_hits("max_header_size"), 1);
}

TEST_F(LimitsTest, HeaderTimeoutIsCounted) {
  start(limits_config("  header_timeout: 200ms\n"));

  RawClient slow(gateway_->port());
  slow.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n");
  std::string received = slow.read_until_closed(10s);
  EXPECT_TRUE(slow.closed()) << "a client that never finished its head kept its connection";
  EXPECT_EQ(limit_hits("header_timeout"), 1);
}

}  // namespace
}  // namespace modelgate::testing
