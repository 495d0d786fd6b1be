#include "tests/support/redis_server.hpp"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace modelgate::testing {
namespace {

std::uint16_t free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

std::string reply_text(const redisReply& reply) {
  switch (reply.type) {
    case REDIS_REPLY_INTEGER:
      return std::to_string(reply.integer);
    case REDIS_REPLY_NIL:
      return "(nil)";
    case REDIS_REPLY_ARRAY: {
      std::string text;
      for (std::size_t index = 0; index < reply.elements; ++index) {
        text += (index == 0 ? "" : "\n") + reply_text(*reply.element[index]);
      }
      return text;
    }
    default:
      return std::string(reply.str, reply.len);
  }
}

}  // namespace

RedisServer::RedisServer(std::vector<std::string> extra_args)
    : extra_args_(std::move(extra_args)) {
  char pattern[] = "/tmp/modelgate-redis-XXXXXX";
  if (::mkdtemp(pattern) == nullptr) {
    throw std::runtime_error("cannot create a directory for redis-server");
  }
  dir_ = pattern;
  port_ = free_loopback_port();
  start();
}

RedisServer::~RedisServer() {
  kill();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string RedisServer::url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

void RedisServer::start() {
  std::vector<std::string> argv = {"/usr/bin/redis-server",
                                   "--bind", "127.0.0.1",
                                   "--port", std::to_string(port_),
                                   "--save", "",
                                   "--appendonly", "no",
                                   "--dir", dir_.string(),
                                   "--logfile", (dir_ / "redis.log").string()};
  argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
  std::vector<char*> pointers;
  for (std::string& word : argv) {
    pointers.push_back(word.data());
  }
  pointers.push_back(nullptr);
  int error = ::posix_spawn(&pid_, pointers[0], nullptr, nullptr, pointers.data(), environ);
  if (error != 0) {
    throw std::runtime_error(std::string("cannot start redis-server: ") + std::strerror(error));
  }

  // Poll until it accepts connections; a password makes PING fail with
  // NOAUTH, which still shows that it listens.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    redisContext* context = redisConnect("127.0.0.1", port_);
    bool up = context != nullptr && context->err == 0;
    if (context != nullptr) {
      redisFree(context);
    }
    if (up) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  throw std::runtime_error("redis-server did not listen on port " + std::to_string(port_) +
                           " within 10 s");
}

void RedisServer::kill() {
  if (pid_ <= 0) {
    return;
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

std::string RedisServer::command(const std::vector<std::string>& arguments,
                                 const std::string& password) const {
  std::unique_ptr<redisContext, void (*)(redisContext*)> context(
      redisConnect("127.0.0.1", port_), redisFree);
  if (!context || context->err != 0) {
    throw std::runtime_error("cannot connect to redis-server on port " + std::to_string(port_));
  }
  auto run = [&](const std::vector<std::string>& words) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (const std::string& word : words) {
      argv.push_back(word.data());
      lengths.push_back(word.size());
    }
    auto* reply = static_cast<redisReply*>(redisCommandArgv(
        context.get(), static_cast<int>(argv.size()), argv.data(), lengths.data()));
    if (reply == nullptr) {
      throw std::runtime_error("redis-server on port " + std::to_string(port_) +
                               " closed the connection");
    }
    std::string text = reply_text(*reply);
    freeReplyObject(reply);
    return text;
  };
  if (!password.empty()) {
    run({"AUTH", password});
  }
  return run(arguments);
}

}  // namespace modelgate::testing
