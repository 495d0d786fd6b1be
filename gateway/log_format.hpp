#pragma once

// Log line formats: text for people, or JSON for log collectors. In JSON,
// every line is one object with the keys "time" (UTC, ISO 8601 with
// milliseconds), "level", "logger" and "message". Access log lines have
// their request's fields as keys instead of "message".

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <spdlog/formatter.h>

namespace modelgate::gateway {

enum class LogFormat { text, json };

// Returns the format named "text" or "json", or nothing for another name.
std::optional<LogFormat> parse_log_format(std::string_view name);

// "2026-12-04T20:54:02.123Z".
std::string format_utc_time(std::chrono::system_clock::time_point time);

// Formats each spdlog message as one JSON object per line.
class JsonLogFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& message, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;
};

}  // namespace modelgate::gateway
