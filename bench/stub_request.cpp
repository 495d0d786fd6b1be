#include "bench/stub_request.hpp"

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "bench/stub_options.hpp"

namespace modelgate::stub {

void Request::clear() {
  method = http::verb::unknown;
  method_name.clear();
  target.clear();
  version = 11;
  has_request_id = false;
  request_id.clear();
  authorization.clear();
  expect_continue = false;
  body.clear();
}

std::string_view Request::path() const {
  const std::string_view whole = target;
  return whole.substr(0, whole.find('?'));
}

void RequestParser::on_request_impl(http::verb method,
                                    beast::string_view method_name,
                                    beast::string_view target, int version,
                                    error_code&) {
  request_.method = method;
  request_.method_name.assign(method_name.data(), method_name.size());
  request_.target.assign(target.data(), target.size());
  request_.version = version;
}

void RequestParser::on_response_impl(int, beast::string_view, int,
                                     error_code& ec) {
  // Unreachable: a request parser never reads a status line.
  ec = http::error::bad_version;
}

void RequestParser::on_field_impl(http::field name,
                                  beast::string_view name_string,
                                  beast::string_view value, error_code&) {
  if (name == http::field::expect) {
    request_.expect_continue = beast::iequals(value, "100-continue");
    return;
  }

  if (name == http::field::authorization) {
    request_.authorization.assign(value.data(), value.size());
    return;
  }

  if (beast::iequals(name_string, "x-request-id")) {
    request_.has_request_id = true;
    request_.request_id.assign(value.data(), value.size());
  }
}

void RequestParser::on_header_impl(error_code&) {}

void RequestParser::on_body_init_impl(
    const boost::optional<std::uint64_t>& content_length, error_code&) {
  // basic_parser has already rejected a Content-Length above body_limit().
  if (content_length) {
    request_.body.reserve(static_cast<std::size_t>(*content_length));
  }
}

std::size_t RequestParser::on_body_impl(beast::string_view body,
                                        error_code&) {
  request_.body.append(body.data(), body.size());
  return body.size();
}

void RequestParser::on_chunk_header_impl(std::uint64_t, beast::string_view,
                                         error_code&) {}

std::size_t RequestParser::on_chunk_body_impl(std::uint64_t,
                                              beast::string_view body,
                                              error_code&) {
  request_.body.append(body.data(), body.size());
  return body.size();
}

void RequestParser::on_finish_impl(error_code&) {}

void BodyFields::clear() {
  stream = false;
  include_usage = false;
  max_tokens.reset();
  dimensions.reset();
  base64 = false;
  has_messages = false;
  has_input = false;
  prompt_words = 0;
  input_hashes.clear();
}

namespace {

using json = nlohmann::json;

// 64-bit FNV-1a, which seeds the deterministic embedding of an input.
constexpr std::uint64_t kFnvOffset = 0xcbf29ce484222325ULL;
constexpr std::uint64_t kFnvPrime = 0x100000001b3ULL;

std::uint64_t hash_bytes(std::uint64_t hash, const void* data,
                         std::size_t size) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < size; ++i) {
    hash = (hash ^ bytes[i]) * kFnvPrime;
  }
  return hash;
}

std::size_t count_words(std::string_view text) {
  std::size_t words = 0;
  bool in_word = false;
  for (const char c : text) {
    const bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (!space && !in_word) {
      ++words;
    }
    in_word = !space;
  }
  return words;
}

// A SAX handler for nlohmann::json::sax_parse that fills BodyFields while the
// body is parsed, so that no DOM is built. `depth_` is the number of objects
// and arrays open around the current value: members of the root object are
// read at depth 1.
class BodyReader {
 public:
  BodyReader(BodyFields& fields, std::string& error)
      : fields_(fields), error_(error) {}

  bool null() { return check_value(Kind::null); }

  bool boolean(bool value) {
    if (!check_value(Kind::boolean)) {
      return false;
    }
    if (depth_ == 1 && member_ == Member::stream) {
      fields_.stream = value;
    } else if (depth_ == 2 && member_ == Member::stream_options &&
               in_include_usage_) {
      fields_.include_usage = value;
    }
    return true;
  }

