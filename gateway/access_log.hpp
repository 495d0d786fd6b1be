#pragma once

// The access log: one line per finished request, in the "access" logger.

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace modelgate::gateway {

// Fields of one request for its access log line and its metrics.
struct RequestRecord {
  using Clock = std::chrono::steady_clock;

  std::string id;
  std::string deployment;  // empty until the model names a deployment
  std::string_view endpoint = "other";
  std::string instance;
  std::string_view key_name;  // the name of the API key used, if any
  Clock::time_point received = Clock::now();
  bool held = false;  // whether it waited for an instance to be ready
  double held_ms = 0;
  double first_byte_ms = -1;  // negative: no response relayed from a backend
  int status = 0;
  std::size_t bytes_sent = 0;
  bool stream = false;
  std::string dropped;  // why no complete response was sent
};

// Returns the text line for a request that took `duration_ms`:
// "ID ENDPOINT model='DEPLOYMENT' instance=ID status=200 bytes=285
// duration_ms=310.7 first_byte_ms=310.7 held_ms=310.4[ stream][ key=NAME]
// [ dropped=REASON]".
std::string access_log_text(const RequestRecord& record, double duration_ms);

// Returns one JSON object with the keys time, level, logger, request_id,
// endpoint, deployment, instance, status, bytes, duration_ms,
// first_byte_ms, held_ms, stream, key and dropped. Absent values (no
// instance, no first byte, no API key, not dropped) are null.
std::string access_log_json(const RequestRecord& record, double duration_ms,
                            std::chrono::system_clock::time_point now);

}  // namespace modelgate::gateway
