#include "launcher/process_runtime.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace modelgate::launcher {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Lines = std::vector<std::string>;

LaunchSpec shell_spec(std::string script) {
  LaunchSpec spec;
  spec.instance_id = "test-instance";
  spec.deployment = "test";
  spec.argv = {"/bin/sh", "-c", std::move(script)};
  return spec;
}

bool contains(const Lines& lines, std::string_view line) {
  for (const std::string& candidate : lines) {
    if (candidate == line) {
      return true;
    }
  }
  return false;
}

std::string joined(const Lines& lines) {
  std::string text;
  for (const std::string& line : lines) {
    text += "[" + line + "] ";
  }
  return text;
}

std::optional<pid_t> parse_pid(std::string_view text) {
  pid_t pid = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), pid);
  if (error != std::errc() || end != text.data() + text.size() || pid <= 0) {
    return std::nullopt;
  }
  return pid;
}

// Whether no live process has this id: it is gone, or it is a zombie that
// only waits for its parent to reap it.
bool process_gone(pid_t pid) {
  if (::kill(pid, 0) != 0) {
    return errno == ESRCH;
  }
  std::ifstream stat_file("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  std::size_t name_end = stat.rfind(')');
  return name_end != std::string::npos && name_end + 2 < stat.size() &&
         stat[name_end + 2] == 'Z';
}

// Checks `condition` every 10 ms until it is true or `timeout` passes.
awaitable<bool> poll_until(std::function<bool()> condition, Clock::duration timeout) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  Clock::time_point deadline = Clock::now() + timeout;
  for (;;) {
    if (condition()) {
      co_return true;
    }
    if (Clock::now() >= deadline) {
      co_return false;
    }
    timer.expires_after(10ms);
    co_await timer.async_wait(asio::use_awaitable);
  }
}

// Waits until the instance has written at least one line, and returns the
// first one, or nothing after `timeout`.
awaitable<std::optional<std::string>> first_line(RuntimeInstance& instance,
                                                 Clock::duration timeout) {
  bool written = co_await poll_until(
      [&instance] { return !instance.log().last_lines(1000).empty(); }, timeout);
  if (!written) {
    co_return std::nullopt;
  }
  co_return instance.log().last_lines(1000).front();
}

class ProcessRuntimeTest : public ::testing::Test {
 protected:
  using Scenario = std::function<awaitable<void>(asio::any_io_executor)>;

  // Runs `scenario` on a strand of io_ until it returns or `timeout` passes.
  // Returns whether it returned.
  bool run(Scenario scenario, Clock::duration timeout = 20s) {
    auto finished = std::make_shared<bool>(false);
    auto strand = asio::make_strand(io_);
    asio::co_spawn(
        strand,
        [scenario, finished, strand]() -> awaitable<void> {
          co_await scenario(strand);
          *finished = true;
        },
        asio::detached);

    Clock::time_point deadline = Clock::now() + timeout;
    while (!*finished && io_.run_one_until(deadline) > 0) {
    }
    return *finished;
  }

  // Starts `spec` and remembers the child's process id for TearDown().
  awaitable<StartResult> start(const LaunchSpec& spec, asio::any_io_executor executor) {
    StartResult result = co_await runtime_.start(spec, executor);
    if (result.instance) {
      std::string described = result.instance->describe();
      std::optional<pid_t> pid = parse_pid(std::string_view(described).substr(4));
      if (pid) {
        started_.push_back(*pid);
      }
    }
    co_return result;
  }

  // Kills what a failed test left running, then lets the instances' own
  // coroutines reap the children.
  void TearDown() override {
    for (pid_t pid : started_) {
      if (!process_gone(pid)) {
        ::kill(-pid, SIGKILL);
      }
    }
    io_.restart();
    io_.run_for(5s);
  }

  asio::io_context io_;
  ProcessRuntime runtime_{nullptr};
  std::vector<pid_t> started_;
};

