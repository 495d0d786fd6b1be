#include "config/sections.hpp"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/command.hpp"

namespace modelgate::config::detail {

namespace {

constexpr std::int64_t kMaxInt = std::numeric_limits<int>::max();
constexpr std::int64_t kMaxCount = std::numeric_limits<std::int64_t>::max();

const std::vector<std::string> kSupportedRuntimes = {"process", "docker"};
const std::vector<std::string> kPullPolicies = {"always", "if-not-present",
                                                "never"};
const std::vector<std::string> kNetworks = {"host", "bridge"};
// Worker keys that only `runtime: docker` uses.
const std::vector<std::string> kDockerKeys = {
    "endpoint", "tls_ca",  "tls_cert", "tls_key",
    "pull_policy", "network", "gpu_ids"};

// Reads a non-empty string.
std::string read_name(Reader& reader, const Value& value) {
  std::string name = read_string(reader, value);
  if (name.empty()) {
    reader.fail(value, "empty name", "Write a non-empty name");
  }
  return name;
}

std::string read_health_check_path(Reader& reader, const Value& value) {
  std::string path = read_string(reader, value);
  if (path.empty() || path.front() != '/') {
    reader.fail(value,
                "health check path \"" + path + "\" does not start with \"/\"",
                "Write an absolute URL path such as /v1/models");
  }
  return path;
}

// Reads a string that is split into words and rendered later: a run command,
// an entrypoint or one backend parameter. Checks the quoting and the syntax
// of its placeholders now, so that an unused backend is checked as well.
std::string read_template(Reader& reader, const Value& value) {
  std::string text = read_string(reader, value);

  std::vector<std::string> words;
  try {
    words = split_command_line(text);
  } catch (const CommandError& error) {
    reader.fail(value, error.what(),
                "Close the quote or remove the trailing backslash, and "
                "write a literal quote as \\' or \\\"");
  }

  for (const std::string& word : words) {
    try {
      template_placeholders(word);
    } catch (const CommandError& error) {
      reader.fail(value, error.what(),
                  "Write placeholders as {{name}}, with a name of letters, "
                  "digits and _");
    }
  }
  return text;
}

std::vector<std::string> read_parameters(Reader& reader, const Value& value) {
  std::vector<std::string> parameters;
  for (const Value& item : read_items(reader, value)) {
    const std::string parameter = read_string(reader, item);
    try {
      template_placeholders(parameter);
    } catch (const CommandError& error) {
      reader.fail(item, error.what(),
                  "Write placeholders as {{name}}, with a name of letters, "
                  "digits and _");
    }
    parameters.push_back(parameter);
  }
  reader.remember(value);
  return parameters;
}

// Parses "host:port" or "[ipv6-address]:port". Port 0 is accepted, so that
// tests can ask the system for a free port.
ListenAddress read_listen(Reader& reader, const Value& value) {
  const std::string text = read_string(reader, value);
  const std::string fix =
      "Write host:port, such as 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080";

  std::string host;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() ||
        text[close + 1] != ':') {
      reader.fail(value, "invalid listen address \"" + text + "\"", fix);
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string::npos) {
      reader.fail(value, "listen address \"" + text + "\" has no port", fix);
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string::npos) {
      reader.fail(value, "IPv6 address in \"" + text + "\" is not in brackets",
                  "Write it as [" + host + "]:" + port);
    }
  }

  // Only what can appear in a host name, an IPv4 or IPv6 address, or a zone.
  bool host_valid = !host.empty();
  for (char c : host) {
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '.' || c == '-' ||
                         c == ':' || c == '%' || c == '_';
    host_valid = host_valid && allowed;
  }
  if (!host_valid) {
    reader.fail(value, "invalid host in listen address \"" + text + "\"", fix);
  }

  const std::size_t port_end = port.find_first_not_of("0123456789");
  if (port.empty() || port.size() > 5 || port_end != std::string::npos ||
      std::stoi(port) > 65535) {
    reader.fail(value, "invalid port in listen address \"" + text + "\"",
                fix + ", with a port from 0 to 65535");
  }

  return {host, static_cast<std::uint16_t>(std::stoi(port))};
}

// Reads a value that must be one of `choices`.
std::string read_choice(Reader& reader, const Value& value,
                        const std::vector<std::string>& choices) {
  std::string text = read_string(reader, value);
  if (std::find(choices.begin(), choices.end(), text) == choices.end()) {
    reader.fail(value, "invalid value \"" + text + "\"",
                "Use one of: " + join_names(choices));
  }
  return text;
}

