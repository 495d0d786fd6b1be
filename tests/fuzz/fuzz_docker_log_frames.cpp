// libFuzzer target: the Docker log-stream frame decoder. The input is fed
// whole and, separately, split at every fifth byte; both must decode the
// same payload bytes.

#include "launcher/docker_log_frames.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

namespace {

std::string decode(std::string_view input, std::size_t piece_size) {
  modelgate::launcher::LogFrameState state;
  std::string payload;
  for (std::size_t at = 0; at < input.size(); at += piece_size) {
    std::vector<modelgate::launcher::LogChunk> chunks;
    modelgate::launcher::decode_log_frames(state, input.substr(at, piece_size), chunks);
    for (const auto& chunk : chunks) {
      payload.append(chunk.data);
    }
  }
  return payload;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  if (decode(input, input.size() + 1) != decode(input, 5)) {
    __builtin_trap();
  }
  return 0;
}
