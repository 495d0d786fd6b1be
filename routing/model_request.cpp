#include "routing/model_request.hpp"

#include <nlohmann/json.hpp>

namespace modelgate::routing {
namespace {

using json = nlohmann::json;

// SAX handler that keeps only what routing needs. Returning false from a
// callback stops the parse; the reason is left in `result`.
class RoutingFieldsHandler : public nlohmann::json_sax<json> {
 public:
  RoutingFieldsHandler(ModelRequest& result, std::size_t max_depth)
      : result_(result), max_depth_(max_depth) {}

  bool null() override { return on_value(Kind::other); }
  bool boolean(bool value) override {
    if (depth_ == 1 && current_key_ == Key::stream) {
      result_.stream = value;
    }
    return on_value(Kind::other);
  }
  bool number_integer(number_integer_t) override { return on_value(Kind::other); }
  bool number_unsigned(number_unsigned_t) override { return on_value(Kind::other); }
  bool number_float(number_float_t, const string_t&) override { return on_value(Kind::other); }
  bool binary(binary_t&) override { return on_value(Kind::other); }

  bool string(string_t& value) override {
    if (depth_ == 1 && current_key_ == Key::model) {
      result_.model = std::move(value);
      return on_value(Kind::string);
    }
    return on_value(Kind::other);
  }

  bool start_object(std::size_t) override {
    if (depth_ == 0) {
      top_level_object_ = true;
    }
    return open();
  }
  bool start_array(std::size_t) override { return open(); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }

  bool key(string_t& name) override {
    if (depth_ != 1) {
      return true;
    }
    if (name == "model") {
      if (seen_model_) {
        result_.error = ModelRequestError::duplicate_model;
        return false;
      }
      seen_model_ = true;
      current_key_ = Key::model;
    } else if (name == "stream") {
      current_key_ = Key::stream;
    } else {
      current_key_ = Key::other;
    }
    return true;
  }

  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& error) override {
    result_.error = ModelRequestError::invalid_json;
    result_.detail = error.what();
    // nlohmann's message already names the byte, but keep it explicit.
    result_.detail += " (byte " + std::to_string(position) + ")";
    return false;
  }

  bool seen_model() const { return seen_model_; }
  bool top_level_object() const { return top_level_object_; }

 private:
  enum class Kind { string, other };
  enum class Key { none, model, stream, other };

  bool on_value(Kind kind) {
    if (depth_ == 0) {
      // A scalar document such as `"text"` or `42`.
      result_.error = ModelRequestError::not_an_object;
      return false;
    }
    if (depth_ == 1 && current_key_ == Key::model && kind != Kind::string) {
      result_.error = ModelRequestError::model_not_string;
      return false;
    }
    if (depth_ == 1) {
      current_key_ = Key::none;
    }
    return true;
  }

  bool open() {
    if (depth_ == 1 && current_key_ == Key::model) {
      result_.error = ModelRequestError::model_not_string;
      return false;
    }
    if (depth_ == 1) {
      current_key_ = Key::none;
    }
    ++depth_;
    if (depth_ > max_depth_) {
      result_.error = ModelRequestError::too_deep;
      return false;
    }
    return true;
  }

  bool close() {
    --depth_;
    return true;
  }

  ModelRequest& result_;
  std::size_t max_depth_;
  std::size_t depth_ = 0;
  Key current_key_ = Key::none;
  bool seen_model_ = false;
  bool top_level_object_ = false;
};

}  // namespace

ModelRequest parse_model_request(std::string_view body, std::size_t max_depth) {
  ModelRequest result;

  // JSON has no raw NUL byte anywhere, even inside strings, but nlohmann
  // stops reading at one and accepts what came before.
  if (body.find('\0') != std::string_view::npos) {
    result.error = ModelRequestError::invalid_json;
    result.detail = "NUL byte at byte " + std::to_string(body.find('\0'));
    return result;
  }

  RoutingFieldsHandler handler(result, max_depth);
  bool parsed = json::sax_parse(body.begin(), body.end(), &handler);
  if (!parsed) {
    if (result.error == ModelRequestError::none) {
      result.error = ModelRequestError::invalid_json;
    }
    return result;
  }

  if (!handler.top_level_object()) {
    result.error = ModelRequestError::not_an_object;
    return result;
  }
  if (!handler.seen_model()) {
    result.error = ModelRequestError::missing_model;
    return result;
  }
  if (result.model.empty()) {
    result.error = ModelRequestError::empty_model;
    return result;
  }
  return result;
}

}  // namespace modelgate::routing
