#pragma once

// A private Podman engine for tests: `podman system service` serving the
// Docker Engine API on a unix socket in a temporary directory. It has its
// own storage and its own containers.conf (runc, cgroupfs, ulimits the
// machine allows). Its image is built from busybox and the stub backend, so
// no registry is needed.

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/process_harness.hpp"

namespace modelgate::testing {

struct EngineReply {
  int status = 0;
  std::string body;
};

class PodmanEngine {
 public:
  // The image that contains /usr/local/bin/modelgate-stub, busybox and
  // /etc/passwd. Its CMD is /bin/sh.
  static constexpr const char* kImage = "modelgate-test/stub:1";

  // Starts the service, waits for GET /_ping and imports the image. Throws
  // std::runtime_error naming the command and its output when a step fails.
  PodmanEngine();
  // Removes every container, stops the service by its PID and unmounts the
  // storage.
  ~PodmanEngine();
  PodmanEngine(const PodmanEngine&) = delete;
  PodmanEngine& operator=(const PodmanEngine&) = delete;

  const std::filesystem::path& socket_path() const { return socket_path_; }
  std::string endpoint() const { return "unix://" + socket_path_.string(); }
  const std::filesystem::path& dir() const { return dir_.path(); }

  // Sends one request under /v1.41 on a new connection.
  EngineReply request(const std::string& method, const std::string& target,
                      const std::string& body = {}) const;
  // Containers labelled `key=value`, running or not, as GET /containers/json
  // lists them.
  std::vector<nlohmann::json> containers(const std::string& key, const std::string& value) const;

 private:
  // Runs a podman command against this engine's storage; throws on failure.
  std::string podman(const std::vector<std::string>& arguments) const;
  void build_image();
  void unmount_storage() const;

  TempDir dir_;
  std::filesystem::path socket_path_;
  std::string podman_binary_;
  std::unique_ptr<ChildProcess> service_;
};

// Runs `argv` to completion within `timeout`, with stdout and stderr in
// `output`. Returns the exit code, or -1 when it did not exit in time.
int run_command(const std::vector<std::string>& argv, std::string& output,
                std::chrono::milliseconds timeout = 60s);

// The absolute path of `name` found in PATH, or "".
std::string find_program(const std::string& name);

}  // namespace modelgate::testing
