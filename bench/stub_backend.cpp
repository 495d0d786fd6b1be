// modelgate-stub: a small, fast OpenAI-compatible HTTP server that the demo,
// the tests and the benchmarks use as a model backend. Run it with --help for
// its options.
//
// Endpoints (HTTP/1.1 with keep-alive and pipelining, JSON bodies):
//   GET  /health               {"status":"ok"}
//   GET  /v1/models            a list with the --model id
//   GET  /v1/models/ID         the model, or 404 model_not_found
//   POST /v1/chat/completions  "tok0 tok1 ..." with --tokens tokens, or with
//                              max_tokens, as server-sent events with "stream"
//   POST /v1/completions       the same as a text_completion
//   POST /v1/embeddings        unit vectors derived from each input, with
//                              --dimensions or "dimensions" components, as
//                              floats or as base64 ("encoding_format")
//   GET  /stub/stats           {"requests", "active_streams",
//                              "completed_streams", "cancelled_streams"}
//
// Every response carries X-Stub-Pid, and X-Stub-Request-Id with the request's
// X-Request-Id. Errors have the OpenAI body {"error": {"message", "type",
// "code"}}. The request body is parsed once. The request's model is not
// checked, because every response names --model.

#include <sys/resource.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "bench/stub_asio.hpp"
#include "bench/stub_options.hpp"
#include "bench/stub_server.hpp"

namespace {

using namespace modelgate::stub;

// Appends "PID PORT\n" to `path` with one write(2), so that lines from
// several processes that share the file do not interleave. Returns an empty
// string on success, otherwise the error.
std::string append_record(const std::string& path, std::uint16_t port) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                        0644);
  if (fd < 0) {
    return std::strerror(errno);
  }

  const std::string line = fmt::format("{} {}\n", ::getpid(), port);
  const auto written = ::write(fd, line.data(), line.size());
  const int write_errno = errno;
  ::close(fd);
  if (written != static_cast<ssize_t>(line.size())) {
    return written < 0 ? std::strerror(write_errno) : "short write";
  }
  return {};
}

[[noreturn]] void crash() {
  std::fputs("stub backend: crashing on start as requested\n", stderr);

  // A crash that a test requests needs no core file.
  const rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);

  // As PID 1 of a container the process ignores SIGABRT, so abort() (glibc
  // 2.36 in Debian 12) ends with a crash instruction that raises SIGSEGV.
  // The default action ends the process by that signal. AddressSanitizer's
  // handler would instead report a SEGV and exit with code 1, hiding the
  // message above.
  std::signal(SIGSEGV, SIG_DFL);
  std::abort();
}

std::shared_ptr<spdlog::logger> make_logger(const std::string& level) {
  auto logger = spdlog::stderr_logger_mt("stub");
  logger->set_level(spdlog::level::from_str(level));
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l stub backend: %v");
  return logger;
}

int serve(const Options& options) {
  auto logger = make_logger(options.log_level);
  asio::io_context io(options.threads);
  Server server(io, options, logger);

  // Listen.
  try {
    server.listen();
  } catch (const boost::system::system_error& error) {
    std::fprintf(stderr, "stub backend: cannot listen on %s port %u: %s\n",
                 options.host.c_str(), static_cast<unsigned>(options.port),
                 error.what());
    return 1;
  }

  // Announce: the record file first, then the line that a reader of stdout
  // waits for.
  if (!options.record_file.empty()) {
    const std::string error = append_record(options.record_file, server.local_port());
    if (!error.empty()) {
      std::fprintf(stderr, "stub backend: cannot append to record file %s: %s\n",
                   options.record_file.c_str(), error.c_str());
      return 1;
    }
  }
  std::printf("stub backend listening on %s model %s\n",
              server.local_address().c_str(), options.model.c_str());
  std::fflush(stdout);

  // Serve until SIGINT or SIGTERM.
  server.start();
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const error_code& ec, int signal_number) {
    if (ec) {
      return;
    }
    // Stopping the io_context abandons open connections and streams, and
    // the sockets close when the process exits.
    logger->info("stopping on signal {}", signal_number);
    io.stop();
  });

  std::vector<std::thread> threads;
  for (int i = 1; i < options.threads; ++i) {
    threads.emplace_back([&io] { io.run(); });
  }
  io.run();
  for (std::thread& thread : threads) {
    thread.join();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<Options> parsed;
  try {
    parsed = parse_options(argc, argv);
  } catch (const OptionsError& error) {
    std::fprintf(stderr,
                 "stub backend: %s\nRun modelgate-stub --help for the "
                 "options.\n",
                 error.what());
    return 2;
  }
  if (!parsed) {
    return 0;
  }
  const Options& options = *parsed;

  // NOTE: SIGTERM during --listen-delay ends the process by the default
  // action, because the signal handler is installed only after the delay.
  if (options.listen_delay.count() > 0) {
    std::this_thread::sleep_for(options.listen_delay);
  }

  if (options.exit_code) {
    std::fprintf(stderr, "stub backend: exiting with code %d as requested\n",
                 *options.exit_code);
    return *options.exit_code;
  }
  if (options.crash_on_start) {
    crash();
  }

  try {
    return serve(options);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "stub backend: %s\n", error.what());
    return 1;
  }
}
