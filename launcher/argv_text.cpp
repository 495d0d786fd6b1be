#include "launcher/argv_text.hpp"

#include <algorithm>
#include <array>
#include <string_view>

#include "routing/logger.hpp"

namespace modelgate::launcher {
namespace {

constexpr std::string_view kRedacted = "<redacted>";
constexpr std::size_t kMaxWordBytes = 1000;
constexpr std::size_t kMaxLineBytes = 4000;

// Parts of an option name, split at '-', '_' and '.', that mark its value
// as a secret. "--max-tokens" and "--tokenizer" have no such part.
constexpr std::array<std::string_view, 8> kSecretParts = {
    "key", "apikey", "token", "secret", "password", "passwd", "credential", "credentials"};

bool is_secret_part(std::string_view part) {
  std::string lower;
  for (char c : part) {
    lower += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  for (std::string_view secret : kSecretParts) {
    if (lower == secret) {
      return true;
    }
  }
  return false;
}

// Returns whether `name`, an option without its leading dashes and
// "=value", names a secret.
bool is_secret_option(std::string_view name) {
  std::size_t begin = 0;
  while (begin <= name.size()) {
    std::size_t end = name.find_first_of("-_.", begin);
    if (end == std::string_view::npos) {
      end = name.size();
    }
    if (is_secret_part(name.substr(begin, end - begin))) {
      return true;
    }
    begin = end + 1;
  }
  return false;
}

// Appends `word` with control characters and backslashes escaped (see
// printable()), in single quotes if it is empty or has spaces or quotes.
void append_word(std::string& text, std::string_view word) {
  std::string escaped = printable(word, kMaxWordBytes);
  bool plain = !escaped.empty() && escaped.find_first_of(" '\"\\") == std::string::npos;
  if (plain) {
    text += escaped;
    return;
  }
  text += '\'';
  for (char c : escaped) {
    if (c == '\'') {
      text += "'\\''";
    } else {
      text += c;
    }
  }
  text += '\'';
}

}  // namespace

std::string argv_for_log(const std::vector<std::string>& argv) {
  std::string text;
  bool redact_next = false;
  for (const std::string& word : argv) {
    if (!text.empty()) {
      text += ' ';
    }

    // The word after a secret option is its value, unless it is an option.
    if (redact_next && !word.starts_with('-')) {
      redact_next = false;
      text += kRedacted;
      continue;
    }
    redact_next = false;

    if (word.starts_with('-')) {
      std::size_t dashes = std::min(word.find_first_not_of('-'), word.size());
      std::string_view option = std::string_view(word).substr(dashes);
      std::size_t equals = option.find('=');
      if (is_secret_option(option.substr(0, equals))) {
        if (equals == std::string_view::npos) {
          redact_next = true;
        } else {
          std::string redacted = word.substr(0, dashes + equals + 1);
          redacted += kRedacted;
          append_word(text, redacted);
          continue;
        }
      }
    }
    append_word(text, word);
  }
  if (text.size() > kMaxLineBytes) {
    text.resize(kMaxLineBytes);
    text += "...";
  }
  return text;
}

}  // namespace modelgate::launcher
