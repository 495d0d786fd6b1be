#include "launcher/process_runtime.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "launcher/event.hpp"
#include "launcher/process_guard.hpp"
#include "routing/logger.hpp"

extern char** environ;

namespace modelgate::launcher {
namespace {

using Duration = std::chrono::steady_clock::duration;

// How long stop() waits for the exit after SIGKILL before giving up. A
// process stuck in uninterruptible sleep can outlast it.
constexpr auto kKillWait = std::chrono::seconds(10);

std::vector<std::string> build_environment(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> result;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    std::string_view name = text.substr(0, text.find('='));
    if (extra.find(std::string(name)) == extra.end()) {
      result.emplace_back(text);
    }
  }
  for (const auto& [name, value] : extra) {
    result.push_back(name + "=" + value);
  }
  return result;
}

std::vector<char*> pointers_to(std::vector<std::string>& strings) {
  std::vector<char*> result;
  result.reserve(strings.size() + 1);
  for (std::string& text : strings) {
    result.push_back(text.data());
  }
  result.push_back(nullptr);
  return result;
}

class ProcessInstance final : public RuntimeInstance,
                              public std::enable_shared_from_this<ProcessInstance> {
 public:
  ProcessInstance(asio::any_io_executor executor, pid_t pid, int pid_fd, int output_fd,
                  const LaunchSpec& spec, ProcessGuard* guard)
      : executor_(executor),
        pid_(pid),
        pid_descriptor_(executor, pid_fd),
        output_(executor, output_fd),
        exited_(executor),
        output_closed_(executor),
        log_(spec.log_file, spec.log_lines),
        guard_(guard) {}

  void begin() {
    auto self = shared_from_this();
    asio::co_spawn(executor_, [self]() { return self->watch_exit(); }, asio::detached);
    asio::co_spawn(executor_, [self]() { return self->read_output(); }, asio::detached);
  }

  std::string describe() const override { return "pid " + std::to_string(pid_); }
  bool exited() const override { return exited_.is_set(); }
  ExitStatus exit_status() const override { return status_; }
  InstanceLog& log() override { return log_; }

  awaitable<bool> wait_exit(Duration timeout) override {
    co_return co_await exited_.wait_for(timeout);
  }

  awaitable<void> wait_output_closed(Duration timeout) override {
    co_await output_closed_.wait_for(timeout);
  }

  awaitable<void> stop(Duration grace) override {
    if (exited_.is_set()) {
      co_return;
    }
    ::kill(-pid_, SIGTERM);
    bool exited = co_await exited_.wait_for(grace);
    if (exited) {
      co_return;
    }

    component_logger("launcher")->warn("pid {} did not exit {} ms after SIGTERM; sending SIGKILL",
                                       pid_, std::chrono::duration_cast<std::chrono::milliseconds>(grace).count());
    ::kill(-pid_, SIGKILL);
    exited = co_await exited_.wait_for(kKillWait);
    if (!exited) {
      component_logger("launcher")->error("pid {} did not exit after SIGKILL", pid_);
    }
  }

 private:
  awaitable<void> watch_exit() {
    // A pidfd becomes readable when the process exits.
    boost::system::error_code error;
    co_await pid_descriptor_.async_wait(asio::posix::descriptor_base::wait_read,
                                        asio::redirect_error(asio::use_awaitable, error));

    // The leader is a zombie until reaped, so its process group id cannot be
    // reused yet: end whatever it left behind in the group, then reap it.
    ::kill(-pid_, SIGKILL);
    int raw_status = 0;
    pid_t reaped;
    do {
      reaped = ::waitpid(pid_, &raw_status, 0);
    } while (reaped < 0 && errno == EINTR);

    if (reaped == pid_ && WIFSIGNALED(raw_status)) {
      status_.signal = WTERMSIG(raw_status);
    } else if (reaped == pid_) {
      status_.code = WEXITSTATUS(raw_status);
    }
    if (guard_ != nullptr) {
      guard_->unwatch(pid_);
    }
    exited_.set();
  }

  awaitable<void> read_output() {
    char buffer[4096];
    for (;;) {
      boost::system::error_code error;
      std::size_t count = co_await output_.async_read_some(
          asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, error));
      if (count > 0) {
        log_.append(std::string_view(buffer, count));
      }
      if (error) {
        break;
      }
    }
    log_.finish();
    output_closed_.set();
  }

  asio::any_io_executor executor_;
  pid_t pid_;
  asio::posix::stream_descriptor pid_descriptor_;
  asio::posix::stream_descriptor output_;
  Event exited_;
  Event output_closed_;
  ExitStatus status_;
  InstanceLog log_;
  ProcessGuard* guard_;
};

}  // namespace

awaitable<StartResult> ProcessRuntime::start(const LaunchSpec& spec,
                                             asio::any_io_executor executor) {
  StartResult result;
  if (spec.argv.empty()) {
    result.error = "the run command is empty";
    co_return result;
  }

  int output_pipe[2];
  if (::pipe2(output_pipe, O_CLOEXEC) != 0) {
    result.error = std::string("cannot create an output pipe: ") + ::strerror(errno);
    co_return result;
  }

  // The child gets /dev/null as stdin, the pipe as stdout and stderr, no
  // other descriptor of the gateway, default signal handling, and a new
  // process group so that stop() reaches everything it starts.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, output_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, output_pipe[1], 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);

  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t no_signals;
  sigemptyset(&no_signals);
  sigset_t defaults;
  sigfillset(&defaults);
  posix_spawnattr_setsigmask(&attributes, &no_signals);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setpgroup(&attributes, 0);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                            POSIX_SPAWN_SETSIGDEF);

  std::vector<std::string> argv_strings = spec.argv;
  std::vector<char*> argv = pointers_to(argv_strings);
  std::vector<std::string> env_strings = build_environment(spec.env);
  std::vector<char*> envp = pointers_to(env_strings);

  pid_t pid = -1;
  int spawn_error = ::posix_spawnp(&pid, argv[0], &actions, &attributes, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  ::close(output_pipe[1]);

  if (spawn_error != 0) {
    ::close(output_pipe[0]);
    result.error = "cannot run '" + spec.argv[0] + "': " + ::strerror(spawn_error);
    co_return result;
  }
  if (guard_ != nullptr) {
    guard_->watch(pid);
  }

  int pid_fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pid_fd < 0) {
    int error = errno;
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    ::close(output_pipe[0]);
    result.error = std::string("pidfd_open failed: ") + ::strerror(error);
    co_return result;
  }
  ::fcntl(pid_fd, F_SETFD, FD_CLOEXEC);

  auto instance = std::make_shared<ProcessInstance>(executor, pid, pid_fd, output_pipe[0], spec, guard_);
  instance->begin();
  result.instance = std::move(instance);
  co_return result;
}

std::string ExitStatus::describe() const {
  if (signal != 0) {
    const char* name = ::sigabbrev_np(signal);
    return "killed by signal " + std::to_string(signal) +
           (name != nullptr ? std::string(" (SIG") + name + ")" : std::string());
  }
  return "exit code " + std::to_string(code);
}

}  // namespace modelgate::launcher
