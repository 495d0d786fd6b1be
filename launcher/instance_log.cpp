#include "launcher/instance_log.hpp"

namespace modelgate::launcher {
namespace {

// A single line longer than this is cut in memory, so that a backend that
// writes without newlines cannot grow the buffer without bound.
constexpr std::size_t kMaxLineBytes = 4096;

}  // namespace

InstanceLog::InstanceLog(const std::filesystem::path& file, std::size_t max_lines)
    : file_path_(file), max_lines_(max_lines == 0 ? 1 : max_lines) {
  if (!file.empty()) {
    file_.open(file, std::ios::app | std::ios::binary);
  }
}

void InstanceLog::append(std::string_view output) {
  std::lock_guard lock(mutex_);
  if (file_.is_open()) {
    file_.write(output.data(), static_cast<std::streamsize>(output.size()));
    file_.flush();
  }

  while (!output.empty()) {
    std::size_t newline = output.find('\n');
    std::size_t room = kMaxLineBytes - std::min(kMaxLineBytes, partial_.size());
    partial_.append(output.substr(0, std::min(newline, room)));
    if (newline == std::string_view::npos) {
      return;
    }
    push_line(std::move(partial_));
    partial_.clear();
    output.remove_prefix(newline + 1);
  }
}

void InstanceLog::finish() {
  std::lock_guard lock(mutex_);
  if (!partial_.empty()) {
    push_line(std::move(partial_));
    partial_.clear();
  }
}

void InstanceLog::push_line(std::string line) {
  if (!line.empty() && line.back() == '\r') {
    line.pop_back();
  }
  lines_.push_back(std::move(line));
  while (lines_.size() > max_lines_) {
    lines_.pop_front();
  }
}

std::vector<std::string> InstanceLog::last_lines(std::size_t count) const {
  std::lock_guard lock(mutex_);
  std::size_t first = lines_.size() > count ? lines_.size() - count : 0;
  return {lines_.begin() + static_cast<std::ptrdiff_t>(first), lines_.end()};
}

std::string InstanceLog::last_line() const {
  std::lock_guard lock(mutex_);
  for (auto line = lines_.rbegin(); line != lines_.rend(); ++line) {
    if (line->find_first_not_of(" \t") != std::string::npos) {
      return *line;
    }
  }
  return {};
}

}  // namespace modelgate::launcher
