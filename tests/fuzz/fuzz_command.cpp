// libFuzzer target: run command splitting and template rendering. The
// input's first line is the command; the rest is the value of every
// template variable.

#include "config/command.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <map>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::size_t newline = input.find('\n');
  std::string_view command = input.substr(0, newline);
  std::string value(newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1));

  std::map<std::string, std::string> values;
  for (const std::string& name : modelgate::config::template_variables()) {
    values[name] = value;
  }

  try {
    std::vector<std::string> words = modelgate::config::split_command_line(command);
    std::vector<std::string> rendered = modelgate::config::render_command(words, values);

    // Rendering never adds or removes arguments, whatever the values hold.
    if (rendered.size() != words.size()) {
      __builtin_trap();
    }
  } catch (const modelgate::config::CommandError&) {
    // An unterminated quote or an invalid placeholder: rejected.
  }
  return 0;
}
