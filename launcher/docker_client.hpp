#pragma once

// A client of the Docker Engine REST API, which Docker (20.10 and later) and
// Podman (4.x, `podman system service`) both serve. It connects over a unix
// socket, or over TCP with optional TLS and a client certificate, and sends
// every path under the pinned API version /v1.41. Each request uses a
// connection of its own, so that long requests (logs, wait) run beside
// short ones.

#include "routing/asio_prelude.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <boost/system/error_code.hpp>

namespace modelgate::launcher {

using EngineDuration = std::chrono::steady_clock::duration;

// The API version every request is sent under.
inline constexpr std::string_view kDockerApiVersion = "v1.41";

// The engine's address.
struct DockerEndpoint {
  std::string text;         // as configured, such as "unix:///var/run/docker.sock"
  std::string socket_path;  // set for unix://
  std::string host;         // set for tcp://
  std::uint16_t port = 0;
  // PEM files. TLS is used for tcp:// when any of them is set. Without a CA
  // file the system's trusted CAs verify the engine's certificate.
  std::filesystem::path tls_ca;
  std::filesystem::path tls_cert;
  std::filesystem::path tls_key;

  bool uses_tls() const { return !tls_ca.empty() || !tls_cert.empty() || !tls_key.empty(); }
};

// A whole response, or why none arrived.
struct DockerResponse {
  int status = 0;        // HTTP status; 0 when no response arrived
  std::string body;
  std::string error;     // the transport failure when status is 0

  bool ok() const { return status >= 200 && status < 300; }
  // The engine's `message` field for an error status, else the transport
  // error, else the body's start.
  std::string message() const;
};

// A response whose body is read as it arrives. Runs on the executor that
// opened it.
class DockerStream {
 public:
  class Impl;
  explicit DockerStream(std::unique_ptr<Impl> impl);
  ~DockerStream();

  int status() const;
  // Reads the next piece of the body into `buffer`. At the end of the body
  // returns 0 and sets `error` to one that is_end_of_body() accepts.
  awaitable<std::size_t> read_some(std::span<char> buffer, boost::system::error_code& error);
  // Reads the rest of the body, at most `max_bytes`.
  awaitable<std::string> read_rest(std::size_t max_bytes, boost::system::error_code& error);
  // Closes the connection; a pending read_some() completes with an error.
  void close();

 private:
  std::unique_ptr<Impl> impl_;
};

// Whether `error`, from DockerStream::read_some(), marks the end of the body.
bool is_end_of_body(const boost::system::error_code& error);

struct DockerStreamResult {
  std::shared_ptr<DockerStream> stream;  // null when no response head arrived
  std::string error;
};

class DockerClient {
 public:
  // Loads the TLS files. When one cannot be loaded, setup_error() returns
  // why, and every request fails with that reason.
  explicit DockerClient(DockerEndpoint endpoint);
  ~DockerClient();
  DockerClient(const DockerClient&) = delete;
  DockerClient& operator=(const DockerClient&) = delete;

  const DockerEndpoint& endpoint() const { return endpoint_; }
  const std::string& setup_error() const { return setup_error_; }

  // Describes a failed call for an error message: the transport error, or
  // "the container engine at ENDPOINT answered HTTP 404: MESSAGE".
  std::string describe_failure(const DockerResponse& response) const;

  // Sends `method target` (target without the version prefix, such as
  // "/containers/json?all=1"), with `body` as JSON when it is not empty, and
  // reads the whole response within `timeout`. Failures are returned in the
  // response, not thrown.
  awaitable<DockerResponse> call(std::string_view method, std::string target,
                                 std::string body = {},
                                 EngineDuration timeout = std::chrono::seconds(30));

  // Sends a request and returns once the response head arrived, within
  // `head_timeout`. The body has no deadline. Failures are returned in the
  // result, not thrown.
  awaitable<DockerStreamResult> open(std::string_view method, std::string target,
                                     std::string body, EngineDuration head_timeout);

 private:
  DockerEndpoint endpoint_;
  std::string setup_error_;
  struct TlsContext;
  std::unique_ptr<TlsContext> tls_;
};

}  // namespace modelgate::launcher
