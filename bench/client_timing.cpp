// The modes that time one connection at a time, with blocking I/O so that a
// timestamp is taken right after the read that delivered the bytes:
// free-port, request, stream and spawn-health.

#include "bench/client_common.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <fmt/format.h>

extern char** environ;

namespace modelgate::bench_client {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;

constexpr std::uint64_t kMaxBodyBytes = 64 * 1024 * 1024;
constexpr std::size_t kReadBytes = 64 * 1024;

tcp::socket connect_to(asio::io_context& io, const Options& options) {
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(asio::ip::make_address(options.host), options.port));
  socket.set_option(tcp::no_delay(true));
  return socket;
}

// One request and its response: the status, and when the response's first
// and last bytes arrived.
struct Exchange {
  unsigned status = 0;
  Clock::time_point sent;
  Clock::time_point first_byte;
  Clock::time_point done;
  bool keep_alive = false;
};

// Writes `request` and reads the whole response. The first byte is timed
// by a plain read before the parser runs.
Exchange exchange(tcp::socket& socket, beast::flat_buffer& buffer, const std::string& request) {
  Exchange result;
  result.sent = Clock::now();
  asio::write(socket, asio::buffer(request));

  if (buffer.size() == 0) {
    std::size_t count = socket.read_some(buffer.prepare(kReadBytes));
    buffer.commit(count);
  }
  result.first_byte = Clock::now();

  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxBodyBytes);
  http::read(socket, buffer, parser);
  result.done = Clock::now();
  result.status = parser.get().result_int();
  result.keep_alive = parser.keep_alive();
  return result;
}

// Timings of one streamed completion.
struct StreamTimes {
  bool ok = false;
  double first_event_us = 0;
  double mean_gap_us = 0;       // between the arrivals of consecutive token events
  double mean_delivery_us = 0;  // arrival minus the stub's sent_ns stamp
  std::vector<double> deliveries;
  int events = 0;
  bool keep_alive = false;
};

// Parses the value of a ": sent_ns=N" line inside one event, if any.
std::optional<std::int64_t> sent_stamp(std::string_view event) {
  constexpr std::string_view kKey = ": sent_ns=";
  std::size_t at = event.find(kKey);
  if (at == std::string_view::npos) {
    return std::nullopt;
  }
  const char* first = event.data() + at + kKey.size();
  std::int64_t value = 0;
  auto [end, error] = std::from_chars(first, event.data() + event.size(), value);
  if (error != std::errc() || end == first) {
    return std::nullopt;
  }
  return value;
}

StreamTimes read_stream(tcp::socket& socket, beast::flat_buffer& buffer,
                        const std::string& request, int tokens) {
  StreamTimes times;
  Clock::time_point sent = Clock::now();
  asio::write(socket, asio::buffer(request));

  http::response_parser<http::buffer_body> parser;
  parser.body_limit(kMaxBodyBytes);
  http::read_header(socket, buffer, parser);
  if (parser.get().result_int() != 200) {
    std::cerr << "stream: HTTP " << parser.get().result_int() << "\n";
    return times;
  }

  // Split the decoded body into events at blank lines; each event gets the
  // time of the read that completed it.
  std::vector<char> chunk(kReadBytes);
  std::string pending;
  std::vector<Clock::time_point> arrivals;
  bool done_seen = false;
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    error_code error;
    http::read_some(socket, buffer, parser, error);
    Clock::time_point now = Clock::now();
    if (error && error != http::error::need_buffer) {
      throw std::runtime_error("stream broke off: " + error.message());
    }
    pending.append(chunk.data(), chunk.size() - parser.get().body().size);

    for (std::size_t end = pending.find("\n\n"); end != std::string::npos;
         end = pending.find("\n\n")) {
      std::string_view event(pending.data(), end);
      arrivals.push_back(now);
      if (auto stamp = sent_stamp(event)) {
        times.deliveries.push_back(
            static_cast<double>(steady_nanoseconds(now) - *stamp) / 1000.0);
      }
      done_seen = done_seen || event.find("data: [DONE]") != std::string_view::npos;
      pending.erase(0, end + 2);
    }
  }

  times.events = static_cast<int>(arrivals.size());
  times.keep_alive = parser.keep_alive();
  if (!done_seen || times.events < tokens) {
    std::cerr << "stream: " << times.events << " events without data: [DONE], expected at least "
              << tokens << "\n";
    return times;
  }

  times.first_event_us = static_cast<double>(microseconds_between(sent, arrivals.front()));
  if (tokens > 1) {
    times.mean_gap_us = static_cast<double>(microseconds_between(
                            arrivals.front(), arrivals[static_cast<std::size_t>(tokens) - 1])) /
                        (tokens - 1);
  }
  double total = 0;
  for (double delivery : times.deliveries) {
    total += delivery;
  }
  times.mean_delivery_us =
      times.deliveries.empty() ? 0 : total / static_cast<double>(times.deliveries.size());
  times.ok = true;
  return times;
}

// Sends GET health_path on a new connection. Returns the status, or 0 when
// the connection was refused or broke off.
unsigned check_health(asio::io_context& io, const Options& options) {
  error_code error;
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(asio::ip::make_address(options.host), options.port), error);
  if (error) {
    return 0;
  }
  asio::write(socket, asio::buffer(get_request(options, options.health_path)), error);
  if (error) {
    return 0;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  http::read(socket, buffer, parser, error);
  if (error && !parser.is_header_done()) {
    return 0;
  }
  return parser.get().result_int();
}

