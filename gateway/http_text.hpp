#pragma once

// Text of HTTP/1.1 heads as the proxy writes them: one contiguous buffer per
// head, filled in place, instead of Beast's serializer.

#include <cstdint>
#include <memory_resource>
#include <string>
#include <string_view>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/string_body.hpp>

namespace modelgate::gateway {

// Parsed heads keep their fields, and a request its body, in a memory
// resource that lives as long as the request: one bump allocation each
// instead of one heap allocation per field.
using HeadAllocator = std::pmr::polymorphic_allocator<char>;
using HeadFields = boost::beast::http::basic_fields<HeadAllocator>;
using RequestBody =
    boost::beast::http::basic_string_body<char, std::char_traits<char>, HeadAllocator>;
using ClientRequest = boost::beast::http::request<RequestBody, HeadFields>;
using BackendResponse = boost::beast::http::response<boost::beast::http::buffer_body, HeadFields>;

// Returns "chat_completions", "completions" or "embeddings" for the paths
// routed by model, else an empty view.
std::string_view model_endpoint_label(std::string_view path);

// ASCII case-insensitive comparison, as field names compare.
bool equals_ignore_case(std::string_view left, std::string_view right);

// Decodes %XX escapes; invalid escapes stay as they are.
std::string percent_decode(std::string_view text);

std::string_view method_string(boost::beast::http::verb method);

// Whether a field must not be forwarded by a proxy (RFC 9110, section 7.6.1).
bool is_hop_by_hop(std::string_view name);

// Whether a field carries the client's API key (Authorization, x-api-key).
bool is_credential(std::string_view name);

bool is_event_stream(std::string_view content_type);

void append_status_line(std::string& out, int status, std::string_view reason = {});
void append_header(std::string& out, std::string_view name, std::string_view value);

// "1a2f\r\n" for a chunk of that many bytes.
std::string chunk_size_line(std::size_t size);

// Appends the head sent to a backend: the client's method, target and
// end-to-end fields except its credentials, plus Host, X-Request-Id,
// X-Forwarded-For, Content-Length, and `Authorization: Bearer
// upstream_api_key` unless the key is empty.
void append_upstream_head(
    std::string& out,
    const ClientRequest& request,
    std::string_view host, std::uint16_t port, std::string_view request_id,
    std::string_view client_address, std::string_view upstream_api_key = {});

// The head sent to a client: the backend's status and end-to-end fields,
// plus X-Request-Id, X-Accel-Buffering for streams, and framing.
void append_response_head(
    std::string& out,
    const BackendResponse& response,
    std::string_view request_id, bool stream, bool chunked, bool keep_alive);

}  // namespace modelgate::gateway
