#include "config/yaml_reader.hpp"

#include <algorithm>
#include <charconv>
#include <limits>

namespace modelgate::config::detail {

namespace {

std::string describe_kind(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "the string \"" + node.Scalar() + "\"";
    case YAML::NodeType::Null:
      return "an empty value";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  // One row of the Levenshtein table at a time.
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      const std::size_t substitution =
          diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      row[j] = std::min({above + 1, row[j - 1] + 1, substitution});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string quote_names(const std::vector<std::string>& names) {
  std::vector<std::string> quoted;
  quoted.reserve(names.size());
  for (const std::string& name : names) {
    quoted.push_back("\"" + name + "\"");
  }
  return join_names(quoted);
}

}  // namespace

Location to_location(const YAML::Mark& mark) {
  if (mark.line < 0 || mark.column < 0) {
    return {};
  }
  return {mark.line + 1, mark.column + 1};
}

std::string member_path(const std::string& parent, std::string_view key) {
  if (parent.empty()) {
    return std::string(key);
  }
  return parent + "." + std::string(key);
}

std::string index_path(const std::string& parent, std::size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

std::string quoted_key_path(const std::string& parent, std::string_view key) {
  return parent + "[\"" + std::string(key) + "\"]";
}

std::string closest_name(std::string_view name,
                         const std::vector<std::string>& candidates) {
  // A likely typo: a few edits, and fewer edits than either word has letters.
  const std::size_t limit = std::max<std::size_t>(2, name.size() / 3);
  std::string best;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  for (const std::string& candidate : candidates) {
    const std::size_t distance = edit_distance(name, candidate);
    if (distance <= limit && distance < name.size() &&
        distance < candidate.size() && distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

std::string join_names(const std::vector<std::string>& names) {
  std::string joined;
  for (const std::string& name : names) {
    if (!joined.empty()) {
      joined += ", ";
    }
    joined += name;
  }
  return joined;
}

Reader::Reader(std::string file_name) : file_name_(std::move(file_name)) {}

void Reader::fail(Location location, const std::string& key_path,
                  std::string problem, std::string fix) const {
  throw ConfigError(file_name_, location, key_path, std::move(problem),
                    std::move(fix));
}

void Reader::fail(const Value& value, std::string problem,
                  std::string fix) const {
  fail(value.location, value.path, std::move(problem), std::move(fix));
}

void Reader::remember(const Value& value) {
  locations_[value.path] = value.location;
}

Location Reader::location_of(const std::string& key_path) const {
  const auto found = locations_.find(key_path);
  if (found == locations_.end()) {
    return {};
  }
  return found->second;
}

std::vector<Entry> read_entries(Reader& reader, const Value& value,
                                bool quote_keys) {
  if (!value.node.IsMap()) {
    reader.fail(value, "expected a mapping, found " + describe_kind(value.node),
                "Write `key: value` lines indented under this key");
  }

  // yaml-cpp keeps every entry of a mapping, including a repeated key, so
  // duplicates are found here.
  std::vector<Entry> entries;
  std::map<std::string, int> first_lines;
  for (const auto& pair : value.node) {
    // Copies, because yaml-cpp's iterator returns a temporary pair.
    const YAML::Node key = pair.first;
    const Location key_location = to_location(key.Mark());
    if (!key.IsScalar()) {
      reader.fail(key_location, value.path,
                  "expected a string key, found " + describe_kind(key),
                  "Use a plain string as the key");
    }

    const std::string name = key.Scalar();
    const std::string path = quote_keys ? quoted_key_path(value.path, name)
                                        : member_path(value.path, name);
    const auto [first, inserted] = first_lines.emplace(name, key_location.line);
    if (!inserted) {
      reader.fail(key_location, path,
                  "duplicate key \"" + name + "\" (first set at line " +
                      std::to_string(first->second) + ")",
                  "Remove one of the two entries");
    }

    const YAML::Node node = pair.second;
    const Location location =
        node.IsNull() ? key_location : to_location(node.Mark());
    entries.push_back(Entry{name, key_location, Value{node, path, location}});
  }
  return entries;
}

std::vector<Value> read_items(Reader& reader, const Value& value) {
  if (!value.node.IsSequence()) {
    reader.fail(value, "expected a list, found " + describe_kind(value.node),
                "Write a list, one `- item` per line or [a, b] on one line");
  }

  std::vector<Value> items;
  std::size_t index = 0;
  for (const YAML::Node& node : value.node) {
    const Location location =
        node.IsNull() ? value.location : to_location(node.Mark());
    items.push_back(Value{node, index_path(value.path, index), location});
    ++index;
  }
  return items;
}

MapReader::MapReader(Reader& reader, const Value& value,
                     std::vector<std::string> allowed_keys)
    : reader_(reader), value_(value) {
  entries_ = read_entries(reader, value, false);
  for (const Entry& entry : entries_) {
    const std::string& key = entry.key;
    if (std::find(allowed_keys.begin(), allowed_keys.end(), key) !=
        allowed_keys.end()) {
      continue;
    }

    const std::string suggestion = closest_name(key, allowed_keys);
    std::string fix;
    if (!suggestion.empty()) {
      fix = "Did you mean \"" + suggestion + "\"? Allowed keys here: ";
    } else {
      fix = "Remove it, or use one of the allowed keys: ";
    }
    reader.fail(entry.key_location, entry.value.path,
                "unknown key \"" + key + "\"", fix + quote_names(allowed_keys));
  }
}

std::optional<Value> MapReader::find(std::string_view key) const {
  for (const Entry& entry : entries_) {
    if (entry.key == key) {
      if (entry.value.node.IsNull()) {
        return std::nullopt;
      }
      return entry.value;
    }
  }
  return std::nullopt;
}

Value MapReader::require(std::string_view key) const {
  std::optional<Value> found = find(key);
  if (found) {
    return *found;
  }

  // An empty value points at its key, an absent key at the mapping.
  const std::string path = member_path(value_.path, key);
  for (const Entry& entry : entries_) {
    if (entry.key == key) {
      reader_.fail(entry.key_location, path,
                   "required key \"" + std::string(key) + "\" has no value",
                   "Write its value after the colon");
    }
  }
  reader_.fail(value_.location, path,
               "missing required key \"" + std::string(key) + "\"",
               "Add `" + std::string(key) + ": ...` to this entry");
}

std::string read_string(Reader& reader, const Value& value) {
  if (!value.node.IsScalar()) {
    reader.fail(value, "expected a string, found " + describe_kind(value.node),
                "Replace it with a single string");
  }
  reader.remember(value);
  return value.node.Scalar();
}

std::vector<std::string> read_string_list(Reader& reader, const Value& value) {
  std::vector<std::string> strings;
  for (const Value& item : read_items(reader, value)) {
    strings.push_back(read_string(reader, item));
  }
  reader.remember(value);
  return strings;
}

std::map<std::string, std::string> read_string_map(Reader& reader,
                                                   const Value& value) {
  std::map<std::string, std::string> strings;
  for (const Entry& entry : read_entries(reader, value, true)) {
    if (entry.key.empty() || entry.key.find('=') != std::string::npos) {
      reader.fail(entry.key_location, entry.value.path,
                  "invalid variable name \"" + entry.key + "\"",
                  "Use a non-empty name without \"=\"");
    }

    // `KEY:` with no value sets the variable to an empty string.
    if (entry.value.node.IsNull()) {
      strings[entry.key] = std::string();
    } else {
      strings[entry.key] = read_string(reader, entry.value);
    }
  }
  reader.remember(value);
  return strings;
}

bool read_bool(Reader& reader, const Value& value) {
  const std::string text = read_string(reader, value);
  if (text == "true") {
    return true;
  }
  if (text == "false") {
    return false;
  }
  reader.fail(value, "invalid boolean \"" + text + "\"", "Write true or false");
}

std::int64_t read_integer(Reader& reader, const Value& value,
                          std::int64_t minimum, std::int64_t maximum) {
  const std::string text = read_string(reader, value);
  std::string range = "a whole number from " + std::to_string(minimum) +
                      " to " + std::to_string(maximum);
  if (maximum == std::numeric_limits<std::int64_t>::max()) {
    range = "a whole number of at least " + std::to_string(minimum);
  }

  std::int64_t number = 0;
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, number);
  if (error == std::errc::result_out_of_range) {
    reader.fail(value, "number " + text + " is out of range", "Use " + range);
  }
  if (error != std::errc() || stop != end || text.empty()) {
    reader.fail(value, "invalid number \"" + text + "\"", "Use " + range);
  }
  if (number < minimum || number > maximum) {
    reader.fail(value, "number " + text + " is out of range", "Use " + range);
  }
  return number;
}

std::size_t read_size(Reader& reader, const Value& value) {
  const std::string text = read_string(reader, value);
  const std::string fix =
      "Write a number of bytes, or a number with a unit B, KB, MB, GB, KiB, "
      "MiB or GiB, such as 8MiB";

  if (!text.empty() && text.front() == '-') {
    reader.fail(value, "negative size \"" + text + "\"", fix);
  }
  const std::optional<std::size_t> size = parse_size(text);
  if (!size) {
    reader.fail(value, "invalid size \"" + text + "\"", fix);
  }
  if (*size == 0) {
    reader.fail(value, "size must be greater than zero", fix);
  }
  return *size;
}

Duration read_duration(Reader& reader, const Value& value, bool zero_allowed) {
  const std::string text = read_string(reader, value);
  const std::optional<Duration> duration = parse_duration(text);
  if (!duration) {
    reader.fail(value, "invalid duration \"" + text + "\"",
                "Write a whole number with a unit ms, s, m or h, such as 30s "
                "or 1m30s, or a plain number of seconds");
  }
  if (*duration == Duration::zero() && !zero_allowed) {
    reader.fail(value, "duration must be greater than zero",
                "Set a positive duration such as 30s");
  }
  return *duration;
}

}  // namespace modelgate::config::detail