// Parses "unix:///ABSOLUTE/PATH" or "tcp://HOST:PORT" into `docker`.
void read_engine_endpoint(Reader& reader, const Value& value,
                          DockerSettings& docker) {
  const std::string text = read_string(reader, value);
  const std::string fix =
      "Write unix:///var/run/docker.sock, unix:///run/podman/podman.sock or "
      "tcp://HOST:PORT";
  docker.endpoint = text;

  constexpr std::string_view kUnix = "unix://";
  constexpr std::string_view kTcp = "tcp://";
  if (text.rfind(kUnix, 0) == 0) {
    docker.socket_path = text.substr(kUnix.size());
    if (docker.socket_path.empty() || docker.socket_path.front() != '/') {
      reader.fail(value,
                  "endpoint \"" + text + "\" has no absolute socket path",
                  fix);
    }
    if (docker.socket_path.size() >= 108) {
      reader.fail(value,
                  "socket path of endpoint \"" + text +
                      "\" is longer than the 107 bytes that fit in a unix "
                      "socket address",
                  "Use a shorter path or a symbolic link to the socket");
    }
    return;
  }
  if (text.rfind(kTcp, 0) != 0) {
    reader.fail(value, "unsupported endpoint \"" + text + "\"", fix);
  }

  // HOST:PORT, with an IPv6 address in brackets.
  std::string rest = text.substr(kTcp.size());
  if (!rest.empty() && rest.back() == '/') {
    rest.pop_back();
  }
  const std::size_t colon = rest.rfind(':');
  std::string host = colon == std::string::npos ? "" : rest.substr(0, colon);
  const std::string port =
      colon == std::string::npos ? "" : rest.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const bool port_valid =
      !port.empty() && port.size() <= 5 &&
      port.find_first_not_of("0123456789") == std::string::npos &&
      std::stoi(port) >= 1 && std::stoi(port) <= 65535;
  if (host.empty() || host.find_first_of("/[] ") != std::string::npos ||
      !port_valid) {
    reader.fail(value, "invalid endpoint \"" + text + "\"",
                "Write tcp://HOST:PORT with a port from 1 to 65535, such as "
                "tcp://127.0.0.1:2376");
  }
  docker.socket_path.clear();
  docker.host = host;
  docker.port = static_cast<std::uint16_t>(std::stoi(port));
}

PortRange read_port_range(Reader& reader, const Value& value) {
  const std::string text = read_string(reader, value);
  const std::string fix =
      "Write FIRST-LAST with ports from 1 to 65535, such as 20000-20999";

  const std::size_t dash = text.find('-');
  const std::string first = text.substr(0, dash);
  const std::string last =
      dash == std::string::npos ? std::string() : text.substr(dash + 1);
  for (const std::string& port : {first, last}) {
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(port) < 1 || std::stoi(port) > 65535) {
      reader.fail(value, "invalid port range \"" + text + "\"", fix);
    }
  }

  PortRange range;
  range.first = static_cast<std::uint16_t>(std::stoi(first));
  range.last = static_cast<std::uint16_t>(std::stoi(last));
  if (range.first > range.last) {
    reader.fail(value, "port range \"" + text + "\" starts above its last port",
                "Write the lower port first, such as " + last + "-" + first);
  }
  return range;
}

void read_tls(Reader& reader, const Value& value, TlsSettings& tls) {
  const MapReader map(reader, value, {"cert_file", "key_file", "min_version"});
  const Value cert = map.require("cert_file");
  tls.cert_file = read_string(reader, cert);
  tls.key_file = read_string(reader, map.require("key_file"));
  if (auto v = map.find("min_version")) {
    tls.min_version = read_choice(reader, *v, {"1.2", "1.3"});
  }
}

