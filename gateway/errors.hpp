#pragma once

// Client-facing errors in OpenAI's format:
// {"error": {"message": ..., "type": ..., "param": null, "code": ...}}.
// Every rejection the gateway sends is one of these kinds.

#include <optional>
#include <string>
#include <string_view>

namespace modelgate::gateway {

enum class ErrorKind {
  invalid_json,         // 400
  invalid_request,      // 400: valid JSON, but no usable "model"
  bad_http,             // 400: malformed HTTP
  unauthorized,         // 401: no API key, or one that is not configured
  model_forbidden,      // 403: the key may not use the model
  admin_forbidden,      // 403: admin endpoints need an admin key here
  unknown_endpoint,     // 404
  method_not_allowed,   // 405
  model_not_found,      // 404
  request_timeout,      // 408: the request did not arrive in time
  body_too_large,       // 413
  header_too_large,     // 431
  queue_full,           // 503, with Retry-After
  shutting_down,        // 503, with Retry-After
  backend_start_failed, // 502
  backend_error,        // 502: could not connect, or the connection broke
  backend_start_timeout,// 504
  hold_timeout,         // 504
  backend_timeout,      // 504: no response within upstream_response_timeout
};

struct ErrorInfo {
  int status;
  std::string_view type;  // OpenAI's error type
  std::string_view code;  // machine-readable code
  std::optional<int> retry_after_seconds;
};

ErrorInfo error_info(ErrorKind kind);

// The JSON body for an error.
std::string error_body(ErrorKind kind, std::string_view message);

}  // namespace modelgate::gateway
