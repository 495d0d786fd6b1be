#pragma once

// Hands out backend ports from a worker's range, each checked bindable.

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "config/config.hpp"

namespace modelgate::launcher {

class PortAllocator {
 public:
  PortAllocator(std::string ip, config::PortRange range);

  // Returns a port that no instance uses and that binds on the worker's
  // address right now, or nothing when the whole range is taken.
  // Thread-safe.
  std::optional<std::uint16_t> allocate();
  // Marks `port` as used without the bind check, for an instance that
  // already listens on it. Returns false when the port lies outside the
  // range or another instance uses it. Thread-safe.
  bool reserve(std::uint16_t port);
  void release(std::uint16_t port);

 private:
  std::string ip_;
  config::PortRange range_;
  std::uint16_t next_;
  std::set<std::uint16_t> in_use_;
  std::mutex mutex_;
};

// Returns a problem when `range` overlaps the kernel's ephemeral port range
// read from `ephemeral_range_file`, since an outgoing connection can then
// take a port a backend is about to bind, and a health check of a port that
// is not listening yet can connect to itself.
std::optional<std::string> check_port_range(
    config::PortRange range,
    const std::filesystem::path& ephemeral_range_file = "/proc/sys/net/ipv4/ip_local_port_range");

}  // namespace modelgate::launcher