TEST_F(ProcessRuntimeTest, ReportsExitCodeAndOutput) {
  bool exited = false;
  ExitStatus status;
  Lines lines;

  bool finished = run([&](asio::any_io_executor executor) -> awaitable<void> {
    StartResult result =
        co_await start(shell_spec("echo hello; echo err >&2; exit 3"), executor);
    if (!result.instance) {
      ADD_FAILURE() << "start failed: " << result.error;
      co_return;
    }
    exited = co_await result.instance->wait_exit(10s);
    co_await result.instance->wait_output_closed(10s);
    status = result.instance->exit_status();
    lines = result.instance->log().last_lines(10);
    EXPECT_TRUE(result.instance->exited()) << "exited() after wait_exit";
  });

  ASSERT_TRUE(finished) << "the scenario did not finish within 20 s";
  EXPECT_TRUE(exited) << "wait_exit(10 s) for a process that exits at once";
  EXPECT_EQ(status.code, 3) << "exit code";
  EXPECT_EQ(status.signal, 0) << "signal";
  EXPECT_EQ(status.describe(), "exit code 3") << "describe()";
  EXPECT_TRUE(contains(lines, "hello")) << "stdout line in " << joined(lines);
  EXPECT_TRUE(contains(lines, "err")) << "stderr line in " << joined(lines);
}

TEST_F(ProcessRuntimeTest, ReportsKillingSignal) {
  bool exited = false;
  ExitStatus status;

  bool finished = run([&](asio::any_io_executor executor) -> awaitable<void> {
    StartResult result = co_await start(shell_spec("kill -USR1 $$"), executor);
    if (!result.instance) {
      ADD_FAILURE() << "start failed: " << result.error;
      co_return;
    }
    exited = co_await result.instance->wait_exit(10s);
    status = result.instance->exit_status();
  });

  ASSERT_TRUE(finished) << "the scenario did not finish within 20 s";
  EXPECT_TRUE(exited) << "wait_exit(10 s) for a process that kills itself";
  EXPECT_EQ(status.signal, SIGUSR1) << "signal";
  EXPECT_EQ(status.describe(), "killed by signal " + std::to_string(SIGUSR1) + " (SIGUSR1)")
      << "describe()";
}

TEST_F(ProcessRuntimeTest, StopEndsSleepingProcess) {
  std::optional<pid_t> pid;
  bool exited_early = true;
  bool exited = false;
  ExitStatus status;
  Clock::duration stop_time{};
  std::string described;

  bool finished = run([&](asio::any_io_executor executor) -> awaitable<void> {
    StartResult result = co_await start(shell_spec("echo $$; exec sleep 100"), executor);
    if (!result.instance) {
      ADD_FAILURE() << "start failed: " << result.error;
      co_return;
    }
    RuntimeInstance& instance = *result.instance;
    std::optional<std::string> line = co_await first_line(instance, 10s);
    pid = parse_pid(line.value_or(""));
    described = instance.describe();
    exited_early = co_await instance.wait_exit(100ms);

    Clock::time_point before = Clock::now();
    co_await instance.stop(5s);
    stop_time = Clock::now() - before;
    exited = instance.exited();
    status = instance.exit_status();
  });

  ASSERT_TRUE(finished) << "the scenario did not finish within 20 s";
  ASSERT_TRUE(pid.has_value()) << "the child printed no process id";
  EXPECT_EQ(described, "pid " + std::to_string(*pid)) << "describe()";
  EXPECT_FALSE(exited_early) << "wait_exit(100 ms) on a sleeping process";
  EXPECT_TRUE(exited) << "exited() after stop()";
  EXPECT_EQ(status.signal, SIGTERM) << "signal after stop(); " << status.describe();
  EXPECT_LT(stop_time, 5s) << "stop() waited for the grace period despite SIGTERM";
  errno = 0;
  EXPECT_EQ(::kill(*pid, 0), -1) << "process " << *pid << " still exists after stop()";
  EXPECT_EQ(errno, ESRCH) << "errno of kill(" << *pid << ", 0)";
}