  bool number_integer(json::number_integer_t value) {
    if (!check_value(Kind::integer)) {
      return false;
    }
    if (depth_ == 1) {
      return store_integer(value);
    }
    if (member_ == Member::input) {
      fields_.input_hashes.back() =
          hash_bytes(fields_.input_hashes.back(), &value, sizeof value);
    }
    return true;
  }

  bool number_unsigned(json::number_unsigned_t value) {
    // Values above the int64 maximum fail every range check below anyway.
    constexpr auto kMax = std::numeric_limits<json::number_integer_t>::max();
    return number_integer(value > static_cast<json::number_unsigned_t>(kMax)
                              ? kMax
                              : static_cast<json::number_integer_t>(value));
  }

  bool number_float(json::number_float_t, const json::string_t&) {
    return check_value(Kind::number);
  }

  bool string(json::string_t& value) {
    if (!check_value(Kind::string)) {
      return false;
    }

    if (depth_ == 1 && member_ == Member::encoding_format) {
      if (value != "float" && value != "base64") {
        return fail("encoding_format must be \"float\" or \"base64\"");
      }
      fields_.base64 = value == "base64";
      return true;
    }

    if (member_ == Member::messages || member_ == Member::prompt ||
        member_ == Member::input) {
      fields_.prompt_words += count_words(value);
    }
    if (member_ == Member::input) {
      fields_.input_hashes.push_back(
          hash_bytes(kFnvOffset, value.data(), value.size()));
    }
    return true;
  }

  bool binary(json::binary_t&) { return check_value(Kind::other); }

  bool start_object(std::size_t) {
    if (!check_value(Kind::object)) {
      return false;
    }
    ++depth_;
    return true;
  }

  bool key(json::string_t& name) {
    if (depth_ == 1) {
      member_ = member_of(name);
      if (member_ != Member::other) {
        member_name_ = name;
      }
    } else if (depth_ == 2 && member_ == Member::stream_options) {
      in_include_usage_ = name == "include_usage";
    }
    return true;
  }

  bool end_object() {
    --depth_;
    return true;
  }

  bool start_array(std::size_t) {
    if (!check_value(Kind::array)) {
      return false;
    }
    if (member_ == Member::input && depth_ == 2) {
      // An array of token ids: one input.
      fields_.input_hashes.push_back(kFnvOffset);
    }
    ++depth_;
    return true;
  }

