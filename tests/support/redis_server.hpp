#pragma once

// A real redis-server for tests, started on a free loopback port with no
// persistence (--save "" --appendonly no), in a temporary directory.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace modelgate::testing {

class RedisServer {
 public:
  // `extra_args` are added to redis-server's command line, such as
  // {"--requirepass", "secret"}. Throws std::runtime_error when the server
  // does not reply to PING within 10 s.
  explicit RedisServer(std::vector<std::string> extra_args = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  std::uint16_t port() const { return port_; }
  // "redis://127.0.0.1:PORT".
  std::string url() const;
  pid_t pid() const { return pid_; }

  // Kills the server with SIGKILL and waits for it to exit.
  void kill();
  // Starts it again on the same port, with the same arguments, empty.
  void start();

  // Runs one command with hiredis's blocking API, authenticating with
  // `password` first when it is not empty. Returns the reply as text: a
  // string, status or error as is, an integer in decimal, nil as "(nil)",
  // and an array as its elements joined by '\n'. Throws when the connection
  // fails.
  std::string command(const std::vector<std::string>& arguments,
                      const std::string& password = {}) const;

 private:
  std::filesystem::path dir_;
  std::uint16_t port_ = 0;
  std::vector<std::string> extra_args_;
  pid_t pid_ = -1;
};

}  // namespace modelgate::testing
