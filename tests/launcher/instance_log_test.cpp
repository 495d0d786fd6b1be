#include "launcher/instance_log.hpp"

#include <gtest/gtest.h>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace modelgate::launcher {
namespace {

using Lines = std::vector<std::string>;

class InstanceLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "modelgate-instance-log-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr) << "mkdtemp " << pattern;
    directory_ = pattern;
  }

  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(directory_, ignored);
  }

  static std::string read_file(const std::filesystem::path& path) {
    std::ifstream file(path, std::ios::binary);
    std::ostringstream text;
    text << file.rdbuf();
    return text.str();
  }

  std::filesystem::path directory_;
};

TEST_F(InstanceLogTest, JoinsLineSplitAcrossAppends) {
  InstanceLog log("", 10);

  log.append("hel");
  log.append("lo\nwor");
  EXPECT_EQ(log.last_lines(10), Lines{"hello"}) << "lines before the second newline";
  log.append("ld\n");

  EXPECT_EQ(log.last_lines(10), (Lines{"hello", "world"})) << "lines after both newlines";
}

TEST_F(InstanceLogTest, SplitsSeveralLinesInOneAppend) {
  InstanceLog log("", 10);

  log.append("one\ntwo\n\nfour\n");

  EXPECT_EQ(log.last_lines(10), (Lines{"one", "two", "", "four"})) << "lines, with an empty one";
}

TEST_F(InstanceLogTest, StripsCarriageReturn) {
  InstanceLog log("", 10);

  log.append("windows\r\nmiddle\rkept\n");

  EXPECT_EQ(log.last_lines(10), (Lines{"windows", "middle\rkept"}))
      << "a CR before LF is dropped, a CR inside a line is kept";
}

TEST_F(InstanceLogTest, LastLinesBounds) {
  InstanceLog log("", 10);
  log.append("1\n2\n3\n4\n5\n");

  EXPECT_EQ(log.last_lines(2), (Lines{"4", "5"})) << "last_lines(2)";
  EXPECT_EQ(log.last_lines(5), (Lines{"1", "2", "3", "4", "5"})) << "last_lines(5)";
  EXPECT_EQ(log.last_lines(100), (Lines{"1", "2", "3", "4", "5"})) << "last_lines(100)";
  EXPECT_TRUE(log.last_lines(0).empty()) << "last_lines(0)";
}

TEST_F(InstanceLogTest, EmptyLogHasNoLines) {
  InstanceLog log("", 10);

  EXPECT_TRUE(log.last_lines(10).empty()) << "last_lines of a new log";
  EXPECT_EQ(log.last_line(), "") << "last_line of a new log";
}

TEST_F(InstanceLogTest, KeepsOnlyMaxLines) {
  InstanceLog log("", 3);

  for (int i = 1; i <= 10; ++i) {
    log.append("line " + std::to_string(i) + "\n");
  }

  EXPECT_EQ(log.last_lines(100), (Lines{"line 8", "line 9", "line 10"}))
      << "lines kept with max_lines 3";
}

TEST_F(InstanceLogTest, ZeroMaxLinesKeepsOne) {
  InstanceLog log("", 0);

  log.append("a\nb\n");

  EXPECT_EQ(log.last_lines(10), Lines{"b"}) << "lines kept with max_lines 0";
}

TEST_F(InstanceLogTest, FinishFlushesPartialLine) {
  InstanceLog log("", 10);
  log.append("done\nno newline");
  EXPECT_EQ(log.last_lines(10), Lines{"done"}) << "lines before finish()";

  log.finish();
  EXPECT_EQ(log.last_lines(10), (Lines{"done", "no newline"})) << "lines after finish()";

  log.finish();
  EXPECT_EQ(log.last_lines(10), (Lines{"done", "no newline"})) << "lines after finish() twice";
}

TEST_F(InstanceLogTest, FinishWithoutPartialAddsNothing) {
  InstanceLog log("", 10);
  log.append("whole\n");

  log.finish();

  EXPECT_EQ(log.last_lines(10), Lines{"whole"}) << "lines after finish() with no partial";
}

TEST_F(InstanceLogTest, LastLineSkipsBlankLines) {
  InstanceLog log("", 10);

  log.append("error: model file not found\n  \n\t\n\n");

  EXPECT_EQ(log.last_line(), "error: model file not found") << "last non-blank line";
}

