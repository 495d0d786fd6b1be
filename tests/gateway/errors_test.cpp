#include "gateway/errors.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace modelgate::gateway {
namespace {

struct KindCase {
  ErrorKind kind;
  const char* name;
  int status;
  bool retry_after;
};

const std::vector<KindCase>& kind_cases() {
  static const std::vector<KindCase> cases = {
      {ErrorKind::invalid_json, "invalid_json", 400, false},
      {ErrorKind::invalid_request, "invalid_request", 400, false},
      {ErrorKind::bad_http, "bad_http", 400, false},
      {ErrorKind::unknown_endpoint, "unknown_endpoint", 404, false},
      {ErrorKind::method_not_allowed, "method_not_allowed", 405, false},
      {ErrorKind::model_not_found, "model_not_found", 404, false},
      {ErrorKind::request_timeout, "request_timeout", 408, false},
      {ErrorKind::body_too_large, "body_too_large", 413, false},
      {ErrorKind::header_too_large, "header_too_large", 431, false},
      {ErrorKind::queue_full, "queue_full", 503, true},
      {ErrorKind::shutting_down, "shutting_down", 503, true},
      {ErrorKind::backend_start_failed, "backend_start_failed", 502, false},
      {ErrorKind::backend_error, "backend_error", 502, false},
      {ErrorKind::backend_start_timeout, "backend_start_timeout", 504, false},
      {ErrorKind::hold_timeout, "hold_timeout", 504, false},
      {ErrorKind::backend_timeout, "backend_timeout", 504, false},
  };
  return cases;
}

TEST(ErrorInfo, MapsEveryKindToStatus) {
  for (const KindCase& kind_case : kind_cases()) {
    EXPECT_EQ(error_info(kind_case.kind).status, kind_case.status)
        << "status of " << kind_case.name;
  }
}

TEST(ErrorInfo, RetryAfterOnlyWhenOverloaded) {
  for (const KindCase& kind_case : kind_cases()) {
    std::optional<int> retry_after = error_info(kind_case.kind).retry_after_seconds;
    EXPECT_EQ(retry_after.has_value(), kind_case.retry_after)
        << "Retry-After presence for " << kind_case.name;
    if (retry_after) {
      EXPECT_GT(*retry_after, 0) << "Retry-After seconds for " << kind_case.name;
    }
  }
}

TEST(ErrorInfo, TypeMatchesStatusClass) {
  for (const KindCase& kind_case : kind_cases()) {
    ErrorInfo info = error_info(kind_case.kind);
    std::string_view expected =
        info.status < 500 ? "invalid_request_error" : "server_error";
    EXPECT_EQ(info.type, expected) << "type of " << kind_case.name;
  }
}

TEST(ErrorInfo, CodesAreDistinct) {
  std::set<std::string_view> codes;
  for (const KindCase& kind_case : kind_cases()) {
    std::string_view code = error_info(kind_case.kind).code;
    EXPECT_FALSE(code.empty()) << "code of " << kind_case.name;
    EXPECT_TRUE(codes.insert(code).second)
        << "code " << code << " of " << kind_case.name << " is shared";
  }
}

TEST(ErrorBody, HasOpenAiShape) {
  for (const KindCase& kind_case : kind_cases()) {
    std::string body = error_body(kind_case.kind, "The model 'x' does not exist");
    nlohmann::json parsed = nlohmann::json::parse(body, nullptr, false);
    ASSERT_FALSE(parsed.is_discarded()) << "invalid JSON for " << kind_case.name << ": " << body;
    ASSERT_TRUE(parsed.contains("error")) << "no error object for " << kind_case.name;
    const nlohmann::json& error = parsed["error"];
    ErrorInfo info = error_info(kind_case.kind);

    EXPECT_EQ(error.value("message", "<absent>"), "The model 'x' does not exist")
        << "message for " << kind_case.name;
    EXPECT_EQ(error.value("type", "<absent>"), std::string(info.type))
        << "type for " << kind_case.name;
    EXPECT_EQ(error.value("code", "<absent>"), std::string(info.code))
        << "code for " << kind_case.name;
    ASSERT_TRUE(error.contains("param")) << "no param for " << kind_case.name;
    EXPECT_TRUE(error["param"].is_null()) << "param for " << kind_case.name;
    EXPECT_EQ(parsed.size(), 1u) << "top-level members for " << kind_case.name;
  }
}

TEST(ErrorBody, EscapesMessage) {
  std::string message = "quote \" backslash \\ newline \n tab \t control \x01 end";

  std::string body = error_body(ErrorKind::invalid_json, message);

  nlohmann::json parsed = nlohmann::json::parse(body, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << "invalid JSON: " << body;
  EXPECT_EQ(parsed["error"].value("message", "<absent>"), message) << "message round trip";
  EXPECT_EQ(body.find('\n'), std::string::npos) << "raw newline in the body";
}

TEST(ErrorBody, InvalidUtf8DoesNotThrow) {
  std::string message = "model 'bad \xff\xfe name' not found";
  std::string body;

  EXPECT_NO_THROW(body = error_body(ErrorKind::model_not_found, message))
      << "error_body with invalid UTF-8";

  nlohmann::json parsed = nlohmann::json::parse(body, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << "invalid JSON: " << body;
  std::string decoded = parsed["error"].value("message", "<absent>");
  EXPECT_NE(decoded.find("\xef\xbf\xbd"), std::string::npos)
      << "U+FFFD in place of the invalid bytes: " << decoded;
  EXPECT_NE(decoded.find("name' not found"), std::string::npos)
      << "text after the invalid bytes: " << decoded;
}

TEST(ErrorBody, EmptyMessage) {
  std::string body = error_body(ErrorKind::backend_error, "");

  nlohmann::json parsed = nlohmann::json::parse(body, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << "invalid JSON: " << body;
  EXPECT_EQ(parsed["error"].value("message", "<absent>"), "") << "message";
}

}  // namespace
}  // namespace modelgate::gateway
