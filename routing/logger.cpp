#include "routing/logger.hpp"

#include <mutex>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace modelgate {

std::shared_ptr<spdlog::logger> component_logger(const std::string& name) {
  static std::mutex create_mutex;
  if (auto existing = spdlog::get(name)) {
    return existing;
  }
  std::lock_guard lock(create_mutex);
  if (auto existing = spdlog::get(name)) {
    return existing;
  }
  return spdlog::stderr_color_mt(name);
}

std::string printable(std::string_view text, std::size_t max_size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(std::min(text.size(), max_size) + 8);

  for (std::size_t i = 0; i < text.size(); ++i) {
    if (out.size() >= max_size) {
      out += "...";
      break;
    }
    auto byte = static_cast<unsigned char>(text[i]);
    bool control = byte < 0x20 || byte == 0x7f || byte == '\\';
    // Bytes >= 0x80 pass through: spdlog writes them as they are, and a
    // terminal shows valid UTF-8 as text.
    if (!control) {
      out += static_cast<char>(byte);
      continue;
    }
    out += "\\x";
    out += kHex[byte >> 4];
    out += kHex[byte & 0x0f];
  }
  return out;
}

}  // namespace modelgate
