#pragma once

// JSON bodies of the stub backend's responses, appended to a caller's buffer
// so that a session reuses one buffer for every response.
//
// Each function writes exactly one JSON value, without a trailing newline.
// The formats follow the OpenAI API objects chat.completion,
// chat.completion.chunk, text_completion, list of model and list of
// embedding.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace modelgate::stub {

// The fields that a completion and all of its chunks share.
struct CompletionHeader {
  std::string_view id;          // such as "chatcmpl-1f2e00000003"
  std::int64_t created = 0;     // Unix time in seconds
  std::string_view model_json;  // the model id as a JSON string, with quotes
};

// Token counts for the `usage` object.
struct Usage {
  std::size_t prompt_tokens = 0;
  std::size_t completion_tokens = 0;
};

// Appends `text` as a JSON string, with quotes and escapes.
void append_json_string(std::string& out, std::string_view text);

// Appends the text of a completion of `tokens` tokens: "tok0 tok1 ...".
void append_completion_text(std::string& out, int tokens);

void append_error_body(std::string& out, std::string_view message,
                       std::string_view type, std::string_view code);

void append_model_object(std::string& out, std::string_view model_json,
                         std::int64_t created);
void append_model_list(std::string& out, std::string_view model_json,
                       std::int64_t created);

void append_chat_completion(std::string& out, const CompletionHeader& header,
                            int tokens, const Usage& usage);
// Appends the chunk that carries token `index`. The first chunk also carries
// the role, and every later chunk starts its content with a space, so that
// the contents of all chunks join to the text of append_completion_text().
void append_chat_chunk(std::string& out, const CompletionHeader& header,
                       int index);
// Appends the chunk with an empty delta and finish_reason "stop".
void append_chat_final_chunk(std::string& out, const CompletionHeader& header);

void append_text_completion(std::string& out, const CompletionHeader& header,
                            int tokens, const Usage& usage);
void append_text_chunk(std::string& out, const CompletionHeader& header,
                       int index);
void append_text_final_chunk(std::string& out, const CompletionHeader& header);

// Appends the chunk with no choices that streams send last when the request
// sets stream_options.include_usage. `object` is "chat.completion.chunk" or
// "text_completion".
void append_usage_chunk(std::string& out, const CompletionHeader& header,
                        std::string_view object, const Usage& usage);

// Appends a list with one embedding per input hash. The vectors depend only
// on the hash and the dimensions, and have unit length. With `base64` each
// vector is the base64 of its little-endian float32 values, as the OpenAI API
// returns for encoding_format "base64".
void append_embedding_list(std::string& out, std::string_view model_json,
                           std::span<const std::uint64_t> input_hashes,
                           int dimensions, bool base64,
                           std::size_t prompt_tokens);

}  // namespace modelgate::stub