TEST_F(ProcessRuntimeTest, ChildLeadsItsOwnProcessGroup) {
  std::optional<pid_t> pid;
  pid_t group = -1;

  bool finished = run([&](asio::any_io_executor executor) -> awaitable<void> {
    StartResult result = co_await start(shell_spec("echo $$; exec sleep 100"), executor);
    if (!result.instance) {
      ADD_FAILURE() << "start failed: " << result.error;
      co_return;
    }
    std::optional<std::string> line = co_await first_line(*result.instance, 10s);
    pid = parse_pid(line.value_or(""));
    if (pid) {
      group = ::getpgid(*pid);
    }
    co_await result.instance->stop(5s);
  });

  ASSERT_TRUE(finished) << "the scenario did not finish within 20 s";
  ASSERT_TRUE(pid.has_value()) << "the child printed no process id";
  EXPECT_EQ(group, *pid) << "process group of child " << *pid;
  EXPECT_NE(group, ::getpgrp()) << "the child shares the test's process group";
}

TEST_F(ProcessRuntimeTest, StopKillsProcessIgnoringTerm) {
  bool ready = false;
  bool exited = false;
  ExitStatus status;
  Clock::duration stop_time{};

  bool finished = run([&](asio::any_io_executor executor) -> awaitable<void> {
    StartResult result =
        co_await start(shell_spec("trap '' TERM; echo ready; sleep 100"), executor);
    if (!result.instance) {
      ADD_FAILURE() << "start failed: " << result.error;
      co_return;
    }
    RuntimeInstance& instance = *result.instance;
    // Only after "ready" is SIGTERM ignored.
    std::optional<std::string> line = co_await first_line(instance, 10s);
    ready = line == "ready";

    Clock::time_point before = Clock::now();
    co_await instance.stop(200ms);
    stop_time = Clock::now() - before;
    exited = instance.exited();
    status = instance.exit_status();
  });

  ASSERT_TRUE(finished) << "the scenario did not finish within 20 s";
  ASSERT_TRUE(ready) << "the child never printed ready";
  EXPECT_TRUE(exited) << "exited() after stop()";
  EXPECT_EQ(status.signal, SIGKILL) << "signal after stop(); " << status.describe();
  EXPECT_GE(stop_time, 200ms) << "stop() returned before the 200 ms grace period";
  EXPECT_LT(stop_time, 10s) << "stop() took "
                            << std::chrono::duration_cast<std::chrono::milliseconds>(stop_time)
                                   .count()
                            << " ms";
}

TEST_F(ProcessRuntimeTest, StopEndsGrandchild) {
  std::optional<pid_t> child;
  std::optional<pid_t> grandchild;
  pid_t grandchild_group = -1;
  bool alive_before_stop = false;
  bool gone_after_stop = false;

  bool finished = run([&](asio::any_io_executor executor) -> awaitable<void> {
    StartResult result = co_await start(shell_spec("sleep 100 & echo $!; wait"), executor);
    if (!result.instance) {
      ADD_FAILURE() << "start failed: " << result.error;
      co_return;
    }
    RuntimeInstance& instance = *result.instance;
    std::string described = instance.describe();
    child = parse_pid(std::string_view(described).substr(4));
    std::optional<std::string> line = co_await first_line(instance, 10s);
    grandchild = parse_pid(line.value_or(""));
    if (!grandchild) {
      co_await instance.stop(5s);
      co_return;
    }
    grandchild_group = ::getpgid(*grandchild);
    alive_before_stop = !process_gone(*grandchild);

    co_await instance.stop(5s);
    pid_t watched = *grandchild;
    gone_after_stop = co_await poll_until([watched] { return process_gone(watched); }, 5s);
  });

  ASSERT_TRUE(finished) << "the scenario did not finish within 20 s";
  ASSERT_TRUE(child.has_value()) << "describe() named no process id";
  ASSERT_TRUE(grandchild.has_value()) << "the child printed no process id";
  EXPECT_EQ(grandchild_group, *child) << "process group of grandchild " << *grandchild;
  EXPECT_TRUE(alive_before_stop) << "grandchild " << *grandchild << " before stop()";
  EXPECT_TRUE(gone_after_stop) << "grandchild " << *grandchild << " 5 s after stop()";
}

