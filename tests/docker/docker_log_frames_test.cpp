#include "launcher/docker_log_frames.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace modelgate::launcher {
namespace {

// One frame: the 8-byte header, then the payload.
std::string frame(std::uint8_t stream, const std::string& payload) {
  std::string bytes(8, '\0');
  bytes[0] = static_cast<char>(stream);
  auto size = static_cast<std::uint32_t>(payload.size());
  bytes[4] = static_cast<char>(size >> 24);
  bytes[5] = static_cast<char>((size >> 16) & 0xff);
  bytes[6] = static_cast<char>((size >> 8) & 0xff);
  bytes[7] = static_cast<char>(size & 0xff);
  return bytes + payload;
}

struct Decoded {
  std::string stdout_text;
  std::string stderr_text;
  std::string engine_text;
  LogFrameResult result = LogFrameResult::ok;
};

// Feeds `input` in pieces of `piece_size` bytes.
Decoded decode_in_pieces(const std::string& input, std::size_t piece_size) {
  LogFrameState state;
  Decoded decoded;
  for (std::size_t at = 0; at < input.size(); at += piece_size) {
    std::vector<LogChunk> chunks;
    decoded.result = decode_log_frames(state, std::string_view(input).substr(at, piece_size), chunks);
    for (const LogChunk& chunk : chunks) {
      switch (chunk.stream) {
        case LogStream::stdout_stream:
          decoded.stdout_text += chunk.data;
          break;
        case LogStream::stderr_stream:
          decoded.stderr_text += chunk.data;
          break;
        case LogStream::engine_error:
          decoded.engine_text += chunk.data;
          break;
        case LogStream::stdin_stream:
          break;
      }
    }
  }
  return decoded;
}

TEST(DockerLogFramesTest, DecodesStdoutAndStderrFrames) {
  std::string input = frame(1, "listening on 8080\n") + frame(2, "warning: slow\n") +
                      frame(1, "ready\n");

  Decoded decoded = decode_in_pieces(input, input.size());

  EXPECT_EQ(decoded.result, LogFrameResult::ok);
  EXPECT_EQ(decoded.stdout_text, "listening on 8080\nready\n");
  EXPECT_EQ(decoded.stderr_text, "warning: slow\n");
}

TEST(DockerLogFramesTest, SplitAtEveryByteGivesSameOutput) {
  std::string input = frame(1, "first line\n") + frame(2, "") + frame(2, "error\n") +
                      frame(3, "engine says no\n");

  Decoded whole = decode_in_pieces(input, input.size());
  for (std::size_t piece = 1; piece < input.size(); ++piece) {
    Decoded split = decode_in_pieces(input, piece);
    EXPECT_EQ(split.result, LogFrameResult::ok) << "pieces of " << piece;
    EXPECT_EQ(split.stdout_text, whole.stdout_text) << "pieces of " << piece;
    EXPECT_EQ(split.stderr_text, whole.stderr_text) << "pieces of " << piece;
    EXPECT_EQ(split.engine_text, whole.engine_text) << "pieces of " << piece;
  }
  EXPECT_EQ(whole.engine_text, "engine says no\n");
}

TEST(DockerLogFramesTest, PayloadPiecesPointIntoInput) {
  std::string input = frame(1, "abcdef");
  LogFrameState state;
  std::vector<LogChunk> chunks;

  decode_log_frames(state, std::string_view(input).substr(0, 11), chunks);
  decode_log_frames(state, std::string_view(input).substr(11), chunks);

  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0].data, "abc");
  EXPECT_EQ(chunks[0].data.data(), input.data() + 8);
  EXPECT_EQ(chunks[1].data, "def");
  EXPECT_EQ(state.payload_left, 0u);
}

TEST(DockerLogFramesTest, LargeLengthIsBigEndian) {
  std::string payload(70000, 'x');
  Decoded decoded = decode_in_pieces(frame(1, payload) + frame(2, "tail"), 4096);

  EXPECT_EQ(decoded.stdout_text.size(), 70000u);
  EXPECT_EQ(decoded.stderr_text, "tail");
}

TEST(DockerLogFramesTest, PartialHeaderWaitsForMoreInput) {
  std::string input = frame(2, "late");
  LogFrameState state;
  std::vector<LogChunk> chunks;

  EXPECT_EQ(decode_log_frames(state, std::string_view(input).substr(0, 5), chunks),
            LogFrameResult::ok);
  EXPECT_TRUE(chunks.empty());
  EXPECT_EQ(state.header_bytes, 5u);

  decode_log_frames(state, std::string_view(input).substr(5), chunks);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].stream, LogStream::stderr_stream);
  EXPECT_EQ(chunks[0].data, "late");
}

TEST(DockerLogFramesTest, TtyOutputIsInvalidHeader) {
  // A TTY container's logs are raw text, whose first byte is no stream type.
  LogFrameState state;
  std::vector<LogChunk> chunks;

  EXPECT_EQ(decode_log_frames(state, "server listening\n", chunks),
            LogFrameResult::invalid_header);
  EXPECT_TRUE(chunks.empty());
  EXPECT_TRUE(state.failed);
}

TEST(DockerLogFramesTest, NonZeroPaddingIsInvalidHeader) {
  std::string input = frame(1, "ok");
  input[2] = 1;
  LogFrameState state;
  std::vector<LogChunk> chunks;

  EXPECT_EQ(decode_log_frames(state, input, chunks), LogFrameResult::invalid_header);
}

TEST(DockerLogFramesTest, ChunksBeforeBadHeaderAreKept) {
  std::string input = frame(1, "good\n") + "\x07garbage!";
  LogFrameState state;
  std::vector<LogChunk> chunks;

  EXPECT_EQ(decode_log_frames(state, input, chunks), LogFrameResult::invalid_header);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].data, "good\n");

  // Once failed, later input is not decoded.
  chunks.clear();
  EXPECT_EQ(decode_log_frames(state, frame(1, "more"), chunks), LogFrameResult::invalid_header);
  EXPECT_TRUE(chunks.empty());
}

}  // namespace
}  // namespace modelgate::launcher
