#include "gateway/log_format.hpp"

#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace modelgate::gateway {

std::optional<LogFormat> parse_log_format(std::string_view name) {
  if (name == "text") {
    return LogFormat::text;
  }
  if (name == "json") {
    return LogFormat::json;
  }
  return std::nullopt;
}

std::string format_utc_time(std::chrono::system_clock::time_point time) {
  auto milliseconds =
      std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count() %
      1000;
  if (milliseconds < 0) {
    milliseconds += 1000;
  }
  std::time_t seconds = std::chrono::system_clock::to_time_t(time);
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900,
                     utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                     milliseconds);
}

void JsonLogFormatter::format(const spdlog::details::log_msg& message,
                              spdlog::memory_buf_t& dest) {
  auto level = spdlog::level::to_string_view(message.level);
  nlohmann::ordered_json line = {
      {"time", format_utc_time(message.time)},
      {"level", std::string_view(level.data(), level.size())},
      {"logger", std::string_view(message.logger_name.data(), message.logger_name.size())},
      {"message", std::string_view(message.payload.data(), message.payload.size())},
  };
  // Invalid UTF-8 becomes U+FFFD instead of an exception.
  std::string text = line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  text += '\n';
  dest.append(text.data(), text.data() + text.size());
}

std::unique_ptr<spdlog::formatter> JsonLogFormatter::clone() const {
  return std::make_unique<JsonLogFormatter>();
}

}  // namespace modelgate::gateway
