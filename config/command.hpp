#pragma once

// Run command handling: shell-style splitting into argv and {{name}}
// template rendering. No shell ever sees a command.
//
// A command is split into words first and each word is rendered afterwards,
// so a value that contains spaces or quotes (a model name, a path) stays one
// argument and cannot add arguments of its own.

#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace modelgate::config {

class CommandError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Splits a command line into words with POSIX shell quoting: single quotes,
// double quotes (where backslash escapes $ ` " \ and newline), backslash
// outside quotes, and whitespace between words. Shell operators (|, ;, &, >,
// <, $(...)) have no meaning and stay literal text. Unquoted text from "{{"
// to the next "}}" stays in one word, so "{{ port }}" is one placeholder.
// Throws CommandError on an unterminated quote or a trailing backslash.
std::vector<std::string> split_command_line(std::string_view command);

// Template variables every run command may use.
// model_path, model_name, port, worker_ip, worker_name, instance_id,
// gpu_ids, gpu_count, config_dir.
const std::vector<std::string>& template_variables();

// Returns the names of {{ name }} placeholders in `text`, in order. Spaces
// inside the braces are allowed. Throws CommandError on an unterminated
// "{{" or an empty or invalid name (letters, digits, _ only).
std::vector<std::string> template_placeholders(std::string_view text);

// Replaces each {{name}} in `text` with values.at(name). Throws CommandError
// naming the placeholder when a name has no value.
std::string render_template(std::string_view text,
                            const std::map<std::string, std::string>& values);

// Renders every word of a split command.
std::vector<std::string> render_command(
    const std::vector<std::string>& words,
    const std::map<std::string, std::string>& values);

}  // namespace modelgate::config