TEST_F(ProcessRuntimeTest, ExitKillsLeftoverGrandchild) {
  std::optional<pid_t> grandchild;
  bool exited = false;
  bool grandchild_gone = false;

  bool finished = run([&](asio::any_io_executor executor) -> awaitable<void> {
    // The shell exits at once and leaves sleep behind in its group.
    StartResult result = co_await start(shell_spec("sleep 100 & echo $!"), executor);
    if (!result.instance) {
      ADD_FAILURE() << "start failed: " << result.error;
      co_return;
    }
    std::optional<std::string> line = co_await first_line(*result.instance, 10s);
    grandchild = parse_pid(line.value_or(""));
    exited = co_await result.instance->wait_exit(10s);
    if (grandchild) {
      pid_t watched = *grandchild;
      grandchild_gone = co_await poll_until([watched] { return process_gone(watched); }, 5s);
    }
  });

  ASSERT_TRUE(finished) << "the scenario did not finish within 20 s";
  ASSERT_TRUE(grandchild.has_value()) << "the child printed no process id";
  EXPECT_TRUE(exited) << "wait_exit(10 s)";
  EXPECT_TRUE(grandchild_gone) << "grandchild " << *grandchild << " 5 s after its parent exited";
  if (!grandchild_gone) {
    ::kill(*grandchild, SIGKILL);
  }
}

TEST_F(ProcessRuntimeTest, StopAfterExitReturnsAtOnce) {
  ExitStatus status;
  Clock::duration stop_time{};

  bool finished = run([&](asio::any_io_executor executor) -> awaitable<void> {
    StartResult result = co_await start(shell_spec("exit 7"), executor);
    if (!result.instance) {
      ADD_FAILURE() << "start failed: " << result.error;
      co_return;
    }
    co_await result.instance->wait_exit(10s);

    Clock::time_point before = Clock::now();
    co_await result.instance->stop(5s);
    stop_time = Clock::now() - before;
    status = result.instance->exit_status();
  });

  ASSERT_TRUE(finished) << "the scenario did not finish within 20 s";
  EXPECT_EQ(status.code, 7) << "exit code after stop() of an exited process";
  EXPECT_LT(stop_time, 1s) << "stop() of an exited process";
}

TEST_F(ProcessRuntimeTest, MissingExecutableNamesPath) {
  const std::string path = "/nonexistent/modelgate-no-such-program";
  StartResult result;

  bool finished = run([&](asio::any_io_executor executor) -> awaitable<void> {
    LaunchSpec spec;
    spec.argv = {path, "--port", "1"};
    result = co_await start(spec, executor);
  });

  ASSERT_TRUE(finished) << "the scenario did not finish within 20 s";
  EXPECT_EQ(result.instance, nullptr) << "instance for a missing executable";
  EXPECT_NE(result.error.find(path), std::string::npos) << "error: " << result.error;
}

TEST_F(ProcessRuntimeTest, UnknownCommandNamesIt) {
  const std::string name = "modelgate-no-such-command-on-path";
  StartResult result;

  bool finished = run([&](asio::any_io_executor executor) -> awaitable<void> {
    LaunchSpec spec;
    spec.argv = {name};
    result = co_await start(spec, executor);
  });

  ASSERT_TRUE(finished) << "the scenario did not finish within 20 s";
  EXPECT_EQ(result.instance, nullptr) << "instance for a command not on PATH";
  EXPECT_NE(result.error.find(name), std::string::npos) << "error: " << result.error;
}

TEST_F(ProcessRuntimeTest, EmptyArgvIsError) {
  StartResult result;

  bool finished = run([&](asio::any_io_executor executor) -> awaitable<void> {
    LaunchSpec spec;
    result = co_await start(spec, executor);
  });

  ASSERT_TRUE(finished) << "the scenario did not finish within 20 s";
  EXPECT_EQ(result.instance, nullptr) << "instance for an empty argv";
  EXPECT_FALSE(result.error.empty()) << "error for an empty argv";
}

