#pragma once

// Makes sure local backends never outlive the gateway, even one killed with
// SIGKILL.
//
// start() forks a small guard process while the gateway is still single
// threaded. The gateway tells it each backend's process group through a
// pipe. When the pipe closes because the gateway exited for any reason, the
// guard sends SIGTERM to every process group still listed, SIGKILL after a
// grace period, and exits.

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <mutex>

namespace modelgate::launcher {

class ProcessGuard {
 public:
  // Forks the guard. Call before any thread is started. Throws
  // std::system_error when the pipe or the fork fails.
  static std::unique_ptr<ProcessGuard> start(std::chrono::milliseconds grace);

  ~ProcessGuard();
  ProcessGuard(const ProcessGuard&) = delete;
  ProcessGuard& operator=(const ProcessGuard&) = delete;

  // Adds or removes a process group. Thread-safe.
  void watch(pid_t process_group);
  void unwatch(pid_t process_group);

  pid_t pid() const { return pid_; }

 private:
  ProcessGuard(int write_fd, pid_t pid) : write_fd_(write_fd), pid_(pid) {}
  void send(char operation, pid_t process_group);

  int write_fd_;
  pid_t pid_;
  std::mutex mutex_;
};

}  // namespace modelgate::launcher