TEST_F(InstanceLogTest, CutsLongLineInMemory) {
  std::filesystem::path file = directory_ / "long.log";
  InstanceLog log(file, 10);
  std::string long_line(10000, 'x');

  log.append(long_line + "\nnext\n");

  Lines lines = log.last_lines(10);
  ASSERT_EQ(lines.size(), 2u) << "line count after a 10,000-byte line";
  EXPECT_EQ(lines[0], std::string(4096, 'x')) << "the long line in memory";
  EXPECT_EQ(lines[1], "next") << "the line after the long one";
  EXPECT_EQ(read_file(file), long_line + "\nnext\n") << "file contents";
}

TEST_F(InstanceLogTest, CutsLongLineAcrossAppends) {
  InstanceLog log("", 10);

  log.append(std::string(3000, 'a'));
  log.append(std::string(3000, 'b'));
  log.append(std::string(3000, 'c') + "\n");

  Lines lines = log.last_lines(10);
  ASSERT_EQ(lines.size(), 1u) << "line count";
  EXPECT_EQ(lines[0], std::string(3000, 'a') + std::string(1096, 'b'))
      << "first 4096 bytes of a line written in three appends";
}

TEST_F(InstanceLogTest, CutsLongPartialLineOnFinish) {
  InstanceLog log("", 10);

  log.append(std::string(5000, 'z'));
  log.finish();

  Lines lines = log.last_lines(10);
  ASSERT_EQ(lines.size(), 1u) << "line count";
  EXPECT_EQ(lines[0].size(), 4096u) << "size of a 5,000-byte partial line";
}

TEST_F(InstanceLogTest, FileMatchesOutput) {
  std::filesystem::path file = directory_ / "instance.log";
  InstanceLog log(file, 2);
  ASSERT_TRUE(log.file_open()) << "open " << file;
  EXPECT_EQ(log.file(), file) << "file()";
  std::string output = "start\r\nloading weights";
  output += std::string("\0binary\xff", 8);
  output += "\nready\npartial";

  log.append(output.substr(0, 10));
  log.append(output.substr(10, 7));
  log.append(output.substr(17));
  log.finish();

  EXPECT_EQ(read_file(file), output) << "the file holds every byte, in order";
}

TEST_F(InstanceLogTest, AppendsToExistingFile) {
  std::filesystem::path file = directory_ / "existing.log";
  {
    std::ofstream earlier(file, std::ios::binary);
    earlier << "earlier run\n";
  }
  InstanceLog log(file, 10);

  log.append("this run\n");

  EXPECT_EQ(read_file(file), "earlier run\nthis run\n") << "file contents";
  EXPECT_EQ(log.last_lines(10), Lines{"this run"}) << "memory holds this run only";
}

TEST_F(InstanceLogTest, EmptyPathKeepsMemoryOnly) {
  InstanceLog log("", 10);

  log.append("kept\n");

  EXPECT_FALSE(log.file_open()) << "file_open() with an empty path";
  EXPECT_EQ(log.last_lines(10), Lines{"kept"}) << "lines in memory";
}

TEST_F(InstanceLogTest, UnopenableFileKeepsMemory) {
  std::filesystem::path file = directory_ / "missing-directory" / "instance.log";
  InstanceLog log(file, 10);

  log.append("kept\n");

  EXPECT_FALSE(log.file_open()) << "file_open() for " << file;
  EXPECT_EQ(log.last_lines(10), Lines{"kept"}) << "lines in memory";
}

TEST_F(InstanceLogTest, ConcurrentAppendsKeepLinesWhole) {
  constexpr int kLinesPerThread = 2000;
  std::filesystem::path file = directory_ / "concurrent.log";
  InstanceLog log(file, 2 * kLinesPerThread);

  auto writer = [&log](char letter) {
    for (int i = 0; i < kLinesPerThread; ++i) {
      log.append(std::string(20, letter) + "\n");
    }
  };
  std::thread first(writer, 'a');
  std::thread second(writer, 'b');
  first.join();
  second.join();

  Lines lines = log.last_lines(2 * kLinesPerThread);
  ASSERT_EQ(lines.size(), static_cast<std::size_t>(2 * kLinesPerThread)) << "line count";
  int broken = 0;
  for (const std::string& line : lines) {
    if (line != std::string(20, 'a') && line != std::string(20, 'b')) {
      ++broken;
    }
  }
  EXPECT_EQ(broken, 0) << "lines mixed from both threads";
  EXPECT_EQ(read_file(file).size(), static_cast<std::size_t>(2 * kLinesPerThread * 21))
      << "file size";
}

}  // namespace
}  // namespace modelgate::launcher
