// The `auth` section and the secrets it and the deployments read.

#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "config/sections.hpp"

namespace modelgate::config::detail {

namespace {

// Whether `host` can only be reached from this machine.
bool is_loopback_host(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

std::vector<ApiKey> read_keys(Reader& reader, const Value& value,
                              bool with_deployments) {
  std::vector<std::string> allowed = {"name", "key", "key_env"};
  if (with_deployments) {
    allowed.push_back("deployments");
  }

  std::vector<ApiKey> keys;
  for (const Value& item : read_items(reader, value)) {
    const MapReader map(reader, item, allowed);
    ApiKey key;
    key.location = item.location;
    key.name = read_string(reader, map.require("name"));
    if (key.name.empty()) {
      reader.fail(map.require("name"), "empty key name",
                  "Name the key after its user, such as team-a; the name "
                  "appears in logs in place of the key");
    }
    key.key = read_secret(reader, map, "key", true);
    if (auto v = map.find("deployments")) {
      key.deployments = read_string_list(reader, *v);
    }
    keys.push_back(std::move(key));
  }
  return keys;
}

}  // namespace

std::string read_secret(Reader& reader, const MapReader& map,
                        const std::string& key, bool required) {
  const std::string env_key = key + "_env";
  const std::optional<Value> inline_value = map.find(key);
  const std::optional<Value> env_value = map.find(env_key);
  if (inline_value && env_value) {
    reader.fail(*env_value, "both " + key + " and " + env_key + " are set",
                "Keep one of them");
  }

  if (inline_value) {
    std::string secret = read_string(reader, *inline_value);
    if (secret.empty()) {
      reader.fail(*inline_value, "empty " + key, "Write the key, or remove " + key);
    }
    return secret;
  }
  if (env_value) {
    const std::string variable = read_string(reader, *env_value);
    const char* secret = variable.empty() ? nullptr : std::getenv(variable.c_str());
    if (secret == nullptr || *secret == '\0') {
      reader.fail(*env_value,
                  "environment variable \"" + variable + "\" is not set or empty",
                  "Export " + (variable.empty() ? std::string("it") : variable) +
                      " before starting modelgate, or write the key as " + key);
    }
    return secret;
  }
  if (required) {
    const Value& parent = map.value();
    reader.fail(parent.location, parent.path, "missing " + key + " and " + env_key,
                "Add " + env_key + " with the name of an environment variable "
                "that holds the key, or " + key + " with the key itself");
  }
  return "";
}

AuthSettings read_auth(Reader& reader, const Value& value) {
  const MapReader map(reader, value,
                      {"api_keys", "admin_keys", "forbidden_status", "protect_metrics"});
  AuthSettings auth;
  if (auto v = map.find("api_keys")) {
    auth.api_keys = read_keys(reader, *v, true);
  }
  if (auto v = map.find("admin_keys")) {
    auth.admin_keys = read_keys(reader, *v, false);
  }
  if (auto v = map.find("forbidden_status")) {
    auth.forbidden_status = static_cast<int>(read_integer(reader, *v, 403, 404));
  }
  if (auto v = map.find("protect_metrics")) {
    auth.protect_metrics = read_bool(reader, *v);
  }

  // A key must identify one entry, so that its name and rights are certain.
  std::map<std::string, std::string> owner;  // key -> path of its entry
  const auto check = [&](const std::vector<ApiKey>& keys, const std::string& list) {
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const std::string path = index_path(member_path(value.path, list), i);
      const auto [first, inserted] = owner.emplace(keys[i].key, path);
      if (!inserted) {
        reader.fail(keys[i].location, path, "the same key is also given in " + first->second,
                    "Give every client and every operator a key of its own");
      }
    }
  };
  check(auth.api_keys, "api_keys");
  check(auth.admin_keys, "admin_keys");
  return auth;
}

void check_auth(const Reader& reader, const Config& config) {
  for (std::size_t i = 0; i < config.auth.api_keys.size(); ++i) {
    const ApiKey& key = config.auth.api_keys[i];
    for (std::size_t j = 0; j < key.deployments.size(); ++j) {
      const std::string& name = key.deployments[j];
      if (config.find_deployment(name) != nullptr) {
        continue;
      }
      std::vector<std::string> names;
      for (const Deployment& deployment : config.deployments) {
        names.push_back(deployment.name);
      }
      const std::string path =
          index_path(member_path(index_path("auth.api_keys", i), "deployments"), j);
      std::string fix = "Use the name of a deployment in deployments";
      const std::string closest = closest_name(name, names);
      if (!closest.empty()) {
        fix = "Did you mean \"" + closest + "\"? " + fix;
      }
      reader.fail(reader.location_of(path), path, "unknown deployment \"" + name + "\"", fix);
    }
  }

  const std::optional<ListenAddress>& admin = config.gateway.admin_listen;
  if (admin && !is_loopback_host(admin->host) && config.auth.admin_keys.empty()) {
    reader.fail(reader.location_of("gateway.admin_listen"), "gateway.admin_listen",
                "the admin listener on " + admin->host +
                    " is reachable from other machines, but auth.admin_keys is empty",
                "Bind it to 127.0.0.1, or add auth.admin_keys");
  }
}

}  // namespace modelgate::config::detail
