#include "gateway/log_format.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/details/log_msg.h>

#include "gateway/access_log.hpp"

namespace modelgate::gateway {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// 2026-12-04T20:54:02.123Z
std::chrono::system_clock::time_point example_time() {
  return std::chrono::system_clock::time_point(1796417642s + 123ms);
}

TEST(LogFormat, ParsesKnownNames) {
  EXPECT_EQ(parse_log_format("text"), LogFormat::text);
  EXPECT_EQ(parse_log_format("json"), LogFormat::json);
  EXPECT_EQ(parse_log_format("JSON"), std::nullopt);
  EXPECT_EQ(parse_log_format(""), std::nullopt);
}

TEST(LogFormat, UtcTimeHasMilliseconds) {
  EXPECT_EQ(format_utc_time(example_time()), "2026-12-04T20:54:02.123Z");
  EXPECT_EQ(format_utc_time(std::chrono::system_clock::time_point(5ms)), "1970-01-01T00:00:00.005Z");
}

TEST(JsonLogFormatter, WritesOneObjectPerLine) {
  spdlog::details::log_msg message(example_time(), spdlog::source_loc{}, "launcher",
                                   spdlog::level::err,
                                   "instance a failed to start; last log lines:\nline \"one\"\n\x01");
  spdlog::memory_buf_t buffer;
  JsonLogFormatter().format(message, buffer);
  std::string text(buffer.data(), buffer.size());

  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(text.find('\n'), text.size() - 1) << "a message's newlines must be escaped: " << text;
  json line = json::parse(text);
  EXPECT_EQ(line["time"], "2026-12-04T20:54:02.123Z");
  EXPECT_EQ(line["level"], "error");
  EXPECT_EQ(line["logger"], "launcher");
  EXPECT_EQ(line["message"], "instance a failed to start; last log lines:\nline \"one\"\n\x01");
}

TEST(JsonLogFormatter, InvalidUtf8Replaced) {
  spdlog::details::log_msg message(example_time(), spdlog::source_loc{}, "gateway",
                                   spdlog::level::info, "bad \xff byte");
  spdlog::memory_buf_t buffer;
  JsonLogFormatter().format(message, buffer);
  json line = json::parse(std::string(buffer.data(), buffer.size()));
  EXPECT_EQ(line["message"], "bad \xEF\xBF\xBD byte");
}

RequestRecord proxied_record() {
  RequestRecord record;
  record.id = "d581d2240000000000000001";
  record.deployment = "demo";
  record.endpoint = "chat_completions";
  record.instance = "demo-b00af936";
  record.held = true;
  record.held_ms = 310.4321;
  record.first_byte_ms = 310.7;
  record.status = 200;
  record.bytes_sent = 285;
  return record;
}

TEST(AccessLog, TextLineHasEveryField) {
  EXPECT_EQ(access_log_text(proxied_record(), 310.75),
            "d581d2240000000000000001 chat_completions model='demo' instance=demo-b00af936 "
            "status=200 bytes=285 duration_ms=310.8 first_byte_ms=310.7 held_ms=310.4");
}

TEST(AccessLog, TextLineMarksStreamAndDrop) {
  RequestRecord record = proxied_record();
  record.stream = true;
  record.dropped = "client_write_failed";
  std::string line = access_log_text(record, 1);
  EXPECT_TRUE(line.ends_with(" stream dropped=client_write_failed")) << line;
}

TEST(AccessLog, JsonLineHasEveryField) {
  json line = json::parse(access_log_json(proxied_record(), 310.75, example_time()));

  EXPECT_EQ(line["time"], "2026-12-04T20:54:02.123Z");
  EXPECT_EQ(line["level"], "info");
  EXPECT_EQ(line["logger"], "access");
  EXPECT_EQ(line["request_id"], "d581d2240000000000000001");
  EXPECT_EQ(line["endpoint"], "chat_completions");
  EXPECT_EQ(line["deployment"], "demo");
  EXPECT_EQ(line["instance"], "demo-b00af936");
  EXPECT_EQ(line["status"], 200);
  EXPECT_EQ(line["bytes"], 285);
  EXPECT_DOUBLE_EQ(line["duration_ms"].get<double>(), 310.75);
  EXPECT_DOUBLE_EQ(line["first_byte_ms"].get<double>(), 310.7);
  EXPECT_DOUBLE_EQ(line["held_ms"].get<double>(), 310.432);
  EXPECT_EQ(line["stream"], false);
  EXPECT_TRUE(line["dropped"].is_null());
}

TEST(AccessLog, JsonLineAbsentValuesAreNull) {
  RequestRecord record;
  record.id = "x";
  record.status = 404;
  json line = json::parse(access_log_json(record, 0.2, example_time()));

  EXPECT_EQ(line["deployment"], "");
  EXPECT_TRUE(line["instance"].is_null());
  EXPECT_TRUE(line["first_byte_ms"].is_null());
  EXPECT_EQ(line["endpoint"], "other");
}

TEST(AccessLog, JsonLineEscapesControlCharacters) {
  RequestRecord record = proxied_record();
  record.deployment = "a\"b\nc\\d";
  std::string text = access_log_json(record, 1, example_time());

  EXPECT_EQ(text.find('\n'), std::string::npos) << text;
  EXPECT_EQ(json::parse(text)["deployment"], "a\"b\nc\\d");
}

}  // namespace
}  // namespace modelgate::gateway
