#pragma once

// The Runtime interface: how an instance's backend is started and stopped.
// The `process` runtime runs local child processes; container runtimes
// implement the same interface.

#include "routing/asio_prelude.hpp"

#include <chrono>
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
  std::map<std::string, std::string> env;  // added to the gateway's environment
  std::string image_name;  // container runtimes only
  std::filesystem::path log_file;
  std::size_t log_lines = 200;
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
  std::unique_ptr<RuntimeInstance> instance;  // null on failure
  std::string error;  // why it failed, for the operator and held requests
};

class Runtime {
 public:
  virtual ~Runtime() = default;
  virtual awaitable<StartResult> start(const LaunchSpec& spec,
                                       asio::any_io_executor executor) = 0;
};

}  // namespace modelgate::launcher
