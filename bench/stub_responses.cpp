#include "bench/stub_responses.hpp"

#include <bit>
#include <cmath>
#include <cstdint>
#include <iterator>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace modelgate::stub {
namespace {

void append_usage(std::string& out, const Usage& usage) {
  fmt::format_to(std::back_inserter(out),
                 R"("usage":{{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{}}})",
                 usage.prompt_tokens, usage.completion_tokens,
                 usage.prompt_tokens + usage.completion_tokens);
}

// Appends the members that open every completion object and chunk, up to and
// including the opening bracket of "choices".
void append_completion_start(std::string& out, std::string_view object,
                             const CompletionHeader& header) {
  fmt::format_to(std::back_inserter(out),
                 R"({{"id":"{}","object":"{}","created":{},"model":{},"choices":[)",
                 header.id, object, header.created, header.model_json);
}

// Appends token `index` as it appears in a chunk: every token but the first
// follows a space.
void append_token(std::string& out, int index) {
  if (index > 0) {
    out += ' ';
  }
  fmt::format_to(std::back_inserter(out), "tok{}", index);
}

// SplitMix64, a small generator whose output depends only on its input.
std::uint64_t split_mix(std::uint64_t value) {
  value += 0x9e3779b97f4a7c15ULL;
  value = (value ^ (value >> 30)) * 0xbf58476d1ce4e5b9ULL;
  value = (value ^ (value >> 27)) * 0x94d049bb133111ebULL;
  return value ^ (value >> 31);
}

// Returns component `index` of the unnormalized vector for `seed`, in [-1, 1).
float embedding_component(std::uint64_t seed, int index) {
  const std::uint64_t bits =
      split_mix(seed + static_cast<std::uint64_t>(index) * 0x632be59bd9b4e019ULL);
  const double unit = static_cast<double>(bits >> 11) * 0x1.0p-53;
  return static_cast<float>(2.0 * unit - 1.0);
}

// Appends bytes as base64 (RFC 4648, with padding) as they are put.
class Base64Writer {
 public:
  explicit Base64Writer(std::string& out) : out_(out) {}

  void put(std::uint8_t byte) {
    group_ = (group_ << 8) | byte;
    if (++size_ == 3) {
      emit(4);
      group_ = 0;
      size_ = 0;
    }
  }

  void finish() {
    if (size_ == 0) {
      return;
    }
    const int padding = 3 - size_;
    group_ <<= 8 * padding;
    emit(4 - padding);
    out_.append(static_cast<std::size_t>(padding), '=');
  }

 private:
  void emit(int characters) {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < characters; ++i) {
      out_ += kAlphabet[(group_ >> (18 - 6 * i)) & 0x3f];
    }
  }

  std::string& out_;
  std::uint32_t group_ = 0;
  int size_ = 0;
};

void append_embedding(std::string& out, std::uint64_t seed, int dimensions,
                      bool base64) {
  // The first pass computes the length, the second writes the unit vector.
  double sum_of_squares = 0.0;
  for (int i = 0; i < dimensions; ++i) {
    const double value = embedding_component(seed, i);
    sum_of_squares += value * value;
  }
  const double norm = sum_of_squares > 0.0 ? std::sqrt(sum_of_squares) : 1.0;

  if (base64) {
    out += '"';
    Base64Writer writer(out);
    for (int i = 0; i < dimensions; ++i) {
      const auto value =
          static_cast<float>(embedding_component(seed, i) / norm);
      const auto bits = std::bit_cast<std::uint32_t>(value);
      for (int shift = 0; shift < 32; shift += 8) {
        writer.put(static_cast<std::uint8_t>(bits >> shift));
      }
    }
    writer.finish();
    out += '"';
    return;
  }

  out += '[';
  for (int i = 0; i < dimensions; ++i) {
    if (i > 0) {
      out += ',';
    }
    const auto value = static_cast<float>(embedding_component(seed, i) / norm);
    fmt::format_to(std::back_inserter(out), "{}", value);
  }
  out += ']';
}

}  // namespace

