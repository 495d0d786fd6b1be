#pragma once

// Command-line options of the stub backend.

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace modelgate::stub {

// Limits for --tokens and max_tokens, and for --dimensions and dimensions.
inline constexpr int kMaxTokens = 1'000'000;
inline constexpr int kMaxDimensions = 65'536;

struct Options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0 lets the kernel pick a free port
  std::string model = "stub";

  // Time after listening during which every endpoint except /stub/stats
  // returns 503.
  std::chrono::milliseconds startup_delay{0};
  // Time between start-up and listening.
  std::chrono::milliseconds listen_delay{0};

  int tokens = 16;  // completion tokens when the request sets no max_tokens
  std::chrono::milliseconds token_interval{0};  // between streamed chunks
  // Precede each streamed event with the comment line ": sent_ns=N", where N
  // is the steady clock (CLOCK_MONOTONIC on Linux) in nanoseconds just before
  // the event is written. Benchmarks subtract it from the arrival time.
  bool event_timestamps = false;
  int dimensions = 8;  // embedding size when the request sets no dimensions

  std::optional<int> exit_code;  // exit with this code instead of listening
  bool crash_on_start = false;   // abort() instead of listening
  std::string record_file;       // receives "PID PORT\n" once listening
  // When set, every endpoint except /health and /stub/stats needs
  // `Authorization: Bearer api_key`, as vLLM's --api-key does.
  std::string api_key;
  // Closes a connection that sends no request for this long. Zero: never.
  std::chrono::milliseconds keep_alive_timeout{0};

  int threads = 1;
  std::string log_level = "info";
};

// Raised for an invalid command line. what() names the option and the value.
class OptionsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses the command line. Returns std::nullopt when --help was given, after
// printing the help text to stdout. Throws OptionsError for unknown options,
// a missing --port or a value out of range.
std::optional<Options> parse_options(int argc, char** argv);

}  // namespace modelgate::stub
