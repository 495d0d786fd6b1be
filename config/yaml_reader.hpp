#pragma once

// Internal to config/: reads values out of a parsed YAML tree while keeping
// each value's key path and position, so that every error names its position.
//
// A key whose value is empty (`key:` or `key: null`) counts as not set.

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace modelgate::config::detail {

// Converts yaml-cpp's 0-based mark to a 1-based Location. An unknown mark
// (negative line) gives a zero Location.
Location to_location(const YAML::Mark& mark);

// One value in the document.
struct Value {
  YAML::Node node;
  // Dotted key path with list indexes, such as "deployments[2].env".
  // Empty for the document itself.
  std::string path;
  // Where the value starts, or where its key is when the value is empty.
  Location location;
};

// Key paths. member_path("gateway", "listen") is "gateway.listen",
// index_path("deployments", 2) is "deployments[2]", and
// quoted_key_path("env", "A.B") is `env["A.B"]`, for keys that the user picks.
std::string member_path(const std::string& parent, std::string_view key);
std::string index_path(const std::string& parent, std::size_t index);
std::string quoted_key_path(const std::string& parent, std::string_view key);

// Returns the candidate closest to `name` by edit distance when it is close
// enough to be a likely typo, or an empty string.
std::string closest_name(std::string_view name,
                         const std::vector<std::string>& candidates);

// Joins names as "a, b, c".
std::string join_names(const std::vector<std::string>& names);

// Raises errors for one file and remembers where each value that was read
// sits, for the checks that run after reading.
class Reader {
 public:
  explicit Reader(std::string file_name);

  const std::string& file_name() const { return file_name_; }

  [[noreturn]] void fail(Location location, const std::string& key_path,
                         std::string problem, std::string fix) const;
  [[noreturn]] void fail(const Value& value, std::string problem,
                         std::string fix) const;

  void remember(const Value& value);
  // The location of a value read earlier, or a zero Location.
  Location location_of(const std::string& key_path) const;

 private:
  std::string file_name_;
  std::map<std::string, Location> locations_;
};

// One `key: value` entry of a mapping.
struct Entry {
  std::string key;
  Location key_location;
  Value value;
};

// The entries of a mapping in file order. Fails unless `value` is a mapping
// whose keys are strings and appear only once. With `quote_keys` the paths
// read `env["KEY"]`, for keys that the user picks, instead of `gateway.listen`.
std::vector<Entry> read_entries(Reader& reader, const Value& value,
                                bool quote_keys);

// The items of a list. Fails unless `value` is a list.
std::vector<Value> read_items(Reader& reader, const Value& value);

// A mapping with a fixed set of keys. Fails on construction when a key is not
// in `allowed_keys`, naming the closest allowed key.
class MapReader {
 public:
  MapReader(Reader& reader, const Value& value,
            std::vector<std::string> allowed_keys);

  // The value of `key`, or nullopt when the key is absent or empty.
  std::optional<Value> find(std::string_view key) const;
  // The value of `key`. Fails when the key is absent or empty.
  Value require(std::string_view key) const;

  const Value& value() const { return value_; }

 private:
  Reader& reader_;
  Value value_;
  std::vector<Entry> entries_;
};

// Typed values. Each fails with the key path and a fix on a wrong type or an
// invalid value.
std::string read_string(Reader& reader, const Value& value);
std::vector<std::string> read_string_list(Reader& reader, const Value& value);
// A mapping of strings to strings, such as `env`. An empty value is "".
std::map<std::string, std::string> read_string_map(Reader& reader,
                                                   const Value& value);
// true or false, as YAML 1.2 writes them.
bool read_bool(Reader& reader, const Value& value);
std::int64_t read_integer(Reader& reader, const Value& value,
                          std::int64_t minimum, std::int64_t maximum);
// A size must be greater than zero.
std::size_t read_size(Reader& reader, const Value& value);
// A duration must be greater than zero unless `zero_allowed`, for settings
// where zero has a meaning such as "no limit".
Duration read_duration(Reader& reader, const Value& value, bool zero_allowed);

}  // namespace modelgate::config::detail
