#pragma once

// Pieces that every mode of modelgate-bench-client shares: the options, the
// request text, clocks and the key=value result line.

#include "routing/asio_prelude.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

namespace modelgate::bench_client {

namespace asio = boost::asio;
using tcp = boost::asio::ip::tcp;
using error_code = boost::system::error_code;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string mode;
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::string model = "bench";
  int tokens = 5;          // max_tokens of each chat completion
  int count = 1;           // requests or streams, one after the other
  int connections = 1000;  // flood and idle: connections opened at once
  int connect_batch = 500; // flood and idle: connects in progress at most
  std::chrono::milliseconds timeout{60'000};  // upper bound of the whole mode
  std::chrono::microseconds poll_interval{200};  // spawn-health
  std::string health_path = "/v1/models";       // spawn-health
  std::vector<std::string> command;              // spawn-health: argv
};

// The text of one POST /v1/chat/completions request with a small body.
std::string chat_request(const Options& options, bool stream);

// The text of GET `path` with Connection: close.
std::string get_request(const Options& options, std::string_view path);

std::int64_t microseconds_between(Clock::time_point from, Clock::time_point to);

// Nanoseconds of the steady clock since its epoch, comparable with the
// stub's ": sent_ns=N" stamps (both are CLOCK_MONOTONIC on Linux).
std::int64_t steady_nanoseconds(Clock::time_point time);

// Returns the value at quantile `q` (0 to 1) of `values`, sorting them;
// 0 for none.
double quantile(std::vector<double>& values, double q);

// Prints "MODE key=value ..." on stdout and flushes, so that a script that
// waits for the line sees it at once.
void print_result(std::string_view mode,
                  const std::vector<std::pair<std::string, std::string>>& fields);

// Modes. Each returns the process exit code: 0 when every request got the
// expected response, 1 otherwise.
int run_free_port(const Options& options);
int run_request(const Options& options);
int run_stream(const Options& options);
int run_spawn_health(const Options& options);
int run_flood(const Options& options);
int run_idle(const Options& options);

}  // namespace modelgate::bench_client