TEST_F(ProcessRuntimeTest, PassesEnvironment) {
  ASSERT_EQ(::setenv("MODELGATE_TEST_INHERITED", "from-parent", 1), 0);
  ASSERT_EQ(::setenv("MODELGATE_TEST_OVERRIDE", "parent", 1), 0);
  Lines lines;

  bool finished = run([&](asio::any_io_executor executor) -> awaitable<void> {
    LaunchSpec spec = shell_spec(
        "echo \"value=$MODELGATE_TEST_VALUE\"; "
        "echo \"override=$MODELGATE_TEST_OVERRIDE\"; "
        "echo \"inherited=$MODELGATE_TEST_INHERITED\"; "
        "echo \"override_count=$(env | grep -c '^MODELGATE_TEST_OVERRIDE=')\"");
    spec.env = {{"MODELGATE_TEST_VALUE", "forty two"}, {"MODELGATE_TEST_OVERRIDE", "child"}};
    StartResult result = co_await start(spec, executor);
    if (!result.instance) {
      ADD_FAILURE() << "start failed: " << result.error;
      co_return;
    }
    co_await result.instance->wait_exit(10s);
    co_await result.instance->wait_output_closed(10s);
    lines = result.instance->log().last_lines(10);
  });
  ::unsetenv("MODELGATE_TEST_INHERITED");
  ::unsetenv("MODELGATE_TEST_OVERRIDE");

  ASSERT_TRUE(finished) << "the scenario did not finish within 20 s";
  EXPECT_TRUE(contains(lines, "value=forty two")) << "added variable in " << joined(lines);
  EXPECT_TRUE(contains(lines, "override=child")) << "overridden variable in " << joined(lines);
  EXPECT_TRUE(contains(lines, "inherited=from-parent"))
      << "inherited variable in " << joined(lines);
  EXPECT_TRUE(contains(lines, "override_count=1"))
      << "copies of the overridden variable in " << joined(lines);
}

TEST_F(ProcessRuntimeTest, StdinIsDevNull) {
  bool cat_exited = false;
  ExitStatus cat_status;
  Lines lines;

  bool finished = run([&](asio::any_io_executor executor) -> awaitable<void> {
    // cat reads stdin to its end: it exits at once only if stdin is empty.
    LaunchSpec cat_spec;
    cat_spec.argv = {"cat"};
    StartResult cat = co_await start(cat_spec, executor);
    if (!cat.instance) {
      ADD_FAILURE() << "start failed: " << cat.error;
      co_return;
    }
    cat_exited = co_await cat.instance->wait_exit(5s);
    cat_status = cat.instance->exit_status();
    if (!cat_exited) {
      co_await cat.instance->stop(1s);
    }

    LaunchSpec readlink_spec;
    readlink_spec.argv = {"readlink", "/proc/self/fd/0"};
    StartResult readlink = co_await start(readlink_spec, executor);
    if (!readlink.instance) {
      ADD_FAILURE() << "start failed: " << readlink.error;
      co_return;
    }
    co_await readlink.instance->wait_exit(10s);
    co_await readlink.instance->wait_output_closed(10s);
    lines = readlink.instance->log().last_lines(10);
  });

  ASSERT_TRUE(finished) << "the scenario did not finish within 20 s";
  EXPECT_TRUE(cat_exited) << "cat still runs after 5 s";
  EXPECT_EQ(cat_status.code, 0) << "cat " << cat_status.describe();
  EXPECT_EQ(lines, Lines{"/dev/null"}) << "stdin of the child";
}

TEST_F(ProcessRuntimeTest, ChildGetsOnlyStandardDescriptors) {
  Lines lines;

  bool finished = run([&](asio::any_io_executor executor) -> awaitable<void> {
    // The shell lists its own descriptors. ls is not the last command, so
    // the shell runs it as a child instead of replacing itself with it.
    StartResult result = co_await start(shell_spec("ls /proc/$$/fd; exit 0"), executor);
    if (!result.instance) {
      ADD_FAILURE() << "start failed: " << result.error;
      co_return;
    }
    co_await result.instance->wait_exit(10s);
    co_await result.instance->wait_output_closed(10s);
    lines = result.instance->log().last_lines(100);
  });

  ASSERT_TRUE(finished) << "the scenario did not finish within 20 s";
  EXPECT_EQ(lines, (Lines{"0", "1", "2"})) << "descriptors of the child";
}

