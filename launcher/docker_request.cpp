#include "launcher/docker_request.hpp"

#include <nlohmann/json.hpp>

namespace modelgate::launcher {

using json = nlohmann::json;

namespace {

json device(const std::string& path) {
  return {{"PathOnHost", path}, {"PathInContainer", path}, {"CgroupPermissions", "rwm"}};
}

json create_body_json(const ContainerSpec& spec, bool with_labels) {
  json body = json::object();
  body["Image"] = spec.image;
  body["Cmd"] = spec.cmd;
  if (!spec.entrypoint.empty()) {
    body["Entrypoint"] = spec.entrypoint;
  }

  json env = json::array();
  for (const auto& [name, value] : spec.env) {
    env.push_back(name + "=" + value);
  }
  body["Env"] = std::move(env);
  body["Labels"] = with_labels ? json(spec.labels) : json::object();

  json host = json::object();
  host["NetworkMode"] = spec.network;
  if (spec.network != "host") {
    std::string port_key = std::to_string(spec.port) + "/tcp";
    body["ExposedPorts"] = {{port_key, json::object()}};
    host["PortBindings"] = {
        {port_key, json::array({{{"HostIp", spec.host_ip}, {"HostPort", std::to_string(spec.port)}}})}};
  }

  json binds = json::array();
  for (const std::string& path : spec.read_only_binds) {
    binds.push_back(path + ":" + path + ":ro");
  }
  host["Binds"] = std::move(binds);

  // Devices by framework. HostConfig.Ulimits is left out on purpose: a
  // create request that carries it replaces all of the engine's default
  // limits, nofile included.
  if (spec.framework == "cuda") {
    json request = {{"Driver", "nvidia"}, {"Capabilities", json::array({json::array({"gpu"})})}};
    if (spec.gpu_ids.empty()) {
      request["Count"] = -1;  // every GPU
    } else {
      request["DeviceIDs"] = spec.gpu_ids;
    }
    host["DeviceRequests"] = json::array({request});
  } else if (spec.framework == "rocm") {
    host["Devices"] = json::array({device("/dev/kfd"), device("/dev/dri")});
  }
  body["HostConfig"] = std::move(host);
  return body;
}

std::optional<json> parse_json(std::string_view text) {
  json parsed = json::parse(text.begin(), text.end(), nullptr, false);
  if (parsed.is_discarded()) {
    return std::nullopt;
  }
  return parsed;
}

}  // namespace

std::string url_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string result;
  for (unsigned char c : text) {
    bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      result += static_cast<char>(c);
    } else {
      result += '%';
      result += kHex[c >> 4];
      result += kHex[c & 0xf];
    }
  }
  return result;
}

std::string image_path(std::string_view image) {
  std::string result;
  for (char c : image) {
    if (c == '/' || c == ':' || c == '@') {
      result += c;
    } else {
      result += url_encode(std::string_view(&c, 1));
    }
  }
  return result;
}

std::string container_create_body(const ContainerSpec& spec) {
  return create_body_json(spec, true).dump();
}

std::string spec_fingerprint(const ContainerSpec& spec) {
  // FNV-1a, 64 bits: stable across runs and builds, unlike std::hash.
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : create_body_json(spec, false).dump()) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text(16, '0');
  for (int digit = 15; digit >= 0; --digit) {
    text[static_cast<std::size_t>(digit)] = kHex[hash & 0xf];
    hash >>= 4;
  }
  return text;
}

std::string image_pull_query(std::string_view image) {
  // A tag is a ':' after the last '/', since "registry:5000/name" has a port.
  std::size_t slash = image.rfind('/');
  std::size_t colon = image.rfind(':');
  bool has_tag = colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash);
  bool has_digest = image.find('@') != std::string_view::npos;

  std::string query = "fromImage=" + url_encode(image);
  if (!has_tag && !has_digest) {
    query += "&tag=latest";
  }
  return query;
}

std::string pull_error(std::string_view json_line) {
  std::optional<json> parsed = parse_json(json_line);
  if (!parsed || !parsed->is_object()) {
    return {};
  }
  if (parsed->contains("error") && (*parsed)["error"].is_string()) {
    return (*parsed)["error"].get<std::string>();
  }
  auto detail = parsed->find("errorDetail");
  if (detail != parsed->end() && detail->is_object() && detail->contains("message") &&
      (*detail)["message"].is_string()) {
    return (*detail)["message"].get<std::string>();
  }
  return {};
}