// Stops a child with SIGTERM, and with SIGKILL after five seconds.
void stop_child(pid_t pid) {
  ::kill(pid, SIGTERM);
  Clock::time_point deadline = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
}

pid_t spawn(const std::vector<std::string>& command) {
  std::vector<char*> argv;
  for (const std::string& word : command) {
    argv.push_back(const_cast<char*>(word.c_str()));
  }
  argv.push_back(nullptr);

  // The child's own output would mix with the result line.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  int error = ::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) {
    throw std::runtime_error("cannot start " + command.front() + ": " + std::strerror(error));
  }
  return pid;
}

std::string format_us(double value) { return fmt::format("{:.1f}", value); }

}  // namespace

int run_free_port(const Options& options) {
  // All sockets stay bound until every port is read, so the ports differ.
  asio::io_context io;
  std::vector<tcp::acceptor> acceptors;
  for (int index = 0; index < options.count; ++index) {
    acceptors.emplace_back(io, tcp::endpoint(asio::ip::make_address(options.host), 0));
  }
  for (tcp::acceptor& acceptor : acceptors) {
    std::cout << acceptor.local_endpoint().port() << "\n";
  }
  return 0;
}

int run_request(const Options& options) {
  asio::io_context io;
  tcp::socket socket = connect_to(io, options);
  beast::flat_buffer buffer;
  std::string request = chat_request(options, false);

  Exchange first;
  int ok = 0;
  for (int index = 0; index < options.count; ++index) {
    Exchange result = exchange(socket, buffer, request);
    if (index == 0) {
      first = result;
    }
    ok += result.status == 200 ? 1 : 0;
    if (!result.keep_alive && index + 1 < options.count) {
      socket = connect_to(io, options);
      buffer.clear();
    }
  }

  print_result("REQUEST",
               {{"status", std::to_string(first.status)},
                {"first_byte_us", std::to_string(microseconds_between(first.sent, first.first_byte))},
                {"total_us", std::to_string(microseconds_between(first.sent, first.done))},
                {"ok", std::to_string(ok)},
                {"count", std::to_string(options.count)}});
  return ok == options.count ? 0 : 1;
}

int run_stream(const Options& options) {
  asio::io_context io;
  std::optional<tcp::socket> socket;
  beast::flat_buffer buffer;
  std::string request = chat_request(options, true);

  std::vector<double> first_events;
  std::vector<double> gaps;
  std::vector<double> deliveries;
  std::vector<double> all_deliveries;
  int failed = 0;
  for (int index = 0; index < options.count; ++index) {
    if (!socket) {
      socket.emplace(connect_to(io, options));
      buffer.clear();
    }
    StreamTimes times = read_stream(*socket, buffer, request, options.tokens);
    if (!times.ok) {
      ++failed;
      socket.reset();
      continue;
    }
    first_events.push_back(times.first_event_us);
    gaps.push_back(times.mean_gap_us);
    if (!times.deliveries.empty()) {
      deliveries.push_back(times.mean_delivery_us);
      all_deliveries.insert(all_deliveries.end(), times.deliveries.begin(),
                            times.deliveries.end());
    }
    if (!times.keep_alive) {
      socket.reset();
    }
  }

  print_result("STREAM", {{"streams", std::to_string(options.count)},
                          {"failed", std::to_string(failed)},
                          {"first_event_us", format_us(quantile(first_events, 0.5))},
                          {"gap_us", format_us(quantile(gaps, 0.5))},
                          {"delivery_us", format_us(quantile(deliveries, 0.5))},
                          {"delivery_p99_us", format_us(quantile(all_deliveries, 0.99))},
                          {"stamped_events", std::to_string(all_deliveries.size())}});
  return failed == 0 ? 0 : 1;
}

int run_spawn_health(const Options& options) {
  if (options.command.empty()) {
    std::cerr << "spawn-health: give the backend command after --\n";
    return 2;
  }
  asio::io_context io;
  Clock::time_point started = Clock::now();
  Clock::time_point deadline = started + options.timeout;
  pid_t pid = spawn(options.command);

  // Poll the health path until it returns 2xx.
  std::optional<Clock::time_point> healthy;
  while (Clock::now() < deadline) {
    unsigned status = check_health(io, options);
    if (status >= 200 && status < 300) {
      healthy = Clock::now();
      break;
    }
    int wait_status = 0;
    if (::waitpid(pid, &wait_status, WNOHANG) == pid) {
      std::cerr << "spawn-health: " << options.command.front() << " exited while starting\n";
      return 1;
    }
    std::this_thread::sleep_for(options.poll_interval);
  }
  if (!healthy) {
    std::cerr << "spawn-health: no 2xx from " << options.health_path << " within "
              << options.timeout.count() << " ms\n";
    stop_child(pid);
    return 1;
  }

  // Then the first chat completion, on a new connection as a held request
  // would get.
  Exchange answer;
  try {
    tcp::socket socket = connect_to(io, options);
    beast::flat_buffer buffer;
    answer = exchange(socket, buffer, chat_request(options, false));
  } catch (const std::exception& error) {
    std::cerr << "spawn-health: the first request failed: " << error.what() << "\n";
  }
  stop_child(pid);

  print_result("SPAWN",
               {{"status", std::to_string(answer.status)},
                {"healthy_us", std::to_string(microseconds_between(started, *healthy))},
                {"first_byte_us", std::to_string(microseconds_between(started, answer.first_byte))},
                {"answer_us", std::to_string(microseconds_between(answer.sent, answer.first_byte))}});
  return answer.status == 200 ? 0 : 1;
}

}  // namespace modelgate::bench_client
