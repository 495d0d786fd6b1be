#include "gateway/http_text.hpp"

#include <array>

#include <boost/beast/http/status.hpp>
#include <boost/beast/http/verb.hpp>

namespace modelgate::gateway {

namespace beast = boost::beast;
namespace http = beast::http;

bool equals_ignore_case(std::string_view left, std::string_view right) {
  if (left.size() != right.size()) {
    return false;
  }
  for (std::size_t i = 0; i < left.size(); ++i) {
    char a = left[i];
    char b = right[i];
    a = (a >= 'A' && a <= 'Z') ? static_cast<char>(a - 'A' + 'a') : a;
    b = (b >= 'A' && b <= 'Z') ? static_cast<char>(b - 'A' + 'a') : b;
    if (a != b) {
      return false;
    }
  }
  return true;
}

namespace {

// Fields listed in a Connection header are hop-by-hop as well.
bool named_in_connection(std::string_view connection, std::string_view name) {
  while (!connection.empty()) {
    std::size_t comma = connection.find(',');
    std::string_view token = connection.substr(0, comma);
    std::size_t first = token.find_first_not_of(" \t");
    std::size_t last = token.find_last_not_of(" \t");
    if (first != std::string_view::npos &&
        equals_ignore_case(token.substr(first, last - first + 1), name)) {
      return true;
    }
    if (comma == std::string_view::npos) {
      break;
    }
    connection.remove_prefix(comma + 1);
  }
  return false;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

}  // namespace

std::string_view model_endpoint_label(std::string_view path) {
  if (path == "/v1/chat/completions") {
    return "chat_completions";
  }
  if (path == "/v1/completions") {
    return "completions";
  }
  if (path == "/v1/embeddings") {
    return "embeddings";
  }
  return {};
}

std::string percent_decode(std::string_view text) {
  std::string result;
  result.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      int high = hex_value(text[i + 1]);
      int low = hex_value(text[i + 2]);
      if (high >= 0 && low >= 0) {
        result += static_cast<char>(high * 16 + low);
        i += 2;
        continue;
      }
    }
    result += text[i];
  }
  return result;
}

std::string_view method_string(http::verb method) {
  auto text = http::to_string(method);
  return {text.data(), text.size()};
}

bool is_hop_by_hop(std::string_view name) {
  static constexpr std::array<std::string_view, 9> kFields = {
      "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
      "te",         "trailer",    "transfer-encoding", "upgrade"};
  for (std::string_view field : kFields) {
    if (equals_ignore_case(name, field)) {
      return true;
    }
  }
  return false;
}

bool is_credential(std::string_view name) {
  return equals_ignore_case(name, "authorization") || equals_ignore_case(name, "x-api-key");
}

bool is_event_stream(std::string_view content_type) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && media.back() == ' ') {
    media.remove_suffix(1);
  }
  return equals_ignore_case(media, "text/event-stream");
}

void append_status_line(std::string& out, int status, std::string_view reason) {
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  if (reason.empty()) {
    auto text = http::obsolete_reason(http::int_to_status(static_cast<unsigned>(status)));
    reason = std::string_view(text.data(), text.size());
  }
  out += reason;
  out += "\r\n";
}

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += ": ";
  out += value;
  out += "\r\n";
}

std::string chunk_size_line(std::size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  char digits[sizeof(std::size_t) * 2];
  int count = 0;
  do {
    digits[sizeof digits - 1 - count++] = kHex[size & 0xf];
    size >>= 4;
  } while (size != 0);
  std::string line(digits + sizeof digits - count, static_cast<std::size_t>(count));
  line += "\r\n";
  return line;
}

void append_upstream_head(std::string& out, const ClientRequest& request,
                          std::string_view host, std::uint16_t port, std::string_view request_id,
                          std::string_view client_address, std::string_view upstream_api_key) {
  out += method_string(request.method());
  out += ' ';
  out += std::string_view(request.target().data(), request.target().size());
  out += " HTTP/1.1\r\n";

  // An IPv6 literal goes in brackets, so that its colons are not read as
  // the port separator.
  bool ipv6_literal = host.find(':') != std::string_view::npos;
  out += "Host: ";
  out += ipv6_literal ? "[" : "";
  out += host;
  out += ipv6_literal ? "]:" : ":";
  out += std::to_string(port);
  out += "\r\n";

  auto connection_field = request[http::field::connection];
  std::string_view connection(connection_field.data(), connection_field.size());
  std::string forwarded_for;
  for (const auto& field : request) {
    std::string_view name(field.name_string().data(), field.name_string().size());
    std::string_view value(field.value().data(), field.value().size());
    if (is_hop_by_hop(name) || named_in_connection(connection, name) ||
        equals_ignore_case(name, "host") || equals_ignore_case(name, "content-length") ||
        equals_ignore_case(name, "expect") || equals_ignore_case(name, "x-request-id") ||
        is_credential(name)) {
      continue;
    }
    if (equals_ignore_case(name, "x-forwarded-for")) {
      forwarded_for.append(value).append(", ");
      continue;
    }
    append_header(out, name, value);
  }

  forwarded_for += client_address;
  append_header(out, "X-Forwarded-For", forwarded_for);
  append_header(out, "X-Request-Id", request_id);
  append_header(out, "Content-Length", std::to_string(request.body().size()));
  if (!upstream_api_key.empty()) {
    out += "Authorization: Bearer ";
    out += upstream_api_key;
    out += "\r\n";
  }
  out += "\r\n";
}

void append_response_head(std::string& out, const BackendResponse& response,
                          std::string_view request_id, bool stream, bool chunked,
                          bool keep_alive) {
  auto reason = response.reason();
  append_status_line(out, response.result_int(), std::string_view(reason.data(), reason.size()));

  auto connection_field = response[http::field::connection];
  std::string_view connection(connection_field.data(), connection_field.size());
  std::string_view content_length;
  for (const auto& field : response) {
    std::string_view name(field.name_string().data(), field.name_string().size());
    std::string_view value(field.value().data(), field.value().size());
    if (equals_ignore_case(name, "content-length")) {
      content_length = value;
      continue;
    }
    if (is_hop_by_hop(name) || named_in_connection(connection, name) ||
        equals_ignore_case(name, "x-request-id") || equals_ignore_case(name, "x-accel-buffering")) {
      continue;
    }
    append_header(out, name, value);
  }

  append_header(out, "X-Request-Id", request_id);
  if (stream) {
    append_header(out, "X-Accel-Buffering", "no");
  }
  if (chunked) {
    append_header(out, "Transfer-Encoding", "chunked");
  } else if (!content_length.empty()) {
    append_header(out, "Content-Length", content_length);
  }
  if (!keep_alive) {
    append_header(out, "Connection", "close");
  }
  out += "\r\n";
}

}  // namespace modelgate::gateway
