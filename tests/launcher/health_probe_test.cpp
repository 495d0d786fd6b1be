#include "launcher/health_probe.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace modelgate::launcher {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using tcp = asio::ip::tcp;

std::string response_text(int status, std::string_view reason, std::string_view body = "ok") {
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
         "\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + std::string(body);
}

// A loopback HTTP server that sends the n-th canned response on the n-th
// connection and then closes it. An empty canned response closes the
// connection without sending anything.
class CannedServer {
 public:
  CannedServer(asio::io_context& io, std::vector<std::string> responses,
               const char* address = "127.0.0.1")
      : acceptor_(io, tcp::endpoint(asio::ip::make_address(address), 0)),
        responses_(std::move(responses)),
        requests_(std::make_shared<std::vector<std::string>>()) {}

  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  const std::vector<std::string>& requests() const { return *requests_; }

  void start() {
    asio::co_spawn(acceptor_.get_executor(), serve(acceptor_, responses_, requests_),
                   asio::detached);
  }

 private:
  static awaitable<void> serve(tcp::acceptor& acceptor, std::vector<std::string> responses,
                               std::shared_ptr<std::vector<std::string>> requests) {
    for (const std::string& response : responses) {
      boost::system::error_code error;
      tcp::socket socket = co_await acceptor.async_accept(
          asio::redirect_error(asio::use_awaitable, error));
      if (error) {
        co_return;
      }

      std::string request;
      co_await asio::async_read_until(socket, asio::dynamic_buffer(request), "\r\n\r\n",
                                      asio::redirect_error(asio::use_awaitable, error));
      requests->push_back(request);
      if (!response.empty()) {
        co_await asio::async_write(socket, asio::buffer(response),
                                   asio::redirect_error(asio::use_awaitable, error));
      }
      socket.shutdown(tcp::socket::shutdown_both, error);
    }
  }

  tcp::acceptor acceptor_;
  std::vector<std::string> responses_;
  std::shared_ptr<std::vector<std::string>> requests_;
};

class HealthProbeTest : public ::testing::Test {
 protected:
  // Runs one probe on io_ and returns its result. The test fails when the
  // probe does not return within 10 s.
  HealthResult probe(const std::string& host, std::uint16_t port, const std::string& path,
                     std::chrono::milliseconds timeout = 2000ms) {
    auto result = std::make_shared<HealthResult>();
    auto finished = std::make_shared<bool>(false);
    asio::co_spawn(
        io_,
        [=]() -> awaitable<void> {
          *result = co_await probe_health(host, port, path, timeout);
          *finished = true;
        },
        asio::detached);

    Clock::time_point deadline = Clock::now() + 10s;
    while (!*finished && io_.run_one_until(deadline) > 0) {
    }
    EXPECT_TRUE(*finished) << "probe_health did not return within 10 s";
    return *result;
  }

  asio::io_context io_;
};

TEST_F(HealthProbeTest, HealthyOn200) {
  CannedServer server(io_, {response_text(200, "OK")});
  server.start();

  HealthResult result = probe("127.0.0.1", server.port(), "/v1/models");

  EXPECT_TRUE(result.healthy) << "healthy for 200";
  EXPECT_EQ(result.status, 200) << "status";
  EXPECT_EQ(result.error, "") << "error";
  ASSERT_EQ(server.requests().size(), 1u) << "requests the server received";
  const std::string& request = server.requests()[0];
  EXPECT_EQ(request.rfind("GET /v1/models HTTP/1.1\r\n", 0), 0u) << "request: " << request;
  std::string host_field = "Host: 127.0.0.1:" + std::to_string(server.port()) + "\r\n";
  EXPECT_NE(request.find(host_field), std::string::npos) << "request: " << request;
}

TEST_F(HealthProbeTest, HealthyThenUnhealthy) {
  CannedServer server(io_, {response_text(200, "OK"),
                            response_text(503, "Service Unavailable", "loading")});
  server.start();

  HealthResult first = probe("127.0.0.1", server.port(), "/health");
  HealthResult second = probe("127.0.0.1", server.port(), "/health");

  EXPECT_TRUE(first.healthy) << "healthy for the first answer, 200";
  EXPECT_EQ(first.status, 200) << "status of the first answer";
  EXPECT_FALSE(second.healthy) << "healthy for the second answer, 503";
  EXPECT_EQ(second.status, 503) << "status of the second answer";
  EXPECT_EQ(second.error, "") << "error for a 503 answer";
}

