// libFuzzer target: config loading from well-formed YAML. The input drives
// a generator of YAML trees whose keys and values come mostly from the
// config's own vocabulary, so that most inputs get past the YAML parser and
// reach validation, template checks and deployment resolution. The tree is
// written out with yaml-cpp's emitter and loaded like a file. Any input
// either loads or raises ConfigError; nothing else may escape.
//
// fuzz_config feeds raw bytes instead; yaml-cpp 0.7 loops on some malformed
// documents, which is why only this target runs in .ci/run.

#include "config/config.hpp"

#include <fuzzer/FuzzedDataProvider.h>
#include <yaml-cpp/yaml.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

constexpr int kMaxDepth = 5;
constexpr std::size_t kMaxEntries = 6;

// Keys of every section, so that generated maps mostly hit known keys.
constexpr std::array<std::string_view, 63> kKeys = {
    "gateway", "auth", "workers", "backends", "deployments",
    "listen", "admin_listen", "tls", "cert_file", "key_file", "min_version",
    "io_threads", "max_client_connections", "max_body_size", "max_header_size",
    "header_timeout", "keep_alive_timeout", "max_held_requests_per_deployment",
    "max_held_requests", "hold_timeout", "client_write_timeout", "max_stream_duration",
    "upstream_connect_timeout", "upstream_response_timeout", "health_check_interval",
    "max_upstream_connections",
    "log_dir", "id", "api_keys", "admin_keys", "name", "key", "key_env",
    "forbidden_status", "protect_metrics", "runtime", "frameworks", "ports", "ip",
    "endpoint", "pull_policy", "network", "gpu_ids", "backend_name",
    "health_check_path", "default_run_command", "default_backend_param",
    "default_version", "default_env", "version_configs", "image_name", "run_command",
    "entrypoint", "custom_framework", "env", "backend", "backend_version",
    "model_path", "backend_parameters", "idle_timeout", "replicas", "worker",
    "upstream_api_key"};

// Values that the loader treats specially.
constexpr std::array<std::string_view, 30> kValues = {
    "", "0", "1", "-1", "99999999999999999999", "10s", "250ms", "1h", "8MiB",
    "64 KB", "true", "false", "127.0.0.1:0", "[::1]:8080", "0.0.0.0:9091",
    "20000-20999", "process", "docker", "custom", "cpu", "cuda", "1.2", "1.3",
    "unix:///var/run/docker.sock", "tcp://127.0.0.1:2376", "{{port}}",
    "serve {{model_path}} --port {{port}}", "'unterminated", "{{unknown}}", "/v1/models"};

void emit_node(YAML::Emitter& out, FuzzedDataProvider& input, int depth);

void emit_scalar(YAML::Emitter& out, FuzzedDataProvider& input) {
  if (input.ConsumeBool()) {
    out << std::string(kValues[input.ConsumeIntegralInRange<std::size_t>(0, kValues.size() - 1)]);
  } else {
    out << input.ConsumeRandomLengthString(64);
  }
}

void emit_map(YAML::Emitter& out, FuzzedDataProvider& input, int depth) {
  out << YAML::BeginMap;
  std::size_t entries = input.ConsumeIntegralInRange<std::size_t>(0, kMaxEntries);
  for (std::size_t entry = 0; entry < entries && input.remaining_bytes() > 0; ++entry) {
    out << YAML::Key;
    if (input.ConsumeProbability<float>() < 0.9f) {
      out << std::string(kKeys[input.ConsumeIntegralInRange<std::size_t>(0, kKeys.size() - 1)]);
    } else {
      out << input.ConsumeRandomLengthString(16);
    }
    out << YAML::Value;
    emit_node(out, input, depth + 1);
  }
  out << YAML::EndMap;
}

void emit_node(YAML::Emitter& out, FuzzedDataProvider& input, int depth) {
  if (depth >= kMaxDepth) {
    emit_scalar(out, input);
    return;
  }
  switch (input.ConsumeIntegralInRange<int>(0, 3)) {
    case 0:
      emit_map(out, input, depth);
      return;
    case 1: {
      out << YAML::BeginSeq;
      std::size_t items = input.ConsumeIntegralInRange<std::size_t>(0, kMaxEntries);
      for (std::size_t item = 0; item < items && input.remaining_bytes() > 0; ++item) {
        emit_node(out, input, depth + 1);
      }
      out << YAML::EndSeq;
      return;
    }
    case 2:
      out << YAML::Null;
      return;
    default:
      emit_scalar(out, input);
      return;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider input(data, size);
  YAML::Emitter out;
  emit_map(out, input, 0);
  if (!out.good()) {
    return 0;
  }

  try {
    modelgate::config::Config config = modelgate::config::parse_config(out.c_str(), "fuzz.yaml");
    (void)config;
  } catch (const modelgate::config::ConfigError&) {
    // Rejected with a message: the expected outcome for most inputs.
  }
  return 0;
}
