#include "tests/monitoring/metrics_text.hpp"

#include <sstream>
#include <stdexcept>

namespace modelgate::testing {

std::vector<Sample> parse_metrics_text(const std::string& text) {
  std::vector<Sample> samples;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line.front() == '#') {
      continue;
    }
    Sample sample;
    std::size_t position = line.find_first_of("{ ");
    sample.name = line.substr(0, position);

    // Labels: {name="value",...}, values with \" and \\ escapes.
    if (position != std::string::npos && line[position] == '{') {
      ++position;
      while (position < line.size() && line[position] != '}') {
        std::size_t equals = line.find('=', position);
        std::string label = line.substr(position, equals - position);
        std::string value;
        position = equals + 2;  // past ="
        while (position < line.size() && line[position] != '"') {
          if (line[position] == '\\' && position + 1 < line.size()) {
            ++position;
            value += line[position] == 'n' ? '\n' : line[position];
          } else {
            value += line[position];
          }
          ++position;
        }
        sample.labels[label] = value;
        position += 1;  // past the closing quote
        if (position < line.size() && line[position] == ',') {
          ++position;
        }
      }
      ++position;  // past }
    }
    sample.value = std::stod(line.substr(position));
    samples.push_back(std::move(sample));
  }
  return samples;
}

std::optional<double> find_sample(const std::vector<Sample>& samples, const std::string& name,
                                  const std::map<std::string, std::string>& labels) {
  std::optional<double> found;
  for (const Sample& sample : samples) {
    if (sample.name != name) {
      continue;
    }
    bool matches = true;
    for (const auto& [label, value] : labels) {
      auto entry = sample.labels.find(label);
      if (entry == sample.labels.end() || entry->second != value) {
        matches = false;
        break;
      }
    }
    if (!matches) {
      continue;
    }
    if (found) {
      throw std::runtime_error("several samples of " + name + " match the labels");
    }
    found = sample.value;
  }
  return found;
}

}  // namespace modelgate::testing