// Returns the mask of a "SigIgn:" or "SigBlk:" line from /proc/PID/status
// restricted to the standard signals 1-31, or nothing when the line is
// missing. glibc 2.36's posix_spawn leaves its internal signals 32 and 33
// ignored in every child, so the test cannot expect those bits to be clear.
std::optional<unsigned long long> standard_signal_mask(const Lines& lines,
                                                       std::string_view prefix) {
  for (const std::string& line : lines) {
    if (line.rfind(prefix, 0) != 0) {
      continue;
    }
    std::string_view hex = std::string_view(line).substr(prefix.size());
    unsigned long long mask = 0;
    auto [end, error] = std::from_chars(hex.data(), hex.data() + hex.size(), mask, 16);
    if (error != std::errc()) {
      return std::nullopt;
    }
    return mask & 0x7fffffffULL;
  }
  return std::nullopt;
}

TEST_F(ProcessRuntimeTest, ChildGetsDefaultSignalHandling) {
  Lines lines;
  struct sigaction previous {};
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGPIPE, &ignore, &previous), 0);

  bool finished = run([&](asio::any_io_executor executor) -> awaitable<void> {
    // No shell: a shell blocks signals while it waits for a command.
    LaunchSpec spec;
    spec.argv = {"grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status"};
    StartResult result = co_await start(spec, executor);
    if (!result.instance) {
      ADD_FAILURE() << "start failed: " << result.error;
      co_return;
    }
    co_await result.instance->wait_exit(10s);
    co_await result.instance->wait_output_closed(10s);
    lines = result.instance->log().last_lines(10);
  });
  ::sigaction(SIGPIPE, &previous, nullptr);

  ASSERT_TRUE(finished) << "the scenario did not finish within 20 s";
  std::optional<unsigned long long> ignored = standard_signal_mask(lines, "SigIgn:\t");
  std::optional<unsigned long long> blocked = standard_signal_mask(lines, "SigBlk:\t");
  ASSERT_TRUE(ignored.has_value()) << "no SigIgn line in " << joined(lines);
  ASSERT_TRUE(blocked.has_value()) << "no SigBlk line in " << joined(lines);
  EXPECT_EQ(*ignored, 0u) << "ignored signals of the child, with SIGPIPE ignored in the parent: "
                          << joined(lines);
  EXPECT_EQ(*blocked, 0u) << "blocked signals of the child: " << joined(lines);
}

TEST_F(ProcessRuntimeTest, WritesLogFile) {
  std::string pattern =
      (std::filesystem::temp_directory_path() / "modelgate-process-log-XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr) << "mkdtemp " << pattern;
  std::filesystem::path directory = pattern;
  std::filesystem::path file = directory / "instance.log";
  Lines lines;

  bool finished = run([&](asio::any_io_executor executor) -> awaitable<void> {
    LaunchSpec spec = shell_spec("for i in 1 2 3 4 5; do echo line $i; done");
    spec.log_file = file;
    spec.log_lines = 2;
    StartResult result = co_await start(spec, executor);
    if (!result.instance) {
      ADD_FAILURE() << "start failed: " << result.error;
      co_return;
    }
    co_await result.instance->wait_exit(10s);
    co_await result.instance->wait_output_closed(10s);
    lines = result.instance->log().last_lines(10);
  });
  std::ifstream stream(file, std::ios::binary);
  std::ostringstream contents;
  contents << stream.rdbuf();
  std::error_code ignored;
  std::filesystem::remove_all(directory, ignored);

  ASSERT_TRUE(finished) << "the scenario did not finish within 20 s";
  EXPECT_EQ(lines, (Lines{"line 4", "line 5"})) << "lines in memory with log_lines 2";
  EXPECT_EQ(contents.str(), "line 1\nline 2\nline 3\nline 4\nline 5\n") << "log file contents";
}

TEST(ExitStatus, DescribesCodeAndSignal) {
  EXPECT_EQ((ExitStatus{0, 0}).describe(), "exit code 0");
  EXPECT_EQ((ExitStatus{3, 0}).describe(), "exit code 3");
  EXPECT_EQ((ExitStatus{0, SIGKILL}).describe(), "killed by signal 9 (SIGKILL)");
  EXPECT_EQ((ExitStatus{0, SIGABRT}).describe(), "killed by signal 6 (SIGABRT)");
}

}  // namespace
}  // namespace modelgate::launcher
