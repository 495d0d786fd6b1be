#include "config/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>
#include <system_error>

#include "config/sections.hpp"
#include "config/yaml_reader.hpp"

namespace modelgate::config {

namespace {

std::string format_error(const std::string& file, Location location,
                         const std::string& key_path,
                         const std::string& problem, const std::string& fix) {
  std::string message = file;
  if (location.line > 0) {
    message += ":" + std::to_string(location.line) + ":" +
               std::to_string(location.column);
  }
  message += ": ";
  if (!key_path.empty()) {
    message += key_path + ": ";
  }
  message += problem + ".";
  if (!fix.empty()) {
    message += " " + fix + ".";
  }
  return message;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Reads the digits at the start of `text` into `number` and drops them from
// `text`. Returns false when there are none or the number overflows.
bool consume_number(std::string_view& text, std::uint64_t& number) {
  std::size_t length = 0;
  while (length < text.size() && is_digit(text[length])) {
    ++length;
  }
  if (length == 0) {
    return false;
  }

  const auto [end, error] =
      std::from_chars(text.data(), text.data() + length, number);
  if (error != std::errc() || end != text.data() + length) {
    return false;
  }
  text.remove_prefix(length);
  return true;
}

// Adds number * scale to total. Returns false, leaving total unchanged, when
// the result would exceed `limit`.
bool accumulate(std::uint64_t& total, std::uint64_t number, std::uint64_t scale,
                std::uint64_t limit) {
  if (number > limit / scale) {
    return false;
  }
  const std::uint64_t part = number * scale;
  if (part > limit - total) {
    return false;
  }
  total += part;
  return true;
}

// Compares the runs of digits `a` and `b` as numbers of any length.
int compare_numbers(std::string_view a, std::string_view b) {
  const std::size_t a_zeros = std::min(a.find_first_not_of('0'), a.size());
  const std::size_t b_zeros = std::min(b.find_first_not_of('0'), b.size());
  a.remove_prefix(a_zeros);
  b.remove_prefix(b_zeros);
  if (a.size() != b.size()) {
    return a.size() < b.size() ? -1 : 1;
  }
  return a.compare(b);
}

// Removes and returns the run of digits or of other characters at the start.
std::string_view take_run(std::string_view& text) {
  const bool digits = is_digit(text.front());
  std::size_t length = 1;
  while (length < text.size() && is_digit(text[length]) == digits) {
    ++length;
  }
  const std::string_view run = text.substr(0, length);
  text.remove_prefix(length);
  return run;
}

}  // namespace

ConfigError::ConfigError(std::string file, Location location,
                         std::string key_path, std::string problem,
                         std::string fix)
    : std::runtime_error(format_error(file, location, key_path, problem, fix)),
      file_(std::move(file)),
      location_(location),
      key_path_(std::move(key_path)),
      problem_(std::move(problem)),
      fix_(std::move(fix)) {}

const Deployment* Config::find_deployment(std::string_view name) const {
  for (const Deployment& deployment : deployments) {
    if (deployment.name == name) {
      return &deployment;
    }
  }
  return nullptr;
}

const Worker* Config::find_worker(std::string_view name) const {
  for (const Worker& worker : workers) {
    if (worker.name == name) {
      return &worker;
    }
  }
  return nullptr;
}

const Worker* Config::place(const Deployment& deployment) const {
  if (!deployment.worker.empty()) {
    return find_worker(deployment.worker);
  }
  for (const Worker& worker : workers) {
    bool offers = deployment.framework.empty() ||
                  std::find(worker.frameworks.begin(), worker.frameworks.end(),
                            deployment.framework) != worker.frameworks.end();
    if (offers) {
      return &worker;
    }
  }
  return nullptr;
}

std::optional<Duration> parse_duration(std::string_view text) {
  constexpr std::uint64_t kLimit =
      static_cast<std::uint64_t>(std::numeric_limits<Duration::rep>::max());
  std::uint64_t number = 0;

  // A plain number is seconds.
  if (!text.empty() && text.find_first_not_of("0123456789") == text.npos) {
    std::uint64_t milliseconds = 0;
    if (!consume_number(text, number) ||
        !accumulate(milliseconds, number, 1000, kLimit)) {
      return std::nullopt;
    }
    return Duration(static_cast<Duration::rep>(milliseconds));
  }

  // Otherwise number-unit pairs, each unit smaller than the one before.
  struct Unit {
    std::string_view suffix;
    std::uint64_t milliseconds;
  };
  static constexpr Unit kUnits[] = {
      {"h", 3'600'000}, {"ms", 1}, {"m", 60'000}, {"s", 1000}};

  std::uint64_t total = 0;
  std::uint64_t previous_scale = std::numeric_limits<std::uint64_t>::max();
  if (text.empty()) {
    return std::nullopt;
  }
  while (!text.empty()) {
    if (!consume_number(text, number)) {
      return std::nullopt;
    }

    // "ms" is tried before "m", because "m" is its prefix.
    const Unit* unit = nullptr;
    for (const Unit& candidate : kUnits) {
      if (text.substr(0, candidate.suffix.size()) == candidate.suffix) {
        unit = &candidate;
        break;
      }
    }
    if (unit == nullptr || unit->milliseconds >= previous_scale) {
      return std::nullopt;
    }
    text.remove_prefix(unit->suffix.size());
    previous_scale = unit->milliseconds;

    if (!accumulate(total, number, unit->milliseconds, kLimit)) {
      return std::nullopt;
    }
  }
  return Duration(static_cast<Duration::rep>(total));
}

std::optional<std::size_t> parse_size(std::string_view text) {
  struct Unit {
    std::string_view suffix;
    std::uint64_t bytes;
  };
  static constexpr Unit kUnits[] = {
      {"B", 1},
      {"KB", 1000},
      {"MB", 1000 * 1000},
      {"GB", 1000 * 1000 * 1000},
      {"KiB", 1024},
      {"MiB", 1024 * 1024},
      {"GiB", 1024 * 1024 * 1024},
  };

  std::uint64_t number = 0;
  if (!consume_number(text, number)) {
    return std::nullopt;
  }
  if (!text.empty() && text.front() == ' ') {
    text.remove_prefix(1);
    if (text.empty()) {
      return std::nullopt;
    }
  }

  std::uint64_t scale = 1;
  if (!text.empty()) {
    const auto unit =
        std::find_if(std::begin(kUnits), std::end(kUnits),
                     [&](const Unit& u) { return u.suffix == text; });
    if (unit == std::end(kUnits)) {
      return std::nullopt;
    }
    scale = unit->bytes;
  }

  std::uint64_t bytes = 0;
  if (!accumulate(bytes, number, scale,
                  std::numeric_limits<std::size_t>::max())) {
    return std::nullopt;
  }
  return static_cast<std::size_t>(bytes);
}

int compare_versions(std::string_view a, std::string_view b) {
  std::string_view rest_a = a;
  std::string_view rest_b = b;
  while (!rest_a.empty() && !rest_b.empty()) {
    const std::string_view run_a = take_run(rest_a);
    const std::string_view run_b = take_run(rest_b);
    const bool digits_a = is_digit(run_a.front());
    const bool digits_b = is_digit(run_b.front());

    int order = 0;
    if (digits_a && digits_b) {
      order = compare_numbers(run_a, run_b);
    } else {
      // Between a digit run and another run, byte order decides as well.
      order = run_a.compare(run_b);
    }
    if (order != 0) {
      return order < 0 ? -1 : 1;
    }
  }

  // The longer version is greater. With equal runs, bytes break the tie.
  if (rest_a.empty() != rest_b.empty()) {
    return rest_a.empty() ? -1 : 1;
  }
  const int order = a.compare(b);
  return order < 0 ? -1 : (order > 0 ? 1 : 0);
}

Config load_config(const std::filesystem::path& path) {
  const std::string file_name = path.string();

  std::error_code error;
  const std::filesystem::file_status status =
      std::filesystem::status(path, error);
  if (!std::filesystem::exists(status)) {
    throw ConfigError(file_name, {}, "", "config file not found",
                      "Check the path, or create the file");
  }
  if (std::filesystem::is_directory(status)) {
    throw ConfigError(file_name, {}, "", "config path is a directory",
                      "Name the YAML file inside it");
  }

  std::ifstream stream(path, std::ios::binary);
  if (!stream) {
    throw ConfigError(
        file_name, {}, "",
        std::string("cannot open config file: ") + std::strerror(errno),
        "Check the file's permissions");
  }
  std::ostringstream text;
  text << stream.rdbuf();
  if (stream.bad()) {
    throw ConfigError(file_name, {}, "", "failed to read config file",
                      "Check that the file is readable");
  }

  return parse_config(text.str(), file_name);
}

namespace {

// Whether a document's first content line starts a plain scalar rather
// than a mapping: it starts with no YAML indicator and has no ':' followed
// by a space, a tab or the end of the line.
bool starts_plain_scalar(std::string_view content) {
  static constexpr std::string_view kIndicators = "-?[]{}\"'!&*|>%@`";
  if (kIndicators.find(content.front()) != std::string_view::npos) {
    return false;
  }
  for (std::size_t i = 0; i < content.size(); ++i) {
    if (content[i] == '#' && i > 0 && (content[i - 1] == ' ' || content[i - 1] == '\t')) {
      break;  // a comment
    }
    bool value_follows = i + 1 == content.size() || content[i + 1] == ' ' ||
                         content[i + 1] == '\t' || content[i + 1] == '\r';
    if (content[i] == ':' && value_follows) {
      return false;
    }
  }
  return true;
}

// yaml-cpp 0.7 (Debian 12) never returns, and keeps allocating, on some
// invalid documents. Three shapes are known: a document whose first token is
// ',', a top-level plain scalar in which a line starting with ',' follows a
// comment, and a line starting with ',' left of the document's first
// content. None of them is a valid config, so they are rejected here, before
// yaml-cpp reads them. Blank lines, comments,
// directives and document markers are skipped.
std::optional<ConfigError> reject_before_parsing(std::string_view text,
                                                 const std::string& file_name) {
  bool at_document_start = true;
  std::size_t document_column = 0;  // of the document's first content
  int line_number = 0;
  while (!text.empty()) {
    ++line_number;
    std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);

    std::size_t column = 0;
    if (line.starts_with("---") || line.starts_with("...")) {
      at_document_start = true;
      column = 3;
    } else if (at_document_start && line.starts_with("%")) {
      continue;
    }

    std::size_t first = line.find_first_not_of(" \t\r", column);
    if (first == std::string_view::npos || line[first] == '#') {
      continue;
    }
    Location location{line_number, static_cast<int>(first) + 1};
    if (!at_document_start) {
      if (line[first] == ',' && first < document_column) {
        return ConfigError(file_name, location, "",
                           "invalid YAML: a line starts with ',' left of the document's "
                           "indentation",
                           "Remove the stray comma, or indent the line");
      }
      continue;
    }
    if (line[first] == ',') {
      return ConfigError(file_name, location, "",
                         "invalid YAML: a document cannot start with ','",
                         "Remove the stray comma");
    }
    if (starts_plain_scalar(line.substr(first))) {
      return ConfigError(file_name, location, "", "the document is not a mapping",
                         "Write the top level as `key: value` lines with the keys gateway, "
                         "auth, workers, backends and deployments");
    }
    at_document_start = false;
    document_column = first;
  }
  return std::nullopt;
}

}  // namespace

Config parse_config(std::string_view yaml_text, const std::string& file_name) {
  detail::Reader reader(file_name);

  if (std::optional<ConfigError> error = reject_before_parsing(yaml_text, file_name)) {
    throw *error;
  }

  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(std::string(yaml_text));
  } catch (const YAML::Exception& error) {
    throw ConfigError(file_name, detail::to_location(error.mark), "",
                      "invalid YAML: " + error.msg,
                      "Check the indentation, quotes and brackets near here");
  }
  if (documents.size() > 1) {
    throw ConfigError(file_name, detail::to_location(documents[1].Mark()), "",
                      "the file contains more than one YAML document",
                      "Remove the \"---\" separator and keep one document");
  }

  Config config;
  std::error_code error;
  config.path = std::filesystem::absolute(file_name, error).lexically_normal();
  if (error) {
    config.path = file_name;
  }

  const YAML::Node root = documents.empty() ? YAML::Node() : documents.front();
  detail::read_document(reader, root, config);
  detail::resolve_deployments(reader, config);
  return config;
}

}  // namespace modelgate::config
