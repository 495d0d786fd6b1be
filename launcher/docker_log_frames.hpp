#pragma once

// Decoder for the Docker Engine API's multiplexed log stream, the body of
// GET /containers/{id}/logs for a container created without a TTY.
//
// The stream is a sequence of frames. Each frame starts with an 8-byte
// header: byte 0 is the stream type (0 stdin, 1 stdout, 2 stderr, 3 an error
// from the engine itself), bytes 1-3 are zero, and bytes 4-7 hold the payload
// length as a big-endian 32-bit number. The payload follows.
//
// The decoder is a pure function over a small state, so that input may be
// split at any byte (headers included) and a frame of any length is passed
// on piece by piece without being buffered whole. It does no I/O and
// allocates only to grow the output vector, which makes it a fuzz target.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace modelgate::launcher {

enum class LogStream : std::uint8_t {
  stdin_stream = 0,
  stdout_stream = 1,
  stderr_stream = 2,
  engine_error = 3,  // written by the engine, not by the container
};

// A piece of one frame's payload. `data` points into the input passed to
// decode_log_frames(). A frame's payload may arrive as several chunks.
struct LogChunk {
  LogStream stream;
  std::string_view data;
};

// What the decoder carries from one input to the next.
struct LogFrameState {
  std::uint8_t header[8] = {};
  std::size_t header_bytes = 0;   // bytes of the current header seen so far
  LogStream stream = LogStream::stdout_stream;
  std::uint32_t payload_left = 0;  // payload bytes of the current frame still due
  bool failed = false;             // set once, by an invalid header
};

enum class LogFrameResult {
  ok,              // all of the input was consumed
  invalid_header,  // a header had an unknown stream type or non-zero padding
};

// Decodes `input`, appending the payload pieces to `chunks` (which is not
// cleared) and updating `state`. After invalid_header the stream is not
// multiplexed (a TTY container, or corrupt data): every later call returns
// invalid_header again and decodes nothing. Chunks decoded before the bad
// header in the same call are still appended.
LogFrameResult decode_log_frames(LogFrameState& state, std::string_view input,
                                 std::vector<LogChunk>& chunks);

}  // namespace modelgate::launcher
