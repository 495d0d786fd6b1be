#pragma once

// One HTTP health check of an instance: GET the backend's health path and
// report the status. A TCP connect alone proves nothing, because a port proxy
// accepts connections before the server behind it listens.

#include "routing/asio_prelude.hpp"

#include <chrono>
#include <cstdint>
#include <string>

namespace modelgate::launcher {

struct HealthResult {
  bool healthy = false;  // answered 2xx
  int status = 0;        // HTTP status, 0 when there was no response
  std::string error;     // why there was no response ("connection refused")
};

awaitable<HealthResult> probe_health(const std::string& host, std::uint16_t port,
                                     const std::string& path,
                                     std::chrono::milliseconds timeout);

}  // namespace modelgate::launcher
