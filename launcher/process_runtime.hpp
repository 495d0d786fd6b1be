#pragma once

// The `process` runtime: each instance is a local child process in a process
// group of its own, with stdout and stderr captured into its InstanceLog.

#include "launcher/runtime.hpp"

namespace modelgate::launcher {

class ProcessGuard;

class ProcessRuntime final : public Runtime {
 public:
  // `guard` may be null (unit tests); then a gateway killed with SIGKILL
  // leaves its backends running.
  explicit ProcessRuntime(ProcessGuard* guard) : guard_(guard) {}

  awaitable<StartResult> start(const LaunchSpec& spec,
                               asio::any_io_executor executor) override;

 private:
  ProcessGuard* guard_;
};

}  // namespace modelgate::launcher
