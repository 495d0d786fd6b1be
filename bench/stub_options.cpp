#include "bench/stub_options.hpp"

#include <cstdint>
#include <iostream>
#include <limits>
#include <string>

#include <boost/program_options.hpp>
#include <fmt/format.h>

namespace modelgate::stub {
namespace {

namespace po = boost::program_options;

// Largest accepted delay or interval: one day, in milliseconds.
constexpr std::int64_t kMaxMilliseconds = 24LL * 3600 * 1000;

// Returns the value of `name` after checking that it lies in [min, max].
// The values are read as std::int64_t because program_options would wrap a
// negative number given for an unsigned type.
std::int64_t checked_value(const po::variables_map& values, const char* name,
                           std::int64_t min, std::int64_t max) {
  const auto value = values[name].as<std::int64_t>();
  if (value < min || value > max) {
    throw OptionsError(fmt::format("invalid value {} for --{}: expected {} to {}",
                                   value, name, min, max));
  }
  return value;
}

std::chrono::milliseconds checked_milliseconds(const po::variables_map& values,
                                               const char* name) {
  return std::chrono::milliseconds(
      checked_value(values, name, 0, kMaxMilliseconds));
}

bool is_log_level(const std::string& name) {
  for (const char* level : {"trace", "debug", "info", "warn", "error", "off"}) {
    if (name == level) {
      return true;
    }
  }
  return false;
}

po::options_description describe_options() {
  po::options_description description(
      "modelgate-stub: a small OpenAI-compatible HTTP server for tests and "
      "benchmarks\n\nOptions");

  // clang-format off
  description.add_options()
    ("help,h", "print this help and exit")
    ("host", po::value<std::string>()->default_value("127.0.0.1"),
     "address or host name to listen on")
    ("port", po::value<std::int64_t>()->required(),
     "TCP port to listen on (required, 0 lets the kernel pick one)")
    ("model", po::value<std::string>()->default_value("stub"),
     "model id listed by /v1/models and returned as `model` in every response")
    ("startup-delay", po::value<std::int64_t>()->default_value(0),
     "milliseconds after listening during which every endpoint except "
     "/stub/stats returns 503 (the model is loading)")
    ("listen-delay", po::value<std::int64_t>()->default_value(0),
     "milliseconds to wait before listening; --exit-on-start and "
     "--crash-on-start take effect after this wait")
    ("tokens", po::value<std::int64_t>()->default_value(16),
     "tokens per completion when the request sets no max_tokens")
    ("token-interval", po::value<std::int64_t>()->default_value(0),
     "milliseconds between streamed chunks")
    ("event-timestamps", po::bool_switch(),
     "precede each streamed event with the SSE comment line "
     "\": sent_ns=N\", N being the steady clock in nanoseconds when the event "
     "is written")
    ("dimensions", po::value<std::int64_t>()->default_value(8),
     "embedding size when the request sets no dimensions")
    ("exit-on-start", po::value<std::int64_t>(),
     "exit with this code (0 to 255) instead of listening")
    ("crash-on-start", po::bool_switch(),
     "call abort() instead of listening, so the process ends by SIGABRT")
    ("record", po::value<std::string>(),
     "file to append the line \"PID PORT\" to once listening")
    ("keep-alive-timeout", po::value<std::int64_t>()->default_value(0),
     "milliseconds after which a connection without a request is closed; 0 "
     "keeps it open")
    ("api-key", po::value<std::string>(),
     "require \"Authorization: Bearer KEY\" on every endpoint except /health "
     "and /stub/stats")
    ("threads", po::value<std::int64_t>()->default_value(1),
     "number of I/O threads")
    ("log-level", po::value<std::string>()->default_value("info"),
     "minimum level of log lines on stderr: trace, debug, info, warn, error "
     "or off");
  // clang-format on

  return description;
}

}  // namespace

std::optional<Options> parse_options(int argc, char** argv) {
  const po::options_description description = describe_options();

  // Parse, and report program_options' own errors (unknown option, missing
  // --port, a value that is not a number) as OptionsError.
  po::variables_map values;
  try {
    po::store(po::parse_command_line(argc, argv, description), values);
    if (values.count("help") != 0) {
      std::cout << description << '\n';
      return std::nullopt;
    }
    po::notify(values);
  } catch (const po::error& error) {
    throw OptionsError(error.what());
  }

  Options options;
  options.host = values["host"].as<std::string>();
  options.port = static_cast<std::uint16_t>(
      checked_value(values, "port", 0, std::numeric_limits<std::uint16_t>::max()));
  options.model = values["model"].as<std::string>();
  if (options.model.empty()) {
    throw OptionsError("invalid value for --model: the model id must not be empty");
  }

  options.startup_delay = checked_milliseconds(values, "startup-delay");
  options.listen_delay = checked_milliseconds(values, "listen-delay");
  options.token_interval = checked_milliseconds(values, "token-interval");
  options.keep_alive_timeout = checked_milliseconds(values, "keep-alive-timeout");
  options.event_timestamps = values["event-timestamps"].as<bool>();

  options.tokens = static_cast<int>(checked_value(values, "tokens", 1, kMaxTokens));
  options.dimensions =
      static_cast<int>(checked_value(values, "dimensions", 1, kMaxDimensions));
  options.threads = static_cast<int>(checked_value(values, "threads", 1, 256));

  if (values.count("exit-on-start") != 0) {
    options.exit_code =
        static_cast<int>(checked_value(values, "exit-on-start", 0, 255));
  }
  options.crash_on_start = values["crash-on-start"].as<bool>();
  if (values.count("record") != 0) {
    options.record_file = values["record"].as<std::string>();
  }
  if (values.count("api-key") != 0) {
    options.api_key = values["api-key"].as<std::string>();
  }
  options.log_level = values["log-level"].as<std::string>();
  if (!is_log_level(options.log_level)) {
    throw OptionsError(fmt::format(
        "invalid value '{}' for --log-level: expected trace, debug, info, "
        "warn, error or off",
        options.log_level));
  }

  return options;
}

}  // namespace modelgate::stub
