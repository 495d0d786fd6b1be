// libFuzzer target: model extraction from request bodies.

#include "routing/model_request.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  modelgate::routing::ModelRequest request = modelgate::routing::parse_model_request(body);

  // A successful parse always names a non-empty model.
  if (request.error == modelgate::routing::ModelRequestError::none && request.model.empty()) {
    __builtin_trap();
  }
  return 0;
}
