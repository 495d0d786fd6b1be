#pragma once

// Reads the routing fields of an OpenAI request body without keeping a DOM:
// the top-level "model" and "stream" members.

#include <cstddef>
#include <string>
#include <string_view>

namespace modelgate::routing {

enum class ModelRequestError {
  none,
  invalid_json,     // not valid JSON, or truncated
  not_an_object,    // the body is JSON, but not an object
  missing_model,    // no top-level "model"
  model_not_string, // "model" is a number, an object, null, ...
  empty_model,      // "model": ""
  duplicate_model,  // "model" appears twice at the top level
  too_deep,         // nesting deeper than the limit
};

struct ModelRequest {
  ModelRequestError error = ModelRequestError::none;
  // For invalid_json: the parser's message, with the byte offset.
  std::string detail;
  std::string model;
  bool stream = false;
};

inline constexpr std::size_t kMaxJsonDepth = 128;

// Validates the whole body as JSON and extracts "model" and "stream".
ModelRequest parse_model_request(std::string_view body,
                                 std::size_t max_depth = kMaxJsonDepth);

}  // namespace modelgate::routing
