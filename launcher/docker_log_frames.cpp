#include "launcher/docker_log_frames.hpp"

#include <algorithm>

namespace modelgate::launcher {

LogFrameResult decode_log_frames(LogFrameState& state, std::string_view input,
                                 std::vector<LogChunk>& chunks) {
  if (state.failed) {
    return LogFrameResult::invalid_header;
  }

  while (!input.empty()) {
    // Inside a payload: pass on as much of it as this input holds.
    if (state.payload_left > 0) {
      std::size_t count = std::min<std::size_t>(state.payload_left, input.size());
      chunks.push_back({state.stream, input.substr(0, count)});
      state.payload_left -= static_cast<std::uint32_t>(count);
      input.remove_prefix(count);
      continue;
    }

    // Collect the header, which may itself be split across inputs.
    std::size_t count = std::min(sizeof state.header - state.header_bytes, input.size());
    std::copy_n(input.data(), count, state.header + state.header_bytes);
    state.header_bytes += count;
    input.remove_prefix(count);
    if (state.header_bytes < sizeof state.header) {
      break;
    }
    state.header_bytes = 0;

    const std::uint8_t* header = state.header;
    bool padding_zero = header[1] == 0 && header[2] == 0 && header[3] == 0;
    if (header[0] > static_cast<std::uint8_t>(LogStream::engine_error) || !padding_zero) {
      state.failed = true;
      return LogFrameResult::invalid_header;
    }
    state.stream = static_cast<LogStream>(header[0]);
    state.payload_left = (std::uint32_t{header[4]} << 24) | (std::uint32_t{header[5]} << 16) |
                         (std::uint32_t{header[6]} << 8) | std::uint32_t{header[7]};
  }
  return LogFrameResult::ok;
}

}  // namespace modelgate::launcher
