#pragma once

// The Runtime interface: how an instance's backend is started and stopped.
// The `process` runtime runs local child processes; the `docker` runtime
// runs containers through the Docker Engine API.

#include "routing/asio_prelude.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "launcher/instance_log.hpp"

namespace modelgate::launcher {

struct LaunchSpec {
  std::string instance_id;
  std::string deployment;
  std::vector<std::string> argv;  // rendered; never given to a shell
  // The process runtime adds `env` to the gateway's environment; a
  // container gets `env` alone.
  std::map<std::string, std::string> env;
  std::filesystem::path log_file;
  std::size_t log_lines = 200;
  std::uint16_t port = 0;  // {{port}}
  // The deployment's startup_timeout. A container runtime ends an image
  // pull that takes longer.
  std::chrono::milliseconds startup_timeout = std::chrono::minutes(10);

  // Container runtimes only.
  std::string image_name;
  std::size_t entrypoint_words = 0;  // leading words of argv from the entrypoint
  std::string model_path;            // mounted read-only when it exists
  std::string framework;             // custom_framework: cuda, rocm, cpu, ...
  std::string pull_policy;           // always, if-not-present or never
};

struct ExitStatus {
  int code = 0;    // valid when signal == 0
  int signal = 0;  // the signal that killed the process, or 0

  // "exit code 3" or "killed by signal 6 (SIGABRT)".
  std::string describe() const;
};

// A started backend. All members run on the executor given to
// Runtime::start(), normally a deployment's strand.
class RuntimeInstance {
 public:
  virtual ~RuntimeInstance() = default;

  // "pid 1234" or "container 3f2a...": for logs and the admin API.
  virtual std::string describe() const = 0;

  virtual bool exited() const = 0;
  virtual ExitStatus exit_status() const = 0;
  // Returns true once the backend has exited, or false after `timeout`.
  virtual awaitable<bool> wait_exit(std::chrono::steady_clock::duration timeout) = 0;
  // Returns once the captured output has ended, or after `timeout`.
  virtual awaitable<void> wait_output_closed(std::chrono::steady_clock::duration timeout) = 0;

  // Asks the backend to stop (SIGTERM), forces it (SIGKILL) after `grace`,
  // and returns once it has exited.
  virtual awaitable<void> stop(std::chrono::steady_clock::duration grace) = 0;

  virtual InstanceLog& log() = 0;
};

struct StartResult {
  // Null on failure. Shared, because the instance's own coroutines keep it
  // alive until they end, after the launcher lets go of it.
  std::shared_ptr<RuntimeInstance> instance;
  std::string error;  // why it failed, for the operator and held requests
};

// A backend that an earlier run of the gateway started and did not stop,
// because it was killed with SIGKILL. Only container runtimes find them:
// the process guard ends local backends together with the gateway.
struct LeftBehind {
  std::string runtime_id;  // the container id
  std::string instance_id;
  std::string deployment;
  std::string worker;
  std::uint16_t port = 0;
  bool running = false;
  // The runtime's record of the spec it was started from, compared on
  // adoption.
  std::string spec_fingerprint;
};

struct LeftBehindList {
  std::vector<LeftBehind> found;
  std::string error;  // why the search failed; `found` is then empty
};

class Runtime {
 public:
  virtual ~Runtime() = default;
  virtual awaitable<StartResult> start(const LaunchSpec& spec,
                                       asio::any_io_executor executor) = 0;

  // Lists the backends that an earlier run of this gateway left behind.
  virtual awaitable<LeftBehindList> find_left_behind() { co_return LeftBehindList{}; }
  // Lists the backends that the gateway `gateway_id` started, which another
  // gateway may adopt when that one died. Process backends die with their
  // gateway, so the default finds none.
  virtual awaitable<LeftBehindList> find_backends_of(std::string /*gateway_id*/) {
    co_return LeftBehindList{};
  }
  // Takes over a running backend that was started from `spec`. Fails when
  // it was started from another spec (the config changed) or does not run.
  virtual awaitable<StartResult> adopt(const LeftBehind& /*found*/, const LaunchSpec& /*spec*/,
                                       asio::any_io_executor /*executor*/) {
    co_return StartResult{nullptr, "this runtime cannot adopt instances"};
  }
  // Stops and removes a backend that is not adopted. Returns why that
  // failed, or an empty string.
  virtual awaitable<std::string> remove_left_behind(const LeftBehind& /*found*/) {
    co_return std::string();
  }
};

}  // namespace modelgate::launcher
