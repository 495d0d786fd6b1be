#pragma once

// Internal to config/: reading the document's sections into a Config, and
// resolving each deployment against its backend afterwards.

#include <yaml-cpp/yaml.h>

#include "config/config.hpp"
#include "config/yaml_reader.hpp"

namespace modelgate::config::detail {

// Reads `gateway`, `workers`, `backends` and `deployments` from the document
// root into `config`, checking each value on its own and the uniqueness of
// names. `config.path` must be set, because a relative log_dir is resolved
// against its directory. A null root reads as an empty document.
void read_document(Reader& reader, const YAML::Node& root, Config& config);

// Reads a secret given either inline as `KEY: value` or by name as
// `KEY_env: VARIABLE`, from the process environment. Fails when both are
// set, when the variable is not set, or when the secret is empty. Returns ""
// when neither is set, or fails then if `required`.
std::string read_secret(Reader& reader, const MapReader& map,
                        const std::string& key, bool required);

// Reads the `auth` section: client and admin API keys.
AuthSettings read_auth(Reader& reader, const Value& value);

// Checks what the auth section and the listeners imply together: that keys
// name configured deployments, and that an admin listener off loopback has
// admin keys. Runs after the deployments are read.
void check_auth(const Reader& reader, const Config& config);

// Reads `gateway.redis` into `redis`.
void read_redis(Reader& reader, const Value& value, RedisSettings& redis);

// Fills the "resolved while loading" fields of every deployment and checks
// what depends on several sections: backend and worker names, versions,
// template variables and frameworks.
void resolve_deployments(const Reader& reader, Config& config);

}  // namespace modelgate::config::detail