std::string container_list_query(std::string_view key, std::string_view value) {
  json filters = {{"label", json::array({std::string(key) + "=" + std::string(value)})}};
  return "all=1&filters=" + url_encode(filters.dump());
}

std::optional<std::vector<ContainerSummary>> parse_container_list(std::string_view body) {
  std::optional<json> parsed = parse_json(body);
  if (!parsed || !parsed->is_array()) {
    return std::nullopt;
  }

  std::vector<ContainerSummary> result;
  for (const json& entry : *parsed) {
    if (!entry.is_object() || !entry.contains("Id") || !entry["Id"].is_string()) {
      continue;
    }
    ContainerSummary summary;
    summary.id = entry["Id"].get<std::string>();
    if (entry.contains("State") && entry["State"].is_string()) {
      summary.state = entry["State"].get<std::string>();
    }
    if (entry.contains("Labels") && entry["Labels"].is_object()) {
      for (const auto& [key, value] : entry["Labels"].items()) {
        if (value.is_string()) {
          summary.labels[key] = value.get<std::string>();
        }
      }
    }
    result.push_back(std::move(summary));
  }
  return result;
}

std::optional<std::string> parse_created_id(std::string_view body) {
  std::optional<json> parsed = parse_json(body);
  if (!parsed || !parsed->is_object() || !parsed->contains("Id") || !(*parsed)["Id"].is_string()) {
    return std::nullopt;
  }
  return (*parsed)["Id"].get<std::string>();
}

std::vector<std::string> parse_create_warnings(std::string_view body) {
  std::vector<std::string> warnings;
  std::optional<json> parsed = parse_json(body);
  if (!parsed || !parsed->is_object() || !parsed->contains("Warnings") ||
      !(*parsed)["Warnings"].is_array()) {
    return warnings;
  }
  for (const json& warning : (*parsed)["Warnings"]) {
    if (warning.is_string()) {
      warnings.push_back(warning.get<std::string>());
    }
  }
  return warnings;
}

std::optional<int> parse_wait_status(std::string_view body) {
  std::optional<json> parsed = parse_json(body);
  if (!parsed || !parsed->is_object() || !parsed->contains("StatusCode") ||
      !(*parsed)["StatusCode"].is_number_integer()) {
    return std::nullopt;
  }
  return (*parsed)["StatusCode"].get<int>();
}

std::optional<ContainerState> parse_container_state(std::string_view body) {
  std::optional<json> parsed = parse_json(body);
  if (!parsed || !parsed->is_object() || !parsed->contains("State") ||
      !(*parsed)["State"].is_object()) {
    return std::nullopt;
  }
  const json& state = (*parsed)["State"];
  ContainerState result;
  if (state.contains("Running") && state["Running"].is_boolean()) {
    result.running = state["Running"].get<bool>();
  }
  if (state.contains("ExitCode") && state["ExitCode"].is_number_integer()) {
    result.exit_code = state["ExitCode"].get<int>();
  }
  return result;
}

std::optional<std::string> describe_engine_version(std::string_view body) {
  std::optional<json> parsed = parse_json(body);
  if (!parsed || !parsed->is_object() || !parsed->contains("Version") ||
      !(*parsed)["Version"].is_string()) {
    return std::nullopt;
  }

  std::string name = "Docker Engine";
  auto components = parsed->find("Components");
  if (components != parsed->end() && components->is_array() && !components->empty() &&
      (*components)[0].is_object() && (*components)[0].contains("Name") &&
      (*components)[0]["Name"].is_string()) {
    name = (*components)[0]["Name"].get<std::string>();
    if (name == "Engine") {
      name = "Docker Engine";
    }
  }
  std::string text = name + " " + (*parsed)["Version"].get<std::string>();
  if (parsed->contains("ApiVersion") && (*parsed)["ApiVersion"].is_string()) {
    text += ", API " + (*parsed)["ApiVersion"].get<std::string>();
  }
  return text;
}

}  // namespace modelgate::launcher