  bool end_array() {
    --depth_;
    return true;
  }

  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& exception) {
    // what() starts with "[json.exception.parse_error.101] ", which means
    // nothing to a client.
    std::string_view detail = exception.what();
    if (const auto end = detail.find("] "); end != std::string_view::npos) {
      detail.remove_prefix(end + 2);
    }
    error_ = "Invalid JSON in the request body: ";
    error_ += detail;
    return false;
  }

 private:
  enum class Kind { null, boolean, integer, number, string, object, array, other };

  // The root members that change the response.
  enum class Member {
    other,
    stream,
    stream_options,
    max_tokens,
    dimensions,
    encoding_format,
    messages,
    prompt,
    input,
  };

  static Member member_of(std::string_view name) {
    if (name == "stream") {
      return Member::stream;
    }
    if (name == "stream_options") {
      return Member::stream_options;
    }
    if (name == "max_tokens" || name == "max_completion_tokens") {
      return Member::max_tokens;
    }
    if (name == "dimensions") {
      return Member::dimensions;
    }
    if (name == "encoding_format") {
      return Member::encoding_format;
    }
    if (name == "messages") {
      return Member::messages;
    }
    if (name == "prompt") {
      return Member::prompt;
    }
    if (name == "input") {
      return Member::input;
    }
    return Member::other;
  }

  bool fail(std::string message) {
    error_ = std::move(message);
    return false;
  }

  // Checks the type of a value that starts at depth_, before its contents.
  bool check_value(Kind kind) {
    if (depth_ == 0) {
      if (kind != Kind::object) {
        return fail("The request body must be a JSON object.");
      }
      return true;
    }
    if (depth_ == 1) {
      return check_member(kind);
    }
    if (member_ == Member::input) {
      return check_input_element(kind);
    }
    if (depth_ == 2 && member_ == Member::stream_options && in_include_usage_ &&
        kind != Kind::boolean && kind != Kind::null) {
      return fail("stream_options.include_usage must be a boolean.");
    }
    return true;
  }

  bool check_member(Kind kind) {
    const bool null = kind == Kind::null;
    switch (member_) {
      case Member::other:
        return true;
      case Member::stream:
        return kind == Kind::boolean || null || fail_type("a boolean");
      case Member::stream_options:
        return kind == Kind::object || null || fail_type("an object");
      case Member::max_tokens:
      case Member::dimensions:
        return kind == Kind::integer || null || fail_type("an integer");
      case Member::encoding_format:
        return kind == Kind::string || null || fail_type("a string");
      case Member::messages:
        fields_.has_messages = kind == Kind::array;
        return kind == Kind::array || fail_type("an array");
      case Member::prompt:
        return kind == Kind::string || kind == Kind::array || null ||
               fail_type("a string or an array");
      case Member::input:
        // A repeated input member replaces the earlier one.
        fields_.has_input = true;
        fields_.input_hashes.clear();
        input_elements_ = Kind::null;
        return kind == Kind::string || kind == Kind::array ||
               fail("input must be a string, an array of strings, an array "
                    "of token ids or an array of token id arrays.");
    }
    return true;
  }

  bool fail_type(std::string_view expected) {
    return fail(member_name_ + " must be " + std::string(expected) + ".");
  }

  // Checks an element of the input array (depth 2) or of a token id array in
  // it (depth 3). All elements of the input array must have one type.
  bool check_input_element(Kind kind) {
    if (depth_ == 2) {
      const bool allowed = kind == Kind::string || kind == Kind::integer ||
                           kind == Kind::array;
      if (!allowed ||
          (input_elements_ != Kind::null && input_elements_ != kind)) {
        return fail("input must be a string, an array of strings, an array "
                    "of token ids or an array of token id arrays.");
      }
      if (kind == Kind::integer && input_elements_ == Kind::null) {
        // A flat array of token ids: one input.
        fields_.input_hashes.push_back(kFnvOffset);
      }
      input_elements_ = kind;
      return true;
    }
    if (depth_ == 3 && kind == Kind::integer) {
      return true;
    }
    return fail("input token id arrays must contain only integers.");
  }

  bool store_integer(json::number_integer_t value) {
    if (member_ == Member::max_tokens) {
      if (value < 1 || value > kMaxTokens) {
        return fail(member_name_ + " must be between 1 and " +
                    std::to_string(kMaxTokens) + ".");
      }
      fields_.max_tokens = value;
    } else if (member_ == Member::dimensions) {
      if (value < 1 || value > kMaxDimensions) {
        return fail("dimensions must be between 1 and " +
                    std::to_string(kMaxDimensions) + ".");
      }
      fields_.dimensions = value;
    }
    return true;
  }

  BodyFields& fields_;
  std::string& error_;
  int depth_ = 0;
  Member member_ = Member::other;  // the root member whose value is read
  std::string member_name_;
  bool in_include_usage_ = false;  // inside stream_options.include_usage
  Kind input_elements_ = Kind::null;  // type of the input array's elements
};

}  // namespace

std::string read_body(std::string_view body, BodyFields& fields) {
  fields.clear();

  std::string error;
  BodyReader reader(fields, error);
  const bool parsed = json::sax_parse(body.begin(), body.end(), &reader);
  if (!parsed && error.empty()) {
    error = "Invalid JSON in the request body.";
  }
  if (parsed && fields.has_input && fields.input_hashes.empty()) {
    error = "input must not be empty.";
  }
  return error;
}

}  // namespace modelgate::stub
