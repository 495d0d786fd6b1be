#pragma once

// The gateway's configuration: one YAML file loaded into plain structs.
//
// Loading validates everything that can be checked without starting anything,
// and resolves each deployment's backend, version, run command, parameters,
// framework and health check path, so that later stages read one struct.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace modelgate::config {

using Duration = std::chrono::milliseconds;

// Position of a key or value in the YAML file, 1-based. Zero when unknown.
struct Location {
  int line = 0;
  int column = 0;
};

// Raised by load_config() and parse_config(). what() reads
// "FILE:LINE:COLUMN: KEY_PATH: PROBLEM. FIX". The line and column are left out
// when the location is unknown (zero), and the key path when it is empty.
// `problem` and `fix` are written without a final period.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string file, Location location, std::string key_path,
              std::string problem, std::string fix);

  const std::string& file() const { return file_; }
  Location location() const { return location_; }
  // Dotted path with list indexes, such as "deployments[2].idle_timeout".
  const std::string& key_path() const { return key_path_; }
  const std::string& problem() const { return problem_; }
  const std::string& fix() const { return fix_; }

 private:
  std::string file_;
  Location location_;
  std::string key_path_;
  std::string problem_;
  std::string fix_;
};

// A listener's address, as written in `listen: HOST:PORT`.
struct ListenAddress {
  std::string host;
  std::uint16_t port = 0;
};

// TLS on the client listener, on when cert_file is set. Paths are resolved
// against the directory of the config file; the files are read at start-up
// and again on SIGHUP.
struct TlsSettings {
  std::filesystem::path cert_file;  // PEM certificate chain, leaf first
  std::filesystem::path key_file;   // PEM private key
  std::string min_version = "1.2";  // "1.2" or "1.3"

  bool enabled() const { return !cert_file.empty(); }
};

// `gateway.redis`: where the routes are shared with other gateways. An empty
// `url` keeps the routes in this process's memory.
struct RedisSettings {
  // As written: "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]",
  // "unix://[[USER]:PASSWORD@]/PATH[?db=DB]" or a socket path "/PATH".
  std::string url;
  // Parsed from `url`: a socket path, else host and port.
  std::string host;
  std::uint16_t port = 6379;
  std::string socket_path;
  std::string user;      // empty: AUTH with the password only
  std::string password;  // empty: no AUTH
  int db = 0;

  // Every key and the pub/sub channel start with "PREFIX:", so that several
  // fleets can share one Redis database.
  std::string key_prefix = "modelgate";
  // A gateway whose lease key is older than this counts as dead, and its
  // instances' routes are removed.
  Duration lease_ttl = std::chrono::seconds(10);
  // How often the gateway renews its lease; at most a third of lease_ttl.
  Duration heartbeat_interval = std::chrono::seconds(2);
  // How often the gateway reads every route, in case a pub/sub message was
  // lost.
  Duration resync_interval = std::chrono::seconds(10);

  bool enabled() const { return !url.empty(); }
  // The url with the password replaced by "***", for logs and errors.
  std::string redacted_url() const;
};

// The `gateway` section: the client listener, timeouts and limits.
struct GatewaySettings {
  std::string listen_address = "127.0.0.1";
  std::uint16_t listen_port = 8080;
  int io_threads = 1;
  TlsSettings tls;
  // A listener of its own for /admin/ and /metrics. Unset: they are served
  // on the client listener (see AuthSettings for who may use them there).
  std::optional<ListenAddress> admin_listen;

  // Open client connections. At the limit the gateway stops accepting, so
  // new connections wait in the kernel's listen backlog.
  std::size_t max_client_connections = 10000;

  std::size_t max_body_bytes = 8 * 1024 * 1024;
  std::size_t max_header_bytes = 64 * 1024;
  Duration header_timeout = std::chrono::seconds(30);
  Duration keep_alive_timeout = std::chrono::seconds(75);

