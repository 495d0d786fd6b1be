#pragma once

// Reads samples from Prometheus's text exposition format, for tests.

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace modelgate::testing {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Parses every sample line; comment lines are skipped. Label values may
// contain escaped quotes and backslashes.
std::vector<Sample> parse_metrics_text(const std::string& text);

// Returns the value of the sample named `name` whose labels include every
// entry of `labels`, or nothing if there is no such sample. Throws
// std::runtime_error when several samples match.
std::optional<double> find_sample(const std::vector<Sample>& samples, const std::string& name,
                                  const std::map<std::string, std::string>& labels = {});

}  // namespace modelgate::testing