TEST_F(HealthProbeTest, HealthyOnlyFor2xx) {
  struct StatusCase {
    int status;
    const char* reason;
    bool healthy;
  };
  const std::vector<StatusCase> cases = {
      {200, "OK", true},           {201, "Created", true},
      {204, "No Content", true},   {299, "Whatever", true},
      {301, "Moved", false},       {404, "Not Found", false},
      {500, "Server Error", false}, {503, "Unavailable", false},
  };
  std::vector<std::string> responses;
  for (const StatusCase& status_case : cases) {
    std::string_view body = status_case.status == 204 ? "" : "ok";
    responses.push_back(response_text(status_case.status, status_case.reason, body));
  }
  CannedServer server(io_, responses);
  server.start();

  for (const StatusCase& status_case : cases) {
    HealthResult result = probe("127.0.0.1", server.port(), "/health");

    EXPECT_EQ(result.status, status_case.status) << "status";
    EXPECT_EQ(result.healthy, status_case.healthy) << "healthy for " << status_case.status;
  }
}

TEST_F(HealthProbeTest, ClosedPortGivesError) {
  std::uint16_t port = 0;
  {
    tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = acceptor.local_endpoint().port();
  }

  HealthResult result = probe("127.0.0.1", port, "/health");

  EXPECT_FALSE(result.healthy) << "healthy for closed port " << port;
  EXPECT_EQ(result.status, 0) << "status for closed port " << port;
  EXPECT_NE(result.error, "") << "error for closed port " << port;
}

TEST_F(HealthProbeTest, SilentServerTimesOut) {
  // The kernel completes the connection from the backlog, but nothing ever
  // accepts it or sends a response.
  tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::uint16_t port = acceptor.local_endpoint().port();

  Clock::time_point before = Clock::now();
  HealthResult result = probe("127.0.0.1", port, "/health", 200ms);
  Clock::duration waited = Clock::now() - before;

  EXPECT_FALSE(result.healthy) << "healthy for a silent server";
  EXPECT_EQ(result.status, 0) << "status for a silent server";
  EXPECT_NE(result.error.find("timeout"), std::string::npos) << "error: " << result.error;
  EXPECT_GE(waited, 200ms) << "probe returned before its 200 ms timeout";
  EXPECT_LT(waited, 5s) << "probe with a 200 ms timeout";
}

TEST_F(HealthProbeTest, CloseWithoutAnswerGivesError) {
  CannedServer server(io_, {""});
  server.start();

  HealthResult result = probe("127.0.0.1", server.port(), "/health");

  EXPECT_FALSE(result.healthy) << "healthy for a server that closes without an answer";
  EXPECT_EQ(result.status, 0) << "status";
  EXPECT_NE(result.error, "") << "error";
}

TEST_F(HealthProbeTest, CutBodyStillCountsStatus) {
  CannedServer server(io_, {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"});
  server.start();

  HealthResult result = probe("127.0.0.1", server.port(), "/health");

  EXPECT_TRUE(result.healthy) << "healthy for a 200 with a cut body";
  EXPECT_EQ(result.status, 200) << "status";
}

TEST_F(HealthProbeTest, InvalidAddressGivesError) {
  HealthResult result = probe("not-an-address", 8000, "/health");

  EXPECT_FALSE(result.healthy);
  EXPECT_EQ(result.status, 0) << "status";
  EXPECT_EQ(result.error, "invalid address not-an-address") << "error";
}

TEST_F(HealthProbeTest, Ipv6HostFieldHasBrackets) {
  std::unique_ptr<CannedServer> server;
  try {
    server = std::make_unique<CannedServer>(io_, std::vector<std::string>{response_text(200, "OK")},
                                            "::1");
  } catch (const boost::system::system_error& error) {
    GTEST_SKIP() << "cannot listen on ::1: " << error.what();
  }
  server->start();

  HealthResult result = probe("::1", server->port(), "/health");

  EXPECT_TRUE(result.healthy) << "healthy on ::1; error: " << result.error;
  ASSERT_EQ(server->requests().size(), 1u) << "requests the server received";
  // Host carries the host of a URI, where an IPv6 literal is written in brackets.
  std::string host_field = "Host: [::1]:" + std::to_string(server->port()) + "\r\n";
  EXPECT_NE(server->requests()[0].find(host_field), std::string::npos)
      << "request: " << server->requests()[0];
}

}  // namespace
}  // namespace modelgate::launcher
