#include "launcher/process_guard.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <set>
#include <string>
#include <system_error>
#include <thread>

namespace modelgate::launcher {
namespace {

bool any_alive(const std::set<pid_t>& groups) {
  for (pid_t group : groups) {
    if (::kill(-group, 0) == 0) {
      return true;
    }
  }
  return false;
}

void signal_all(const std::set<pid_t>& groups, int signal_number) {
  for (pid_t group : groups) {
    ::kill(-group, signal_number);
  }
}

// The guard process: reads "+PGID\n" and "-PGID\n" lines until end of file.
[[noreturn]] void run_guard(int read_fd, std::chrono::milliseconds grace) {
  // Ctrl-C in a terminal reaches the whole foreground process group; the
  // guard must outlive the gateway, so it leaves the group and ignores it.
  ::setpgid(0, 0);
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  ::prctl(PR_SET_NAME, "modelgate-guard", 0, 0, 0);

  std::set<pid_t> groups;
  std::string pending;
  char buffer[512];
  for (;;) {
    ssize_t count = ::read(read_fd, buffer, sizeof buffer);
    if (count < 0 && errno == EINTR) {
      continue;
    }
    if (count <= 0) {
      break;
    }
    pending.append(buffer, static_cast<std::size_t>(count));

    std::size_t newline;
    while ((newline = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, newline);
      pending.erase(0, newline + 1);
      if (line.size() < 2) {
        continue;
      }
      pid_t group = static_cast<pid_t>(std::stol(line.substr(1)));
      if (line[0] == '+') {
        groups.insert(group);
      } else {
        groups.erase(group);
      }
    }
  }

  // The gateway is gone: stop what it left behind.
  if (!groups.empty()) {
    std::fprintf(stderr, "modelgate-guard: gateway exited, stopping %zu backend process group(s)\n",
                 groups.size());
    signal_all(groups, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + grace;
    while (any_alive(groups) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    signal_all(groups, SIGKILL);
  }
  ::_exit(0);
}

}  // namespace

std::unique_ptr<ProcessGuard> ProcessGuard::start(std::chrono::milliseconds grace) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw std::system_error(errno, std::generic_category(), "cannot create the process guard's pipe");
  }

  pid_t pid = ::fork();
  if (pid < 0) {
    int error = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    throw std::system_error(error, std::generic_category(), "cannot fork the process guard");
  }
  if (pid == 0) {
    ::close(fds[1]);
    run_guard(fds[0], grace);
  }

  ::close(fds[0]);
  return std::unique_ptr<ProcessGuard>(new ProcessGuard(fds[1], pid));
}

ProcessGuard::~ProcessGuard() {
  // Closing the pipe tells the guard to clean up and exit; reaping it keeps
  // no zombie behind.
  ::close(write_fd_);
  ::waitpid(pid_, nullptr, 0);
}

void ProcessGuard::watch(pid_t process_group) { send('+', process_group); }

void ProcessGuard::unwatch(pid_t process_group) { send('-', process_group); }

void ProcessGuard::send(char operation, pid_t process_group) {
  std::string line = operation + std::to_string(process_group) + "\n";
  std::lock_guard lock(mutex_);
  // Lines are far shorter than PIPE_BUF, so each write is atomic. A failed
  // write means the guard died; the gateway still stops its backends itself.
  [[maybe_unused]] ssize_t written = ::write(write_fd_, line.data(), line.size());
}

}  // namespace modelgate::launcher
