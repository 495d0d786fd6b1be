#include "launcher/port_allocator.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

namespace modelgate::launcher {
namespace {

// Binds and closes a socket on ip:port. SO_REUSEADDR is set as servers set
// it, so a port whose last connection is in TIME_WAIT counts as free.
bool port_binds(const std::string& ip, std::uint16_t port) {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = AF_INET;

  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (::inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof *v4;
  } else if (::inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    family = AF_INET6;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof *v6;
  } else {
    return false;
  }

  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return false;
  }
  int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&storage), length) == 0;
  ::close(fd);
  return bound;
}

}  // namespace

PortAllocator::PortAllocator(std::string ip, config::PortRange range)
    : ip_(std::move(ip)), range_(range), next_(range.first) {}

std::optional<std::uint16_t> PortAllocator::allocate() {
  std::lock_guard lock(mutex_);
  std::size_t size = static_cast<std::size_t>(range_.last - range_.first) + 1;

  // Ports rotate through the range, so a port just released (maybe in
  // TIME_WAIT, maybe still held by a dying process) is not handed out again
  // at once.
  for (std::size_t tried = 0; tried < size; ++tried) {
    std::uint16_t port = next_;
    next_ = port == range_.last ? range_.first : static_cast<std::uint16_t>(port + 1);
    if (in_use_.count(port) != 0) {
      continue;
    }
    if (port_binds(ip_, port)) {
      in_use_.insert(port);
      return port;
    }
  }
  return std::nullopt;
}

bool PortAllocator::reserve(std::uint16_t port) {
  std::lock_guard lock(mutex_);
  if (port < range_.first || port > range_.last) {
    return false;
  }
  return in_use_.insert(port).second;
}

void PortAllocator::release(std::uint16_t port) {
  std::lock_guard lock(mutex_);
  in_use_.erase(port);
}

std::optional<std::string> check_port_range(config::PortRange range,
                                            const std::filesystem::path& ephemeral_range_file) {
  std::ifstream file(ephemeral_range_file);
  long first = 0;
  long last = 0;
  if (!(file >> first >> last)) {
    // Without the file (not Linux, or no /proc) there is nothing to compare.
    return std::nullopt;
  }
  if (range.last < first || range.first > last) {
    return std::nullopt;
  }
  return "port range " + std::to_string(range.first) + "-" + std::to_string(range.last) +
         " overlaps the kernel's ephemeral port range " + std::to_string(first) + "-" +
         std::to_string(last) + " (" + ephemeral_range_file.string() +
         "), where outgoing connections take ports a backend may need; choose ports below " +
         std::to_string(first) + " or above " + std::to_string(last);
}

}  // namespace modelgate::launcher