void read_gateway(Reader& reader, const Value& value, Config& config) {
  const MapReader map(
      reader, value,
      {"listen", "admin_listen", "tls", "io_threads", "max_body_size",
       "max_header_size", "header_timeout", "keep_alive_timeout",
       "max_client_connections", "max_held_requests_per_deployment",
       "max_held_requests", "hold_timeout", "client_write_timeout",
       "max_stream_duration", "upstream_connect_timeout",
       "upstream_response_timeout",
       "max_idle_upstream_connections", "max_upstream_connections",
       "health_check_interval",
       "health_check_timeout", "stop_grace_period", "log_dir",
       "instance_log_lines", "id", "redis"});
  GatewaySettings& gateway = config.gateway;

  if (auto v = map.find("listen")) {
    const ListenAddress listen = read_listen(reader, *v);
    gateway.listen_address = listen.host;
    gateway.listen_port = listen.port;
  }
  if (auto v = map.find("admin_listen")) {
    gateway.admin_listen = read_listen(reader, *v);
  }
  if (auto v = map.find("tls")) {
    read_tls(reader, *v, gateway.tls);
  }
  if (auto v = map.find("io_threads")) {
    gateway.io_threads = static_cast<int>(read_integer(reader, *v, 1, kMaxInt));
  }
  if (auto v = map.find("max_body_size")) {
    gateway.max_body_bytes = read_size(reader, *v);
  }
  if (auto v = map.find("max_header_size")) {
    gateway.max_header_bytes = read_size(reader, *v);
  }
  if (auto v = map.find("max_client_connections")) {
    gateway.max_client_connections =
        static_cast<std::size_t>(read_integer(reader, *v, 1, kMaxCount));
  }
  if (auto v = map.find("max_upstream_connections")) {
    gateway.max_upstream_connections =
        static_cast<std::size_t>(read_integer(reader, *v, 1, kMaxCount));
  }

  // Zero is accepted only where it means no limit.
  struct DurationSetting {
    Duration* target;
    bool zero_allowed;
  };
  const std::map<std::string, DurationSetting> durations = {
      {"header_timeout", {&gateway.header_timeout, false}},
      {"keep_alive_timeout", {&gateway.keep_alive_timeout, false}},
      {"hold_timeout", {&gateway.hold_timeout, false}},
      {"client_write_timeout", {&gateway.client_write_timeout, false}},
      {"max_stream_duration", {&gateway.max_stream_duration, true}},
      {"upstream_connect_timeout", {&gateway.upstream_connect_timeout, false}},
      {"upstream_response_timeout", {&gateway.upstream_response_timeout, true}},
      {"health_check_interval", {&gateway.health_check_interval, false}},
      {"health_check_timeout", {&gateway.health_check_timeout, false}},
      {"stop_grace_period", {&gateway.stop_grace_period, false}},
  };
  for (const auto& [key, setting] : durations) {
    if (auto v = map.find(key)) {
      *setting.target = read_duration(reader, *v, setting.zero_allowed);
    }
  }

  // Counts may be zero, for example to keep no idle upstream connections.
  const std::map<std::string, std::size_t*> counts = {
      {"max_held_requests_per_deployment",
       &gateway.max_held_requests_per_deployment},
      {"max_held_requests", &gateway.max_held_requests},
      {"max_idle_upstream_connections", &gateway.max_idle_upstream_connections},
      {"instance_log_lines", &gateway.instance_log_lines},
  };
  for (const auto& [key, target] : counts) {
    if (auto v = map.find(key)) {
      *target =
          static_cast<std::size_t>(read_integer(reader, *v, 0, kMaxCount));
    }
  }

  if (auto v = map.find("log_dir")) {
    const std::string log_dir = read_string(reader, *v);
    if (log_dir.empty()) {
      reader.fail(*v, "empty log_dir",
                  "Set a directory, such as logs or /var/log/modelgate");
    }
    gateway.log_dir = log_dir;
  }

  // The id is a container label value; keep it to characters that need no
  // quoting in `docker ps --filter label=...`.
  if (auto v = map.find("id")) {
    gateway.id = read_string(reader, *v);
    const bool valid =
        !gateway.id.empty() && gateway.id.size() <= 64 &&
        gateway.id.find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789._-") == std::string::npos;
    if (!valid) {
      reader.fail(*v, "invalid gateway id \"" + gateway.id + "\"",
                  "Use 1 to 64 letters, digits, '.', '_' or '-', such as "
                  "edge-1");
    }
  }

  if (auto v = map.find("redis")) {
    read_redis(reader, *v, gateway.redis);
  }
}