void append_json_string(std::string& out, std::string_view text) {
  // Invalid UTF-8, such as from a request target, becomes U+FFFD instead of
  // an exception.
  out += nlohmann::json(text).dump(-1, ' ', false,
                                   nlohmann::json::error_handler_t::replace);
}

void append_completion_text(std::string& out, int tokens) {
  for (int i = 0; i < tokens; ++i) {
    append_token(out, i);
  }
}

void append_error_body(std::string& out, std::string_view message,
                       std::string_view type, std::string_view code) {
  out += R"({"error":{"message":)";
  append_json_string(out, message);
  out += R"(,"type":)";
  append_json_string(out, type);
  out += R"(,"code":)";
  if (code.empty()) {
    out += "null";
  } else {
    append_json_string(out, code);
  }
  out += "}}";
}

void append_model_object(std::string& out, std::string_view model_json,
                         std::int64_t created) {
  fmt::format_to(std::back_inserter(out),
                 R"({{"id":{},"object":"model","created":{},"owned_by":"modelgate-stub"}})",
                 model_json, created);
}

void append_model_list(std::string& out, std::string_view model_json,
                       std::int64_t created) {
  out += R"({"object":"list","data":[)";
  append_model_object(out, model_json, created);
  out += "]}";
}

void append_chat_completion(std::string& out, const CompletionHeader& header,
                            int tokens, const Usage& usage) {
  append_completion_start(out, "chat.completion", header);
  out += R"({"index":0,"message":{"role":"assistant","content":")";
  append_completion_text(out, tokens);
  out += R"("},"logprobs":null,"finish_reason":"stop"}],)";
  append_usage(out, usage);
  out += '}';
}

void append_chat_chunk(std::string& out, const CompletionHeader& header,
                       int index) {
  append_completion_start(out, "chat.completion.chunk", header);
  out += index == 0 ? R"({"index":0,"delta":{"role":"assistant","content":")"
                    : R"({"index":0,"delta":{"content":")";
  append_token(out, index);
  out += R"("},"logprobs":null,"finish_reason":null}]})";
}

void append_chat_final_chunk(std::string& out, const CompletionHeader& header) {
  append_completion_start(out, "chat.completion.chunk", header);
  out += R"({"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]})";
}

void append_text_completion(std::string& out, const CompletionHeader& header,
                            int tokens, const Usage& usage) {
  append_completion_start(out, "text_completion", header);
  out += R"({"text":")";
  append_completion_text(out, tokens);
  out += R"(","index":0,"logprobs":null,"finish_reason":"stop"}],)";
  append_usage(out, usage);
  out += '}';
}

void append_text_chunk(std::string& out, const CompletionHeader& header,
                       int index) {
  append_completion_start(out, "text_completion", header);
  out += R"({"text":")";
  append_token(out, index);
  out += R"(","index":0,"logprobs":null,"finish_reason":null}]})";
}

void append_text_final_chunk(std::string& out, const CompletionHeader& header) {
  append_completion_start(out, "text_completion", header);
  out += R"({"text":"","index":0,"logprobs":null,"finish_reason":"stop"}]})";
}

void append_usage_chunk(std::string& out, const CompletionHeader& header,
                        std::string_view object, const Usage& usage) {
  append_completion_start(out, object, header);
  out += "],";
  append_usage(out, usage);
  out += '}';
}

void append_embedding_list(std::string& out, std::string_view model_json,
                           std::span<const std::uint64_t> input_hashes,
                           int dimensions, bool base64,
                           std::size_t prompt_tokens) {
  out += R"({"object":"list","data":[)";
  for (std::size_t i = 0; i < input_hashes.size(); ++i) {
    if (i > 0) {
      out += ',';
    }
    fmt::format_to(std::back_inserter(out),
                   R"({{"object":"embedding","index":{},"embedding":)", i);
    append_embedding(out, input_hashes[i], dimensions, base64);
    out += '}';
  }
  fmt::format_to(std::back_inserter(out),
                 R"(],"model":{},"usage":{{"prompt_tokens":{},"total_tokens":{}}}}})",
                 model_json, prompt_tokens, prompt_tokens);
}

}  // namespace modelgate::stub
