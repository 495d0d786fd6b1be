// The `gateway.redis` section: the Redis URL and the timings of leases and
// resyncs.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "config/sections.hpp"

namespace modelgate::config {

namespace {

const std::string kUrlFix =
    "Write redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], such as "
    "redis://127.0.0.1:6379/0, or unix:///PATH/redis.sock[?db=DB], or a "
    "socket path such as /run/redis/redis.sock";

// Decodes %XX escapes, which let a password contain '@', ':' or '/'.
// Returns nullopt on a malformed escape.
std::optional<std::string> percent_decode(std::string_view text) {
  std::string result;
  for (std::size_t index = 0; index < text.size(); ++index) {
    if (text[index] != '%') {
      result += text[index];
      continue;
    }
    if (index + 2 >= text.size()) {
      return std::nullopt;
    }
    int value = 0;
    for (std::size_t digit = index + 1; digit <= index + 2; ++digit) {
      char c = text[digit];
      int nibble = (c >= '0' && c <= '9')   ? c - '0'
                   : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                   : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                            : -1;
      if (nibble < 0) {
        return std::nullopt;
      }
      value = value * 16 + nibble;
    }
    result += static_cast<char>(value);
    index += 2;
  }
  return result;
}

// Parses a decimal number in [minimum, maximum].
std::optional<int> parse_number(std::string_view text, int minimum, int maximum) {
  if (text.empty() || text.size() > 9 ||
      text.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  int value = std::stoi(std::string(text));
  if (value < minimum || value > maximum) {
    return std::nullopt;
  }
  return value;
}

// Splits "[[USER]:PASSWORD@]REST" into `redis.user`, `redis.password` and
// REST. Returns false on a malformed escape.
bool read_user_info(std::string_view& rest, RedisSettings& redis) {
  std::size_t at = rest.rfind('@');
  if (at == std::string_view::npos) {
    return true;
  }
  std::string_view info = rest.substr(0, at);
  rest.remove_prefix(at + 1);

  std::size_t colon = info.find(':');
  std::optional<std::string> user = percent_decode(info.substr(0, colon));
  std::optional<std::string> password =
      colon == std::string_view::npos ? std::string() : percent_decode(info.substr(colon + 1));
  if (!user || !password) {
    return false;
  }
  // "redis://secret@host" is read as a password, as redis-cli does.
  if (colon == std::string_view::npos) {
    std::swap(*user, *password);
  }
  redis.user = std::move(*user);
  redis.password = std::move(*password);
  return true;
}

// Parses `redis.url` into its parts. Returns false when it is invalid.
bool parse_redis_url(RedisSettings& redis) {
  std::string_view text = redis.url;
  constexpr std::string_view kRedis = "redis://";
  constexpr std::string_view kUnix = "unix://";

  if (!text.empty() && text.front() == '/') {
    redis.socket_path = std::string(text);
    return true;
  }

  if (text.rfind(kUnix, 0) == 0) {
    std::string_view rest = text.substr(kUnix.size());
    if (!read_user_info(rest, redis)) {
      return false;
    }
    std::size_t query = rest.find('?');
    if (query != std::string_view::npos) {
      std::string_view parameter = rest.substr(query + 1);
      if (parameter.rfind("db=", 0) != 0) {
        return false;
      }
      std::optional<int> db = parse_number(parameter.substr(3), 0, 1000000);
      if (!db) {
        return false;
      }
      redis.db = *db;
      rest = rest.substr(0, query);
    }
    if (rest.empty() || rest.front() != '/') {
      return false;
    }
    redis.socket_path = std::string(rest);
    return true;
  }

  if (text.rfind(kRedis, 0) != 0) {
    return false;
  }
  std::string_view rest = text.substr(kRedis.size());
  if (!read_user_info(rest, redis)) {
    return false;
  }

  // HOST[:PORT][/DB], with an IPv6 address in brackets.
  std::size_t slash = rest.find('/');
  if (slash != std::string_view::npos) {
    std::string_view db_text = rest.substr(slash + 1);
    if (!db_text.empty()) {
      std::optional<int> db = parse_number(db_text, 0, 1000000);
      if (!db) {
        return false;
      }
      redis.db = *db;
    }
    rest = rest.substr(0, slash);
  }
  std::string_view host = rest;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    std::size_t close = rest.find(']');
    if (close == std::string_view::npos) {
      return false;
    }
    host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return false;
      }
      port = after.substr(1);
    }
  } else {
    std::size_t colon = rest.rfind(':');
    if (colon != std::string_view::npos) {
      host = rest.substr(0, colon);
      port = rest.substr(colon + 1);
    }
  }
  if (host.empty() || host.find_first_of(" /[]@") != std::string_view::npos) {
    return false;
  }
  redis.host = std::string(host);
  if (!port.empty() || rest.back() == ':') {
    std::optional<int> number = parse_number(port, 1, 65535);
    if (!number) {
      return false;
    }
    redis.port = static_cast<std::uint16_t>(*number);
  }
  return true;
}

}  // namespace

