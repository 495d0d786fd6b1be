#include "gateway/errors.hpp"

#include <nlohmann/json.hpp>

namespace modelgate::gateway {

ErrorInfo error_info(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::invalid_json:
      return {400, "invalid_request_error", "invalid_json", std::nullopt};
    case ErrorKind::invalid_request:
      return {400, "invalid_request_error", "invalid_request", std::nullopt};
    case ErrorKind::bad_http:
      return {400, "invalid_request_error", "bad_request", std::nullopt};
    case ErrorKind::unauthorized:
      return {401, "invalid_request_error", "invalid_api_key", std::nullopt};
    case ErrorKind::model_forbidden:
      return {403, "permission_error", "model_not_allowed", std::nullopt};
    case ErrorKind::admin_forbidden:
      return {403, "permission_error", "admin_key_required", std::nullopt};
    case ErrorKind::unknown_endpoint:
      return {404, "invalid_request_error", "unknown_url", std::nullopt};
    case ErrorKind::method_not_allowed:
      return {405, "invalid_request_error", "method_not_allowed", std::nullopt};
    case ErrorKind::model_not_found:
      return {404, "invalid_request_error", "model_not_found", std::nullopt};
    case ErrorKind::request_timeout:
      return {408, "invalid_request_error", "request_timeout", std::nullopt};
    case ErrorKind::body_too_large:
      return {413, "invalid_request_error", "request_too_large", std::nullopt};
    case ErrorKind::header_too_large:
      return {431, "invalid_request_error", "header_too_large", std::nullopt};
    case ErrorKind::queue_full:
      return {503, "server_error", "queue_full", 5};
    case ErrorKind::shutting_down:
      return {503, "server_error", "shutting_down", 5};
    case ErrorKind::backend_start_failed:
      return {502, "server_error", "backend_start_failed", std::nullopt};
    case ErrorKind::backend_error:
      return {502, "server_error", "backend_error", std::nullopt};
    case ErrorKind::backend_start_timeout:
      return {504, "server_error", "backend_start_timeout", std::nullopt};
    case ErrorKind::hold_timeout:
      return {504, "server_error", "hold_timeout", std::nullopt};
    case ErrorKind::backend_timeout:
      return {504, "server_error", "backend_timeout", std::nullopt};
  }
  return {500, "server_error", "internal_error", std::nullopt};
}

std::string error_body(ErrorKind kind, std::string_view message) {
  ErrorInfo info = error_info(kind);
  nlohmann::json body = {{"error",
                          {{"message", message},
                           {"type", info.type},
                           {"param", nullptr},
                           {"code", info.code}}}};
  // Replace invalid UTF-8 from client input instead of throwing.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace modelgate::gateway