  // Held requests: waiting for an instance of their deployment to be ready.
  std::size_t max_held_requests_per_deployment = 1000;
  std::size_t max_held_requests = 10000;  // over all deployments
  Duration hold_timeout = std::chrono::minutes(10);

  // A write to a client that makes no progress for this long ends the
  // response, so that a client that stops reading frees its backend.
  Duration client_write_timeout = std::chrono::seconds(60);
  // Maximum time from a request's arrival to the end of its relayed
  // response body, enforced while the body is relayed; the wait for the
  // response head is bounded by upstream_response_timeout. Zero means no
  // limit.
  Duration max_stream_duration = std::chrono::hours(1);

  Duration upstream_connect_timeout = std::chrono::seconds(5);
  // Zero means no limit, because a first token can take minutes.
  Duration upstream_response_timeout = Duration::zero();
  std::size_t max_idle_upstream_connections = 64;
  // Connections to one instance, in use or idle. More requests wait for one
  // until hold_timeout.
  std::size_t max_upstream_connections = 1024;

  Duration health_check_interval = std::chrono::milliseconds(10);
  Duration health_check_timeout = std::chrono::seconds(2);
  Duration stop_grace_period = std::chrono::seconds(10);

  // Per-instance log files. A relative path is resolved against the
  // directory of the config file.
  std::filesystem::path log_dir = "logs";
  std::size_t instance_log_lines = 200;

  // Labels the containers this gateway starts, so that a restarted gateway
  // finds its own. Empty: the launcher derives one from the host name, the
  // config file's path and the listen address.
  std::string id;

  RedisSettings redis;
};

// A key that clients or operators present as `Authorization: Bearer KEY`
// or `x-api-key: KEY`. Only `name` is ever logged.
struct ApiKey {
  std::string name;
  std::string key;
  // Deployments the key may use. Empty: every deployment.
  std::vector<std::string> deployments;
  Location location;
};

// The `auth` section.
struct AuthSettings {
  // Keys for the OpenAI endpoints. Empty: those endpoints need no key.
  std::vector<ApiKey> api_keys;
  // Keys for /admin/ (and /metrics with protect_metrics).
  std::vector<ApiKey> admin_keys;
  // Status for a valid key that may not use the requested model: 403, or
  // 404 so that the response does not reveal that the model exists.
  int forbidden_status = 403;
  // Whether /metrics on the client listener needs an admin key.
  bool protect_metrics = false;
};

struct PortRange {
  std::uint16_t first = 20000;
  std::uint16_t last = 20999;
};

// The settings of a worker with `runtime: docker`.
struct DockerSettings {
  // The Engine API endpoint as written: "unix:///PATH" or "tcp://HOST:PORT".
  std::string endpoint = "unix:///var/run/docker.sock";
  // Parsed from `endpoint`: the socket path for unix://, else host and port.
  std::string socket_path = "/var/run/docker.sock";
  std::string host;
  std::uint16_t port = 0;
  // PEM files for TLS over tcp://, resolved against the config file's
  // directory. TLS is used when any of them is set.
  std::filesystem::path tls_ca;
  std::filesystem::path tls_cert;
  std::filesystem::path tls_key;
  std::string pull_policy = "if-not-present";  // always, if-not-present or never
  std::string network = "host";                // host or bridge
  std::vector<std::string> gpu_ids;            // {{gpu_ids}}; empty: every GPU
};

// One entry of `workers`: a place that runs instances.
struct Worker {
  std::string name;
  std::string runtime = "process";  // process or docker
  std::vector<std::string> frameworks = {"cpu"};
  PortRange ports;
  // The address backends listen on and the gateway connects to; {{worker_ip}}.
  std::string ip = "127.0.0.1";
  DockerSettings docker;  // used with runtime: docker
  Location location;
};

// One entry of a backend's `version_configs`, with GPUStack's key names.
struct VersionConfig {
  std::string image_name;
  std::string run_command;
  std::string entrypoint;
  std::string custom_framework;
  std::vector<std::string> built_in_frameworks;
  std::map<std::string, std::string> env;
  Location location;
};

