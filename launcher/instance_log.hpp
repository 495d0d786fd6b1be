#pragma once

// An instance's captured stdout and stderr: the last lines in memory (for
// error messages and the admin API) and every line in a log file.

#include <cstddef>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace modelgate::launcher {

class InstanceLog {
 public:
  // Opens `file` for appending; an empty path keeps lines in memory only.
  InstanceLog(const std::filesystem::path& file, std::size_t max_lines);

  // Appends raw output; lines end at '\n'. Thread-safe.
  void append(std::string_view output);
  // Ends a last line that had no newline.
  void finish();

  std::vector<std::string> last_lines(std::size_t count) const;
  std::string last_line() const;
  const std::filesystem::path& file() const { return file_path_; }
  // Whether the log file could be opened.
  bool file_open() const { return file_.is_open(); }

 private:
  void push_line(std::string line);

  std::filesystem::path file_path_;
  std::size_t max_lines_;
  mutable std::mutex mutex_;
  std::deque<std::string> lines_;
  std::string partial_;
  std::ofstream file_;
};

}  // namespace modelgate::launcher
