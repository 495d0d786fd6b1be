#include "config/command.hpp"

#include <cstddef>
#include <string>

namespace modelgate::config {

namespace {

bool is_word_separator(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
         c == '\f';
}

bool is_template_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_';
}

bool is_brace_space(char c) { return c == ' ' || c == '\t'; }

// One {{ name }} placeholder: its name and the characters it covers.
struct Placeholder {
  std::string name;
  std::size_t begin = 0;  // offset of the opening "{{"
  std::size_t end = 0;    // offset just past the closing "}}"
};

// Finds the next placeholder at or after `from`. Returns false when there is
// none. Throws CommandError for an unterminated "{{" or an invalid name.
bool next_placeholder(std::string_view text, std::size_t from,
                      Placeholder& placeholder) {
  const std::size_t open = text.find("{{", from);
  if (open == std::string_view::npos) {
    return false;
  }

  const std::size_t close = text.find("}}", open + 2);
  if (close == std::string_view::npos) {
    throw CommandError("unterminated \"{{\" at character " +
                       std::to_string(open + 1) + " of \"" + std::string(text) +
                       "\"");
  }

  // Spaces just inside the braces are allowed: "{{ port }}".
  std::size_t name_begin = open + 2;
  std::size_t name_end = close;
  while (name_begin < name_end && is_brace_space(text[name_begin])) {
    ++name_begin;
  }
  while (name_end > name_begin && is_brace_space(text[name_end - 1])) {
    --name_end;
  }

  const std::string_view name = text.substr(name_begin, name_end - name_begin);
  const std::string written(text.substr(open, close + 2 - open));
  if (name.empty()) {
    throw CommandError("empty template placeholder \"" + written + "\"");
  }
  for (char c : name) {
    if (!is_template_name_char(c)) {
      throw CommandError("invalid template placeholder \"" + written +
                         "\": a name contains only letters, digits and _");
    }
  }

  placeholder.name = std::string(name);
  placeholder.begin = open;
  placeholder.end = close + 2;
  return true;
}

}  // namespace

std::vector<std::string> split_command_line(std::string_view command) {
  enum class Quoting { none, single_quotes, double_quotes };

  std::vector<std::string> words;
  std::string word;
  // True once the current word has begun, so that '' yields an empty word.
  bool in_word = false;
  Quoting quote = Quoting::none;
  std::size_t quote_start = 0;

  for (std::size_t i = 0; i < command.size(); ++i) {
    const char c = command[i];

    // Inside single quotes every character is literal.
    if (quote == Quoting::single_quotes) {
      if (c == '\'') {
        quote = Quoting::none;
      } else {
        word += c;
      }
      continue;
    }

    // Inside double quotes a backslash escapes only $ ` " \ and newline.
    if (quote == Quoting::double_quotes) {
      if (c == '"') {
        quote = Quoting::none;
      } else if (c == '\\' && i + 1 < command.size() &&
                 (command[i + 1] == '$' || command[i + 1] == '`' ||
                  command[i + 1] == '"' || command[i + 1] == '\\' ||
                  command[i + 1] == '\n')) {
        // A backslash before a newline joins the lines, as in a shell.
        if (command[i + 1] != '\n') {
          word += command[i + 1];
        }
        ++i;
      } else {
        word += c;
      }
      continue;
    }

    // Unquoted text.
    if (is_word_separator(c)) {
      if (in_word) {
        words.push_back(std::move(word));
        word.clear();
        in_word = false;
      }
      continue;
    }

    if (c == '\\') {
      if (i + 1 == command.size()) {
        throw CommandError("trailing backslash at the end of \"" +
                           std::string(command) + "\"");
      }
      ++i;
      // A backslash before a newline joins the lines and adds nothing.
      if (command[i] == '\n') {
        continue;
      }
      word += command[i];
      in_word = true;
      continue;
    }

    // A {{ name }} placeholder stays in one word even with spaces inside.
    if (command.substr(i, 2) == "{{") {
      const std::size_t close = command.find("}}", i + 2);
      if (close != std::string_view::npos) {
        word.append(command.substr(i, close + 2 - i));
        in_word = true;
        i = close + 1;
        continue;
      }
    }

    if (c == '\'' || c == '"') {
      quote = c == '\'' ? Quoting::single_quotes : Quoting::double_quotes;
      quote_start = i;
      in_word = true;
      continue;
    }

    word += c;
    in_word = true;
  }

  if (quote != Quoting::none) {
    throw CommandError(std::string("unterminated ") +
                       (quote == Quoting::single_quotes ? "single" : "double") +
                       " quote opened at character " +
                       std::to_string(quote_start + 1) + " of \"" +
                       std::string(command) + "\"");
  }
  if (in_word) {
    words.push_back(std::move(word));
  }
  return words;
}

const std::vector<std::string>& template_variables() {
  static const std::vector<std::string> variables = {
      "model_path",  "model_name", "port",      "worker_ip",  "worker_name",
      "instance_id", "gpu_ids",    "gpu_count", "config_dir",
  };
  return variables;
}

std::vector<std::string> template_placeholders(std::string_view text) {
  std::vector<std::string> names;
  Placeholder placeholder;
  std::size_t from = 0;
  while (next_placeholder(text, from, placeholder)) {
    names.push_back(std::move(placeholder.name));
    from = placeholder.end;
  }
  return names;
}

std::string render_template(std::string_view text,
                            const std::map<std::string, std::string>& values) {
  std::string rendered;
  Placeholder placeholder;
  std::size_t from = 0;

  // The values are copied as they are and never scanned for placeholders.
  while (next_placeholder(text, from, placeholder)) {
    const auto value = values.find(placeholder.name);
    if (value == values.end()) {
      throw CommandError("no value for template variable \"{{" +
                         placeholder.name + "}}\"");
    }
    rendered.append(text.substr(from, placeholder.begin - from));
    rendered.append(value->second);
    from = placeholder.end;
  }

  rendered.append(text.substr(from));
  return rendered;
}

std::vector<std::string> render_command(
    const std::vector<std::string>& words,
    const std::map<std::string, std::string>& values) {
  std::vector<std::string> rendered;
  rendered.reserve(words.size());
  for (const std::string& word : words) {
    rendered.push_back(render_template(word, values));
  }
  return rendered;
}

}  // namespace modelgate::config
