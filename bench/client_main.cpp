// modelgate-bench-client: the load and timing client of the benchmark
// harness (bench/run.sh). Run it with --help for its modes and options.
//
// Every mode prints one result line "MODE key=value ..." on stdout. Times are
// in microseconds unless the key names another unit. Errors go to stderr.

#include "bench/client_common.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <iostream>
#include <limits>

#include <boost/program_options.hpp>
#include <fmt/format.h>

namespace modelgate::bench_client {

std::string chat_request(const Options& options, bool stream) {
  std::string body = fmt::format(
      R"({{"model":"{}","messages":[{{"role":"user","content":"Hello"}}],"max_tokens":{}{}}})",
      options.model, options.tokens, stream ? R"(,"stream":true)" : "");
  return fmt::format(
      "POST /v1/chat/completions HTTP/1.1\r\n"
      "Host: {}:{}\r\n"
      "Content-Type: application/json\r\n"
      "Content-Length: {}\r\n"
      "\r\n"
      "{}",
      options.host, options.port, body.size(), body);
}

std::string get_request(const Options& options, std::string_view path) {
  return fmt::format("GET {} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\n\r\n", path,
                     options.host, options.port);
}

std::int64_t microseconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::microseconds>(to - from).count();
}

std::int64_t steady_nanoseconds(Clock::time_point time) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count();
}

double quantile(std::vector<double>& values, double q) {
  if (values.empty()) {
    return 0;
  }
  std::sort(values.begin(), values.end());
  auto index = static_cast<std::size_t>(std::ceil(q * static_cast<double>(values.size())));
  index = std::clamp<std::size_t>(index, 1, values.size());
  return values[index - 1];
}

void print_result(std::string_view mode,
                  const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string line(mode);
  for (const auto& [key, value] : fields) {
    line += ' ';
    line += key;
    line += '=';
    line += value;
  }
  line += '\n';
  std::fputs(line.c_str(), stdout);
  std::fflush(stdout);
}

}  // namespace modelgate::bench_client

namespace {

namespace po = boost::program_options;
using namespace modelgate::bench_client;

constexpr const char* kModes =
    "Modes:\n"
    "  free-port       print --count free TCP ports on 127.0.0.1, one per line\n"
    "  request         send --count chat completions on one connection; time to\n"
    "                  the first byte and total time of the first one\n"
    "  stream          send --count streamed chat completions one after the\n"
    "                  other; time to the first event, gap between events, and\n"
    "                  delivery delay of events stamped by the stub's\n"
    "                  --event-timestamps\n"
    "  spawn-health    start the command after --, poll its health path until\n"
    "                  it returns 2xx, time one chat completion, stop it\n"
    "  flood           open --connections connections, send one chat completion\n"
    "                  on each, and count the responses\n"
    "  idle            like flood, then keep the connections open and idle until\n"
    "                  SIGTERM or --timeout-ms\n";

po::options_description describe_options(Options& options, std::int64_t& timeout_ms,
                                         std::int64_t& poll_us, int& port) {
  po::options_description description(
      "modelgate-bench-client MODE [options] [-- COMMAND...]\n\nOptions");
  // clang-format off
  description.add_options()
    ("help,h", "print this help and exit")
    ("host", po::value(&options.host)->default_value(options.host),
     "server address")
    ("port", po::value(&port)->default_value(0), "server port")
    ("model", po::value(&options.model)->default_value(options.model),
     "`model` of each chat completion")
    ("tokens", po::value(&options.tokens)->default_value(options.tokens),
     "`max_tokens` of each chat completion")
    ("count", po::value(&options.count)->default_value(options.count),
     "requests, streams or ports, one after the other")
    ("connections", po::value(&options.connections)->default_value(options.connections),
     "flood and idle: number of connections")
    ("connect-batch", po::value(&options.connect_batch)->default_value(options.connect_batch),
     "flood and idle: maximum connects in progress at once")
    ("timeout-ms", po::value(&timeout_ms)->default_value(60'000),
     "upper bound of the whole run, in milliseconds")
    ("poll-interval-us", po::value(&poll_us)->default_value(200),
     "spawn-health: pause between health checks, in microseconds")
    ("health-path", po::value(&options.health_path)->default_value(options.health_path),
     "spawn-health: path that returns 2xx once the backend is ready");
  // clang-format on
  return description;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  std::int64_t timeout_ms = 0;
  std::int64_t poll_us = 0;
  int port = 0;
  po::options_description description = describe_options(options, timeout_ms, poll_us, port);

  // Words after "--" are the command of spawn-health.
  int own_argc = argc;
  for (int index = 1; index < argc; ++index) {
    if (std::string_view(argv[index]) == "--") {
      own_argc = index;
      options.command.assign(argv + index + 1, argv + argc);
      break;
    }
  }

  po::options_description hidden;
  hidden.add_options()("mode", po::value(&options.mode));
  po::options_description all;
  all.add(description).add(hidden);
  po::positional_options_description positional;
  positional.add("mode", 1);

  po::variables_map values;
  try {
    po::store(
        po::command_line_parser(own_argc, argv).options(all).positional(positional).run(),
        values);
    po::notify(values);
  } catch (const po::error& error) {
    std::cerr << "modelgate-bench-client: " << error.what() << "\n";
    return 2;
  }
  if (values.count("help") != 0 || options.mode.empty()) {
    std::cout << description << "\n" << kModes;
    return options.mode.empty() && values.count("help") == 0 ? 2 : 0;
  }
  if (port < 0 || port > std::numeric_limits<std::uint16_t>::max() || options.count < 1 ||
      options.connections < 1 || options.connect_batch < 1 || options.tokens < 1 ||
      timeout_ms < 1 || poll_us < 1) {
    std::cerr << "modelgate-bench-client: --port must be 0 to 65535, and --count, "
                 "--connections, --connect-batch, --tokens, --timeout-ms and "
                 "--poll-interval-us at least 1\n";
    return 2;
  }
  options.port = static_cast<std::uint16_t>(port);
  options.timeout = std::chrono::milliseconds(timeout_ms);
  options.poll_interval = std::chrono::microseconds(poll_us);

  try {
    if (options.mode == "free-port") {
      return run_free_port(options);
    }
    if (options.mode == "request") {
      return run_request(options);
    }
    if (options.mode == "stream") {
      return run_stream(options);
    }
    if (options.mode == "spawn-health") {
      return run_spawn_health(options);
    }
    if (options.mode == "flood") {
      return run_flood(options);
    }
    if (options.mode == "idle") {
      return run_idle(options);
    }
  } catch (const std::exception& error) {
    std::cerr << "modelgate-bench-client " << options.mode << ": " << error.what() << "\n";
    return 1;
  }
  std::cerr << "modelgate-bench-client: unknown mode '" << options.mode << "'\n\n" << kModes;
  return 2;
}
