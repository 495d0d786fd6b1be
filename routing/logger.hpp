#pragma once

// One named spdlog logger per component ("gateway", "launcher", "routing",
// "access"). main() configures sinks, level and format; in unit tests the
// loggers are created on first use with spdlog's defaults.

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace modelgate {

std::shared_ptr<spdlog::logger> component_logger(const std::string& name);

// Returns `text` with control characters and backslashes escaped as \xNN,
// cut after `max_size` bytes with "...". For client-controlled values in log
// lines, so that a value cannot start a new line or fake an escape.
std::string printable(std::string_view text, std::size_t max_size = 200);

}  // namespace modelgate
