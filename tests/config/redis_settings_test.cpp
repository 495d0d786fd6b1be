#include "config/config.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace modelgate::config {
namespace {

using namespace std::chrono_literals;

Config parse(const std::string& yaml) { return parse_config(yaml, "/etc/modelgate/test.yaml"); }

RedisSettings parse_redis(const std::string& redis_yaml) {
  return parse("gateway:\n  redis:\n" + redis_yaml).gateway.redis;
}

TEST(RedisSettings, DisabledByDefault) {
  Config config = parse("gateway:\n  listen: 127.0.0.1:8080\n");
  EXPECT_FALSE(config.gateway.redis.enabled());
  EXPECT_EQ(config.gateway.redis.key_prefix, "modelgate");
  EXPECT_EQ(config.gateway.redis.lease_ttl, 10s);
  EXPECT_EQ(config.gateway.redis.heartbeat_interval, 2s);
  EXPECT_EQ(config.gateway.redis.resync_interval, 10s);
}

TEST(RedisSettings, ReadsEverySetting) {
  RedisSettings redis = parse_redis(
      "    url: redis://ops:s3cret@redis.internal:6380/2\n"
      "    key_prefix: fleet-a\n"
      "    lease_ttl: 30s\n"
      "    heartbeat_interval: 5s\n"
      "    resync_interval: 1m\n");
  EXPECT_TRUE(redis.enabled());
  EXPECT_EQ(redis.host, "redis.internal");
  EXPECT_EQ(redis.port, 6380);
  EXPECT_EQ(redis.user, "ops");
  EXPECT_EQ(redis.password, "s3cret");
  EXPECT_EQ(redis.db, 2);
  EXPECT_TRUE(redis.socket_path.empty());
  EXPECT_EQ(redis.key_prefix, "fleet-a");
  EXPECT_EQ(redis.lease_ttl, 30s);
  EXPECT_EQ(redis.heartbeat_interval, 5s);
  EXPECT_EQ(redis.resync_interval, 1min);
}

TEST(RedisSettings, ParsesUrlForms) {
  struct Case {
    std::string url;
    std::string host;
    int port;
    std::string socket_path;
    std::string user;
    std::string password;
    int db;
  };
  const Case cases[] = {
      {"redis://127.0.0.1", "127.0.0.1", 6379, "", "", "", 0},
      {"redis://localhost:7000/", "localhost", 7000, "", "", "", 0},
      {"redis://:pw@127.0.0.1:6379/3", "127.0.0.1", 6379, "", "", "pw", 3},
      {"redis://pw@127.0.0.1", "127.0.0.1", 6379, "", "", "pw", 0},
      {"redis://u:p%40ss%3A@[::1]:6390/1", "::1", 6390, "", "u", "p@ss:", 1},
      {"/run/redis/redis.sock", "", 6379, "/run/redis/redis.sock", "", "", 0},
      {"unix:///tmp/r.sock?db=4", "", 6379, "/tmp/r.sock", "", "", 4},
      {"unix://u:pw@/tmp/r.sock", "", 6379, "/tmp/r.sock", "u", "pw", 0},
  };
  for (const Case& expected : cases) {
    SCOPED_TRACE(expected.url);
    RedisSettings redis = parse_redis("    url: \"" + expected.url + "\"\n");
    EXPECT_EQ(redis.host, expected.host);
    EXPECT_EQ(redis.port, expected.port);
    EXPECT_EQ(redis.socket_path, expected.socket_path);
    EXPECT_EQ(redis.user, expected.user);
    EXPECT_EQ(redis.password, expected.password);
    EXPECT_EQ(redis.db, expected.db);
  }
}

TEST(RedisSettings, RedactsPassword) {
  EXPECT_EQ(parse_redis("    url: redis://ops:s3cret@h:1/0\n").redacted_url(),
            "redis://ops:***@h:1/0");
  EXPECT_EQ(parse_redis("    url: redis://s3cret@h\n").redacted_url(), "redis://***@h");
  EXPECT_EQ(parse_redis("    url: redis://h:1\n").redacted_url(), "redis://h:1");
}

struct BadRedis {
  std::string yaml;
  int line;
  int column;
  std::string key_path;
  std::string message;
};

TEST(RedisSettings, RejectsInvalidValues) {
  const BadRedis cases[] = {
      {"    key_prefix: a\n", 3, 5, "gateway.redis.url", "missing"},
      {"    url: http://h:1\n", 3, 10, "gateway.redis.url", "invalid Redis URL"},
      {"    url: redis://h:0\n", 3, 10, "gateway.redis.url", "invalid Redis URL"},
      {"    url: redis://h:1/x\n", 3, 10, "gateway.redis.url", "invalid Redis URL"},
      {"    url: redis://u:%zz@h\n", 3, 10, "gateway.redis.url", "invalid Redis URL"},
      {"    url: unix://tmp/r.sock\n", 3, 10, "gateway.redis.url", "invalid Redis URL"},
      {"    url: redis://h\n    key_prefix: \"a b\"\n", 4, 17, "gateway.redis.key_prefix",
       "invalid key prefix"},
      {"    url: redis://h\n    lease_ttl: 500ms\n", 4, 16, "gateway.redis.lease_ttl",
       "shorter than 1s"},
      {"    url: redis://h\n    heartbeat_interval: 5s\n", 4, 25,
       "gateway.redis.heartbeat_interval", "more than a third of lease_ttl"},
      {"    url: redis://h\n    resync_interval: 0\n", 4, 22, "gateway.redis.resync_interval",
       "greater than zero"},
      {"    url: redis://h\n    ttl: 5s\n", 4, 5, "gateway.redis.ttl", "unknown key"},
  };
  for (const BadRedis& bad : cases) {
    SCOPED_TRACE(bad.yaml);
    try {
      parse("gateway:\n  redis:\n" + bad.yaml);
      ADD_FAILURE() << "expected ConfigError";
    } catch (const ConfigError& error) {
      EXPECT_EQ(error.location().line, bad.line) << error.what();
      EXPECT_EQ(error.location().column, bad.column) << error.what();
      EXPECT_EQ(error.key_path(), bad.key_path) << error.what();
      EXPECT_NE(std::string(error.what()).find(bad.message), std::string::npos) << error.what();
      EXPECT_FALSE(error.fix().empty()) << error.what();
    }
  }
}

TEST(RedisSettings, ErrorDoesNotShowPassword) {
  try {
    parse("gateway:\n  redis:\n    url: redis://u:hunter2@h:99999\n");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& error) {
    EXPECT_EQ(std::string(error.what()).find("hunter2"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace modelgate::config