// One entry of `backends`: the inference-backend format GPUStack imports.
struct Backend {
  std::string backend_name;
  std::string description;
  std::string health_check_path = "/v1/models";
  std::string default_run_command;
  std::string default_entrypoint;
  std::vector<std::string> default_backend_param;
  std::optional<std::string> default_version;
  std::map<std::string, std::string> default_env;
  std::map<std::string, VersionConfig> version_configs;
  Location location;
};

// One entry of `deployments`: what clients ask for by its `name`.
struct Deployment {
  // As written in the file.
  std::string name;  // the OpenAI `model`; any string
  std::string backend;  // a backend_name, or "custom"
  std::optional<std::string> backend_version;
  std::string model_path;
  std::optional<std::vector<std::string>> backend_parameters;
  std::map<std::string, std::string> env;
  Duration idle_timeout = std::chrono::minutes(15);  // zero: never stopped
  Duration startup_timeout = std::chrono::minutes(10);
  int replicas = 1;
  std::string worker;  // optional: pin to this worker name
  // Replaces the docker worker's pull_policy for this deployment.
  std::optional<std::string> pull_policy;
  // Sent to the backend as `Authorization: Bearer KEY` in place of the
  // client's key, which is never forwarded. Empty: no key is sent.
  std::string upstream_api_key;
  Location location;

  // Resolved while loading.
  std::string resolved_version;  // empty for backend: custom
  std::string image_name;
  // The run command template, split into words (not yet rendered): the
  // entrypoint's words, then the run command's words. Every placeholder in it
  // and in `parameters` names one of template_variables() or a key of
  // effective_env.
  std::vector<std::string> command_template;
  // How many leading words of command_template are the entrypoint's. A
  // container runtime passes them as the container's entrypoint.
  std::size_t entrypoint_words = 0;
  // backend_parameters if given, else the backend's default_backend_param.
  std::vector<std::string> parameters;
  // Backend default_env, then version env, then deployment env.
  std::map<std::string, std::string> effective_env;
  std::string framework;  // custom_framework of the version; empty: any
  std::string health_check_path = "/v1/models";
};

struct Config {
  std::filesystem::path path;  // the file it was loaded from
  GatewaySettings gateway;
  AuthSettings auth;
  std::vector<Worker> workers;
  std::vector<Backend> backends;
  std::vector<Deployment> deployments;

  const Deployment* find_deployment(std::string_view name) const;
  const Worker* find_worker(std::string_view name) const;
  // The worker that runs `deployment`: its pinned worker, else the first
  // worker whose frameworks include the deployment's framework. Null when
  // there is none.
  const Worker* place(const Deployment& deployment) const;
};

// Loads and validates a config file. Throws ConfigError.
Config load_config(const std::filesystem::path& path);

// Parses YAML text as if it were the file `file_name`. Throws ConfigError.
Config parse_config(std::string_view yaml_text, const std::string& file_name);

// Parses "250ms", "30s", "5m", "1h" or a plain number of seconds. Units may
// be combined, largest first, as in "1h30m" or "1m30s". Returns nullopt for
// anything else, including negative and fractional numbers.
std::optional<Duration> parse_duration(std::string_view text);

// Parses a size in bytes: a plain number, or a number followed by B, KB, MB,
// GB (powers of 1000) or KiB, MiB, GiB (powers of 1024), as in "8MiB". A space
// may separate the number and the unit. Returns nullopt for anything else.
std::optional<std::size_t> parse_size(std::string_view text);

// Compares two version strings. Each is split into runs of digits and runs of
// other characters. Digit runs compare as numbers and other runs compare
// byte-wise, so "1.10" > "1.9". When one version is a prefix of the other, the
// longer one is greater, so "1.2.0rc0" > "1.2.0". Versions whose runs are all
// equal ("01" and "1") fall back to byte-wise order, so the order is total.
// Returns a negative number, zero or a positive number, like strcmp().
int compare_versions(std::string_view a, std::string_view b);

}  // namespace modelgate::config