std::string RedisSettings::redacted_url() const {
  if (password.empty()) {
    return url;
  }
  std::string result = url;
  std::size_t scheme = result.find("://");
  std::size_t start = scheme == std::string::npos ? 0 : scheme + 3;
  std::size_t at = result.rfind('@');
  if (at == std::string::npos || at < start) {
    return result;
  }
  std::size_t colon = result.find(':', start);
  std::size_t secret = colon != std::string::npos && colon < at ? colon + 1 : start;
  return result.replace(secret, at - secret, "***");
}

namespace detail {

void read_redis(Reader& reader, const Value& value, RedisSettings& redis) {
  const MapReader map(reader, value,
                      {"url", "key_prefix", "lease_ttl", "heartbeat_interval",
                       "resync_interval"});

  Value url = map.require("url");
  redis.url = read_string(reader, url);
  if (!parse_redis_url(redis)) {
    reader.fail(url, "invalid Redis URL \"" + redis.redacted_url() + "\"", kUrlFix);
  }

  if (auto v = map.find("key_prefix")) {
    redis.key_prefix = read_string(reader, *v);
    const bool valid = !redis.key_prefix.empty() && redis.key_prefix.size() <= 64 &&
                       redis.key_prefix.find_first_of(" \t\r\n*?[]{}") == std::string::npos;
    if (!valid) {
      reader.fail(*v, "invalid key prefix \"" + redis.key_prefix + "\"",
                  "Use 1 to 64 characters without spaces, glob characters or braces, such "
                  "as modelgate or fleet-a");
    }
  }
  if (auto v = map.find("lease_ttl")) {
    redis.lease_ttl = read_duration(reader, *v, false);
    if (redis.lease_ttl < std::chrono::seconds(1)) {
      reader.fail(*v, "lease_ttl is shorter than 1s",
                  "Set at least 1s, such as 10s; a short lease removes the routes of a "
                  "gateway that only paused");
    }
  }
  if (auto v = map.find("heartbeat_interval")) {
    redis.heartbeat_interval = read_duration(reader, *v, false);
  }
  if (auto v = map.find("resync_interval")) {
    redis.resync_interval = read_duration(reader, *v, false);
  }

  // Two renewals can fail, or arrive late, before the lease expires.
  if (redis.heartbeat_interval * 3 > redis.lease_ttl) {
    Value where = map.find("heartbeat_interval").value_or(map.find("lease_ttl").value_or(url));
    auto milliseconds = [](Duration duration) { return std::to_string(duration.count()) + "ms"; };
    reader.fail(where,
                "heartbeat_interval " + milliseconds(redis.heartbeat_interval) +
                    " is more than a third of lease_ttl " + milliseconds(redis.lease_ttl),
                "Set heartbeat_interval to at most " +
                    milliseconds(redis.lease_ttl / 3) + " or raise lease_ttl");
  }
}

}  // namespace detail
}  // namespace modelgate::config
