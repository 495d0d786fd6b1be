// libFuzzer target: config loading. Any input either loads or raises
// ConfigError; nothing else may escape.

#include "config/config.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    modelgate::config::Config config = modelgate::config::parse_config(text, "fuzz.yaml");
    (void)config;
  } catch (const modelgate::config::ConfigError&) {
    // Rejected with a message: the expected outcome for most inputs.
  }
  return 0;
}