// Reads the keys of a `runtime: docker` worker.
void read_docker_settings(Reader& reader, const MapReader& map,
                          DockerSettings& docker) {
  if (auto v = map.find("endpoint")) {
    read_engine_endpoint(reader, *v, docker);
  }

  // TLS files: only over TCP, and a client certificate needs its key.
  std::optional<Value> first_tls;
  for (const auto& [key, target] :
       {std::pair{"tls_ca", &docker.tls_ca},
        std::pair{"tls_cert", &docker.tls_cert},
        std::pair{"tls_key", &docker.tls_key}}) {
    if (auto v = map.find(key)) {
      *target = read_string(reader, *v);
      first_tls = first_tls ? first_tls : v;
    }
  }
  if (first_tls && docker.host.empty()) {
    reader.fail(*first_tls,
                "TLS files are set, but endpoint \"" + docker.endpoint +
                    "\" is not tcp://",
                "Remove tls_ca, tls_cert and tls_key, or set endpoint to "
                "tcp://HOST:PORT");
  }
  if (docker.tls_cert.empty() != docker.tls_key.empty()) {
    const std::string missing = docker.tls_cert.empty() ? "tls_cert" : "tls_key";
    reader.fail(*first_tls, "missing " + missing,
                "Set both tls_cert and tls_key, the client certificate and "
                "its private key");
  }

  if (auto v = map.find("pull_policy")) {
    docker.pull_policy = read_choice(reader, *v, kPullPolicies);
  }
  if (auto v = map.find("network")) {
    docker.network = read_choice(reader, *v, kNetworks);
  }
  if (auto v = map.find("gpu_ids")) {
    docker.gpu_ids = read_string_list(reader, *v);
    for (const std::string& id : docker.gpu_ids) {
      if (id.empty() || id.find_first_of(", \t") != std::string::npos) {
        reader.fail(*v, "invalid GPU id \"" + id + "\"",
                    "Write each id as its own list item, such as [0, 1] or "
                    "[GPU-3b6e...]");
      }
    }
  }
}

Worker read_worker(Reader& reader, const Value& value) {
  std::vector<std::string> keys = {"name", "runtime", "frameworks", "ports",
                                   "ip"};
  keys.insert(keys.end(), kDockerKeys.begin(), kDockerKeys.end());
  const MapReader map(reader, value, keys);
  Worker worker;
  worker.location = value.location;
  worker.name = read_name(reader, map.require("name"));

  if (auto v = map.find("runtime")) {
    worker.runtime = read_string(reader, *v);
    if (std::find(kSupportedRuntimes.begin(), kSupportedRuntimes.end(),
                  worker.runtime) == kSupportedRuntimes.end()) {
      reader.fail(*v, "unsupported runtime \"" + worker.runtime + "\"",
                  "Use one of the supported runtimes: " +
                      join_names(kSupportedRuntimes));
    }
  }
  if (auto v = map.find("frameworks")) {
    worker.frameworks = read_string_list(reader, *v);
  }
  if (auto v = map.find("ports")) {
    worker.ports = read_port_range(reader, *v);
  }
  if (auto v = map.find("ip")) {
    worker.ip = read_string(reader, *v);
    if (worker.ip.empty() ||
        worker.ip.find_first_of(" \t\r\n[]") != std::string::npos) {
      reader.fail(*v, "invalid ip \"" + worker.ip + "\"",
                  "Write the address without brackets or port, such as "
                  "127.0.0.1 or ::1");
    }
  }

  if (worker.runtime == "docker") {
    read_docker_settings(reader, map, worker.docker);
    return worker;
  }
  for (const std::string& key : kDockerKeys) {
    if (auto v = map.find(key)) {
      reader.fail(*v, key + " is only used with runtime: docker",
                  "Remove it, or set `runtime: docker`");
    }
  }
  return worker;
}

VersionConfig read_version_config(Reader& reader, const Entry& entry) {
  VersionConfig version;
  version.location = entry.key_location;
  if (entry.value.node.IsNull()) {
    return version;
  }

  const MapReader map(reader, entry.value,
                      {"image_name", "run_command", "entrypoint",
                       "custom_framework", "built_in_frameworks", "env"});
  if (auto v = map.find("image_name")) {
    version.image_name = read_string(reader, *v);
  }
  if (auto v = map.find("run_command")) {
    version.run_command = read_template(reader, *v);
  }
  if (auto v = map.find("entrypoint")) {
    version.entrypoint = read_template(reader, *v);
  }
  if (auto v = map.find("custom_framework")) {
    version.custom_framework = read_string(reader, *v);
  }
  if (auto v = map.find("built_in_frameworks")) {
    version.built_in_frameworks = read_string_list(reader, *v);
  }
  if (auto v = map.find("env")) {
    version.env = read_string_map(reader, *v);
  }
  return version;
}

