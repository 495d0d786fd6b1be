#include "gateway/access_log.hpp"

#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "gateway/log_format.hpp"
#include "routing/logger.hpp"

namespace modelgate::gateway {
namespace {

// Milliseconds rounded to microseconds, so that JSON shows 310.723 rather
// than every digit of a double.
double rounded_ms(double milliseconds) { return std::round(milliseconds * 1000) / 1000; }

}  // namespace

std::string access_log_text(const RequestRecord& record, double duration_ms) {
  return fmt::format(
      "{} {} model='{}' instance={} status={} bytes={} duration_ms={:.1f} first_byte_ms={:.1f} "
      "held_ms={:.1f}{}{}{}",
      record.id, record.endpoint, printable(record.deployment),
      record.instance.empty() ? "-" : record.instance, record.status, record.bytes_sent,
      duration_ms, record.first_byte_ms, record.held_ms, record.stream ? " stream" : "",
      record.key_name.empty() ? "" : " key=" + printable(record.key_name),
      record.dropped.empty() ? "" : " dropped=" + record.dropped);
}

std::string access_log_json(const RequestRecord& record, double duration_ms,
                            std::chrono::system_clock::time_point now) {
  nlohmann::ordered_json line = {
      {"time", format_utc_time(now)},
      {"level", "info"},
      {"logger", "access"},
      {"request_id", record.id},
      {"endpoint", record.endpoint},
      {"deployment", record.deployment},
      {"instance", nullptr},
      {"status", record.status},
      {"bytes", record.bytes_sent},
      {"duration_ms", rounded_ms(duration_ms)},
      {"first_byte_ms", nullptr},
      {"held_ms", rounded_ms(record.held_ms)},
      {"stream", record.stream},
      {"key", nullptr},
      {"dropped", nullptr},
  };
  if (!record.key_name.empty()) {
    line["key"] = record.key_name;
  }
  if (!record.instance.empty()) {
    line["instance"] = record.instance;
  }
  if (record.first_byte_ms >= 0) {
    line["first_byte_ms"] = rounded_ms(record.first_byte_ms);
  }
  if (!record.dropped.empty()) {
    line["dropped"] = record.dropped;
  }
  return line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace modelgate::gateway
