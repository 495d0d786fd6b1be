#pragma once

// Pure functions that build Docker Engine API request bodies and read its
// responses, kept apart from the I/O so that unit tests check them directly.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelgate::launcher {

// Labels on every container the gateway creates. Values are the gateway id,
// the deployment name, the instance id (also the container name), the
// worker name, the backend's port, and the spec fingerprint.
inline constexpr std::string_view kLabelGateway = "modelgate.gateway";
inline constexpr std::string_view kLabelDeployment = "modelgate.deployment";
inline constexpr std::string_view kLabelInstance = "modelgate.instance";
inline constexpr std::string_view kLabelWorker = "modelgate.worker";
inline constexpr std::string_view kLabelPort = "modelgate.port";
inline constexpr std::string_view kLabelSpec = "modelgate.spec";

// Everything POST /containers/create needs for one instance.
struct ContainerSpec {
  std::string image;
  std::vector<std::string> entrypoint;  // empty: the image's ENTRYPOINT stays
  std::vector<std::string> cmd;
  std::map<std::string, std::string> env;
  std::map<std::string, std::string> labels;
  // "host": the container shares the host's network, so the backend's port
  // is a host port. "bridge": the port is published on host_ip.
  std::string network = "host";
  std::string host_ip = "127.0.0.1";
  std::uint16_t port = 0;
  std::vector<std::string> read_only_binds;  // host paths, mounted at the same path
  // "cuda": NVIDIA GPUs through a device request, all of them or gpu_ids.
  // "rocm": /dev/kfd and /dev/dri. Anything else: no devices.
  std::string framework;
  std::vector<std::string> gpu_ids;
};

// Percent-encodes `text` for a URL query value or path segment.
std::string url_encode(std::string_view text);

// `image` for a URL path such as /images/{name}/json: percent-encoded, but
// with '/', ':' and '@' kept, since engines route on the literal name.
std::string image_path(std::string_view image);

// The JSON body of POST /containers/create.
std::string container_create_body(const ContainerSpec& spec);

// A fingerprint of everything in `spec` except its labels: 16 hex digits of
// a 64-bit FNV-1a hash of the create body. A container whose label has the
// same fingerprint was created from the same image, command, environment,
// mounts, network and devices.
std::string spec_fingerprint(const ContainerSpec& spec);

// The query of POST /images/create that pulls `image`. A reference without a
// tag or digest gets tag "latest", because an empty tag pulls every tag.
std::string image_pull_query(std::string_view image);

// One line of the progress stream of an image pull, when it reports an
// error: the `error` or `errorDetail.message` field. Empty otherwise.
std::string pull_error(std::string_view json_line);

// The query of GET /containers/json that lists every container, running or
// not, with label `key=value`.
std::string container_list_query(std::string_view key, std::string_view value);

struct ContainerSummary {
  std::string id;
  std::string state;  // "running", "exited", "created", ...
  std::map<std::string, std::string> labels;
};

// Reads the response of GET /containers/json. Returns nothing when it is not a
// JSON list; entries without an Id are skipped.
std::optional<std::vector<ContainerSummary>> parse_container_list(std::string_view body);

// Reads `Id` from the response of POST /containers/create.
std::optional<std::string> parse_created_id(std::string_view body);
// Reads the warnings of POST /containers/create; absent or null gives none.
std::vector<std::string> parse_create_warnings(std::string_view body);

// Reads `StatusCode` from the response of POST /containers/{id}/wait.
std::optional<int> parse_wait_status(std::string_view body);

// From the response of GET /containers/{id}/json: whether it runs, and its
// exit code once it stopped.
struct ContainerState {
  bool running = false;
  int exit_code = 0;
};
std::optional<ContainerState> parse_container_state(std::string_view body);

// Describes the response of GET /version for a log line, such as "Podman
// Engine 4.3.1, API 1.41". Returns nothing when it is not such a response.
std::optional<std::string> describe_engine_version(std::string_view body);

}  // namespace modelgate::launcher