Backend read_backend(Reader& reader, const Value& value) {
  const MapReader map(
      reader, value,
      {"backend_name", "description", "health_check_path",
       "default_run_command", "default_entrypoint", "default_backend_param",
       "default_version", "default_env", "version_configs"});
  Backend backend;
  backend.location = value.location;

  const Value name = map.require("backend_name");
  backend.backend_name = read_name(reader, name);
  if (backend.backend_name == "custom") {
    reader.fail(name, "backend_name \"custom\" is reserved",
                "Pick another name, because deployments write "
                "`backend: custom` to give their own run_command");
  }

  if (auto v = map.find("description")) {
    backend.description = read_string(reader, *v);
  }
  if (auto v = map.find("health_check_path")) {
    backend.health_check_path = read_health_check_path(reader, *v);
  }
  if (auto v = map.find("default_run_command")) {
    backend.default_run_command = read_template(reader, *v);
  }
  if (auto v = map.find("default_entrypoint")) {
    backend.default_entrypoint = read_template(reader, *v);
  }
  if (auto v = map.find("default_backend_param")) {
    backend.default_backend_param = read_parameters(reader, *v);
  }
  if (auto v = map.find("default_version")) {
    backend.default_version = read_string(reader, *v);
  }
  if (auto v = map.find("default_env")) {
    backend.default_env = read_string_map(reader, *v);
  }
  if (auto v = map.find("version_configs")) {
    for (const Entry& entry : read_entries(reader, *v, true)) {
      if (entry.key.empty()) {
        reader.fail(entry.key_location, entry.value.path, "empty version",
                    "Name the version, such as 1.2.0");
      }
      backend.version_configs[entry.key] = read_version_config(reader, entry);
    }
  }
  return backend;
}

// Rejects a key that only `backend: custom` deployments may set.
void reject_custom_only_key(Reader& reader, const MapReader& map,
                            std::string_view key, const std::string& backend) {
  if (auto v = map.find(key)) {
    reader.fail(*v, std::string(key) + " is only used with backend: custom",
                "Remove it, because backend \"" + backend +
                    "\" provides it, or set `backend: custom`");
  }
}

Deployment read_deployment(Reader& reader, const Value& value) {
  const MapReader map(
      reader, value,
      {"name", "backend", "backend_version", "model_path", "backend_parameters",
       "env", "idle_timeout", "startup_timeout", "replicas", "worker",
       "pull_policy", "image_name", "run_command", "health_check_path",
       "upstream_api_key", "upstream_api_key_env"});
  Deployment deployment;
  deployment.location = value.location;

  // The name is the OpenAI `model`, so any text without control characters
  // is accepted.
  const Value name = map.require("name");
  deployment.name = read_name(reader, name);
  for (unsigned char c : deployment.name) {
    if (c < 0x20 || c == 0x7f) {
      reader.fail(name, "name contains a control character",
                  "Remove tabs, line breaks and other control characters "
                  "from the name");
    }
  }

  deployment.backend = read_name(reader, map.require("backend"));
  if (auto v = map.find("backend_version")) {
    deployment.backend_version = read_string(reader, *v);
  }
  if (auto v = map.find("model_path")) {
    deployment.model_path = read_string(reader, *v);
  }
  if (auto v = map.find("backend_parameters")) {
    deployment.backend_parameters = read_parameters(reader, *v);
  }
  if (auto v = map.find("env")) {
    deployment.env = read_string_map(reader, *v);
  }
  if (auto v = map.find("idle_timeout")) {
    deployment.idle_timeout = read_duration(reader, *v, true);
  }
  if (auto v = map.find("startup_timeout")) {
    deployment.startup_timeout = read_duration(reader, *v, false);
  }
  if (auto v = map.find("replicas")) {
    deployment.replicas =
        static_cast<int>(read_integer(reader, *v, 1, kMaxInt));
  }
  if (auto v = map.find("worker")) {
    deployment.worker = read_name(reader, *v);
  }
  if (auto v = map.find("pull_policy")) {
    deployment.pull_policy = read_choice(reader, *v, kPullPolicies);
  }
  deployment.upstream_api_key =
      read_secret(reader, map, "upstream_api_key", false);

  if (deployment.backend != "custom") {
    reject_custom_only_key(reader, map, "image_name", deployment.backend);
    reject_custom_only_key(reader, map, "run_command", deployment.backend);
    reject_custom_only_key(reader, map, "health_check_path",
                           deployment.backend);
    return deployment;
  }

  // backend: custom brings its own command and has no versions.
  if (auto v = map.find("backend_version")) {
    reader.fail(*v,
                "backend_version is set, but backend: custom has no versions",
                "Remove backend_version, or set backend to a backend_name");
  }
  const auto run_command = map.find("run_command");
  if (!run_command) {
    reader.fail(value.location, member_path(value.path, "run_command"),
                "missing run_command, which backend: custom requires",
                "Add run_command with the command that starts the model "
                "server, such as 'my-server --port {{port}}'");
  }
  deployment.command_template =
      split_command_line(read_template(reader, *run_command));
  if (deployment.command_template.empty()) {
    reader.fail(*run_command, "empty run_command",
                "Write the command that starts the model server");
  }
  if (auto v = map.find("image_name")) {
    deployment.image_name = read_string(reader, *v);
  }
  if (auto v = map.find("health_check_path")) {
    deployment.health_check_path = read_health_check_path(reader, *v);
  }
  return deployment;
}

