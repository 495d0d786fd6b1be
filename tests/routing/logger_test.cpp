#include "routing/logger.hpp"

#include <gtest/gtest.h>

#include <string>

namespace modelgate {
namespace {

TEST(Printable, KeepsPlainText) {
  EXPECT_EQ(printable("qwen-7b /v1/chat"), "qwen-7b /v1/chat");
  EXPECT_EQ(printable(""), "");
}

TEST(Printable, EscapesNewlines) {
  EXPECT_EQ(printable("line\nfake"), "line\\x0afake") << "line feed";
  EXPECT_EQ(printable("line\r\nfake"), "line\\x0d\\x0afake") << "carriage return";
}

TEST(Printable, EscapesControlCharacters) {
  EXPECT_EQ(printable("a\tb"), "a\\x09b") << "tab";
  EXPECT_EQ(printable("\x01"), "\\x01") << "0x01";
  EXPECT_EQ(printable("\x1b[31m"), "\\x1b[31m") << "escape";
  EXPECT_EQ(printable("\x1f"), "\\x1f") << "0x1f";
  EXPECT_EQ(printable("\x7f"), "\\x7f") << "delete";
  EXPECT_EQ(printable(std::string_view("a\0b", 3)), "a\\x00b") << "NUL";
  EXPECT_EQ(printable(" "), " ") << "space";
}

TEST(Printable, EscapesBackslash) {
  EXPECT_EQ(printable("a\\b"), "a\\x5cb") << "backslash";
  // A literal "\x0a" in the input cannot pass for an escaped newline.
  EXPECT_EQ(printable("\\x0a"), "\\x5cx0a") << "text that looks like an escape";
}

TEST(Printable, KeepsUtf8Bytes) {
  EXPECT_EQ(printable("caf\xc3\xa9"), "caf\xc3\xa9") << "UTF-8 e acute";
  EXPECT_EQ(printable("\xff"), "\xff") << "byte 0xff";
}

TEST(Printable, CutsAtMaxSize) {
  std::string text(300, 'a');

  std::string result = printable(text, 200);

  EXPECT_EQ(result, std::string(200, 'a') + "...") << "300 bytes cut at 200";
}

TEST(Printable, DefaultMaxSizeIs200) {
  std::string result = printable(std::string(1000, 'b'));

  EXPECT_EQ(result, std::string(200, 'b') + "...") << "1000 bytes with the default limit";
}

TEST(Printable, KeepsTextAtMaxSize) {
  std::string text(200, 'a');

  EXPECT_EQ(printable(text, 200), text) << "exactly 200 bytes";
  EXPECT_EQ(printable("abc", 3), "abc") << "exactly 3 bytes";
  EXPECT_EQ(printable("abcd", 3), "abc...") << "4 bytes cut at 3";
}

TEST(Printable, KeepsEscapeWholeAtCut) {
  std::string text = std::string(9, 'a') + "\n" + "bbb";

  std::string result = printable(text, 10);

  EXPECT_EQ(result, std::string(9, 'a') + "\\x0a...") << "escape that crosses the limit";
}

TEST(Printable, CutCountsEscapedBytes) {
  std::string text(100, '\n');

  std::string result = printable(text, 8);

  EXPECT_EQ(result, "\\x0a\\x0a...") << "newlines cut at 8 output bytes";
}

TEST(ComponentLogger, ReturnsSameLoggerByName) {
  auto first = component_logger("routing-test");
  auto second = component_logger("routing-test");
  auto other = component_logger("routing-test-other");

  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first.get(), second.get()) << "second lookup of routing-test";
  EXPECT_NE(first.get(), other.get()) << "a logger with another name";
  EXPECT_EQ(first->name(), "routing-test") << "logger name";
}

}  // namespace
}  // namespace modelgate