// Fails when two entries share a name, pointing at the second one.
template <typename Item, typename NameOf>
void check_unique_names(const Reader& reader, const std::vector<Item>& items,
                        const std::string& section, const std::string& key,
                        const std::string& kind, NameOf name_of) {
  std::map<std::string, std::size_t> first_index;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto [first, inserted] = first_index.emplace(name_of(items[i]), i);
    if (inserted) {
      continue;
    }
    const std::string path = member_path(index_path(section, i), key);
    reader.fail(reader.location_of(path), path,
                "duplicate " + kind + " name \"" + first->first +
                    "\", also used by " + index_path(section, first->second),
                "Give each " + kind + " a unique " + key);
  }
}

}  // namespace

void read_document(Reader& reader, const YAML::Node& root, Config& config) {
  // An empty file is a valid document with every default.
  YAML::Node document = root;
  if (!document || document.IsNull()) {
    document = YAML::Node(YAML::NodeType::Map);
  }
  if (!document.IsMap()) {
    reader.fail(to_location(root.Mark()), "", "the document is not a mapping",
                "Write the top level as `key: value` lines with the keys "
                "gateway, auth, workers, backends and deployments");
  }
  const MapReader map(reader, Value{document, "", to_location(root.Mark())},
                      {"gateway", "auth", "workers", "backends",
                       "deployments"});

  if (auto v = map.find("gateway")) {
    read_gateway(reader, *v, config);
  }
  for (std::filesystem::path* file :
       {&config.gateway.tls.cert_file, &config.gateway.tls.key_file}) {
    if (!file->empty() && file->is_relative()) {
      *file = (config.path.parent_path() / *file).lexically_normal();
    }
  }
  const std::filesystem::path& log_dir = config.gateway.log_dir;
  if (log_dir.is_relative()) {
    config.gateway.log_dir =
        (config.path.parent_path() / log_dir).lexically_normal();
  }

  if (auto v = map.find("workers")) {
    for (const Value& item : read_items(reader, *v)) {
      config.workers.push_back(read_worker(reader, item));
      DockerSettings& docker = config.workers.back().docker;
      for (std::filesystem::path* file :
           {&docker.tls_ca, &docker.tls_cert, &docker.tls_key}) {
        if (!file->empty() && file->is_relative()) {
          *file = (config.path.parent_path() / *file).lexically_normal();
        }
      }
    }
    if (config.workers.empty()) {
      reader.fail(*v, "empty workers list",
                  "Add a worker, or remove `workers` to use the default "
                  "worker \"local\"");
    }
  } else {
    Worker local;
    local.name = "local";
    config.workers.push_back(local);
  }

  if (auto v = map.find("backends")) {
    for (const Value& item : read_items(reader, *v)) {
      config.backends.push_back(read_backend(reader, item));
    }
  }

  if (auto v = map.find("deployments")) {
    for (const Value& item : read_items(reader, *v)) {
      config.deployments.push_back(read_deployment(reader, item));
    }
  }

  if (auto v = map.find("auth")) {
    config.auth = read_auth(reader, *v);
  }
  check_auth(reader, config);

  check_unique_names(reader, config.workers, "workers", "name", "worker",
                     [](const Worker& w) { return w.name; });
  check_unique_names(reader, config.backends, "backends", "backend_name",
                     "backend",
                     [](const Backend& b) { return b.backend_name; });
  check_unique_names(reader, config.deployments, "deployments", "name",
                     "deployment", [](const Deployment& d) { return d.name; });
}

}  // namespace modelgate::config::detail
