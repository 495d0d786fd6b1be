#include "config/config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace modelgate::config {
namespace {

using namespace std::chrono_literals;
using Words = std::vector<std::string>;
using Env = std::map<std::string, std::string>;

Config parse(const std::string& yaml) {
  return parse_config(yaml, "/etc/modelgate/test.yaml");
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream stream(path);
  std::ostringstream text;
  text << stream.rdbuf();
  return text.str();
}

// A directory under the system's temporary directory, removed afterwards.
class TemporaryDirectory {
 public:
  TemporaryDirectory() {
    path_ = std::filesystem::temp_directory_path() /
            ("modelgate-config-test-" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TemporaryDirectory() { std::filesystem::remove_all(path_); }

  const std::filesystem::path& path() const { return path_; }

  std::filesystem::path write(const std::string& name,
                              const std::string& text) const {
    const std::filesystem::path file = path_ / name;
    std::ofstream(file) << text;
    return file;
  }

 private:
  std::filesystem::path path_;
};

// One invalid file and the error it must produce.
struct BadFile {
  std::string scenario;
  std::string yaml;
  int line;
  int column;
  std::string key_path;
  std::string message;  // a substring of what()
};

// A backend used by several bad files: versions 1.0 (cuda) and 2.0.
const std::string kBackends = R"(backends:
  - backend_name: vllm
    default_run_command: 'vllm serve {{model_path}} --port {{port}}'
    version_configs:
      "1.0":
        custom_framework: cuda
      "2.0": {}
)";

const std::vector<BadFile>& bad_files() {
  static const std::vector<BadFile> files = {
      {"YamlSyntaxError",
       "gateway:\n  listen: 127.0.0.1:8080\n io_threads: 2\n", 3, 2, "",
       "invalid YAML: end of map not found"},
      {"UnclosedFlowList", "deployments: [\n", 2, 1, "", "invalid YAML"},
      // yaml-cpp 0.7 never returns on these, so the loader rejects them first.
      {"CommaStartsDocument", "# comment\n   , ", 2, 4, "", "cannot start with ','"},
      {"CommaAfterDocumentMarker", "--- ,\n", 1, 5, "", "cannot start with ','"},
      {"TwoDocuments", "gateway: {}\n---\ngateway: {}\n", 3, 1, "",
       "more than one YAML document"},
      {"RootIsList", "- gateway\n", 1, 1, "", "the document is not a mapping"},
      {"RootIsPlainScalar", "# comment\n  gateway\n", 2, 3, "",
       "the document is not a mapping"},
      {"CommaAfterCommentInScalar", "t\n#\n,\n", 1, 1, "", "the document is not a mapping"},
      {"CommaLeftOfIndentedRoot", " a:\n,\n", 2, 1, "", "left of the document's indentation"},
      {"RootIsUrlScalar", "http://example.com\n", 1, 1, "", "the document is not a mapping"},
      {"UnknownTopLevelKey", "gateway: {}\ndeployment: []\n", 2, 1,
       "deployment",
       "unknown key \"deployment\". Did you mean \"deployments\"?"},
      {"UnknownGatewayKeySuggested", "gateway:\n  io_thread: 2\n", 2, 3,
       "gateway.io_thread", "Did you mean \"io_threads\"?"},
      {"UnknownKeyListsAllowedKeys",
       "deployments:\n  - name: a\n    backend: custom\n    run_command: x\n"
       "    colour: red\n",
       5, 5, "deployments[0].colour",
       "Remove it, or use one of the allowed keys: \"name\", \"backend\""},
      {"UnknownVersionConfigKey",
       "backends:\n  - backend_name: b\n    version_configs:\n      1.0:\n"
       "        run_commnd: serve\n",
       5, 9, "backends[0].version_configs[\"1.0\"].run_commnd",
       "Did you mean \"run_command\"?"},
      {"DuplicateKey", "gateway:\n  io_threads: 1\n  io_threads: 2\n", 3, 3,
       "gateway.io_threads",
       "duplicate key \"io_threads\" (first set at line 2)"},
      {"DuplicateEnvKey",
       "deployments:\n  - name: a\n    backend: custom\n    run_command: x\n"
       "    env:\n      A: 1\n      A: 2\n",
       7, 7, "deployments[0].env[\"A\"]", "duplicate key \"A\""},
      {"DuplicateVersion",
       "backends:\n  - backend_name: b\n    version_configs:\n"
       "      '1.0': {}\n      \"1.0\": {}\n",
       5, 7, "backends[0].version_configs[\"1.0\"]", "duplicate key \"1.0\""},
      {"MapWhereStringBelongs",
       "deployments:\n  - name: {a: 1}\n    backend: custom\n"
       "    run_command: x\n",
       2, 11, "deployments[0].name", "expected a string, found a mapping"},
      {"ListWhereMapBelongs", "gateway: [1, 2]\n", 1, 10, "gateway",
       "expected a mapping, found a list"},
      {"MapWhereListBelongs", "deployments:\n  name: a\n", 2, 3, "deployments",
       "expected a list, found a mapping"},
      {"EnvValueIsList",
       "deployments:\n  - name: a\n    backend: custom\n    run_command: x\n"
       "    env: {A: [1]}\n",
       5, 14, "deployments[0].env[\"A\"]", "expected a string, found a list"},
      {"TextWhereNumberBelongs", "gateway:\n  io_threads: abc\n", 2, 15,
       "gateway.io_threads", "invalid number \"abc\""},
      {"ZeroIoThreads", "gateway:\n  io_threads: 0\n", 2, 15,
       "gateway.io_threads", "number 0 is out of range"},
      {"NegativeSize", "gateway:\n  max_body_size: -5\n", 2, 18,
       "gateway.max_body_size", "negative size \"-5\""},
      {"BadSizeUnit", "gateway:\n  max_header_size: 64kb\n", 2, 20,
       "gateway.max_header_size", "invalid size \"64kb\""},
      {"BadDuration", "gateway:\n  hold_timeout: 10 minutes\n", 2, 17,
       "gateway.hold_timeout", "invalid duration \"10 minutes\""},
      {"ZeroStartupTimeout",
       "deployments:\n  - name: a\n    backend: custom\n    run_command: x\n"
       "    startup_timeout: 0\n",
       5, 22, "deployments[0].startup_timeout",
       "duration must be greater than zero"},
      {"ZeroReplicas",
       "deployments:\n  - name: a\n    backend: custom\n    run_command: x\n"
       "    replicas: 0\n",
       5, 15, "deployments[0].replicas", "out of range"},
      {"ListenWithoutPort", "gateway:\n  listen: 127.0.0.1\n", 2, 11,
       "gateway.listen", "listen address \"127.0.0.1\" has no port"},
      {"ListenIpv6WithoutBrackets", "gateway:\n  listen: '::1:8080'\n", 2, 11,
       "gateway.listen", "Write it as [::1]:8080"},
      {"ListenPortTooLarge", "gateway:\n  listen: localhost:70000\n", 2, 11,
       "gateway.listen", "invalid port in listen address"},
      {"PortRangeReversed", "workers:\n  - name: w\n    ports: 21000-20000\n",
       3, 12, "workers[0].ports", "starts above its last port"},
      {"PortRangeWithZero", "workers:\n  - name: w\n    ports: 0-100\n", 3, 12,
       "workers[0].ports", "invalid port range \"0-100\""},
      {"UnsupportedRuntime", "workers:\n  - name: w\n    runtime: kubernetes\n",
       3, 14, "workers[0].runtime",
       "unsupported runtime \"kubernetes\". Use one of the supported "
       "runtimes: process, docker"},
      {"DockerKeyOnProcessWorker",
       "workers:\n  - name: w\n    network: bridge\n", 3, 14,
       "workers[0].network",
       "network is only used with runtime: docker. Remove it, or set "
       "`runtime: docker`"},
      {"EndpointWithoutScheme",
       "workers:\n  - name: w\n    runtime: docker\n"
       "    endpoint: /var/run/docker.sock\n",
       4, 15, "workers[0].endpoint",
       "unsupported endpoint \"/var/run/docker.sock\". Write "
       "unix:///var/run/docker.sock"},
      {"EndpointRelativeSocket",
       "workers:\n  - name: w\n    runtime: docker\n"
       "    endpoint: unix://docker.sock\n",
       4, 15, "workers[0].endpoint", "has no absolute socket path"},
      {"EndpointTcpWithoutPort",
       "workers:\n  - name: w\n    runtime: docker\n"
       "    endpoint: tcp://engine.local\n",
       4, 15, "workers[0].endpoint",
       "invalid endpoint \"tcp://engine.local\". Write tcp://HOST:PORT"},
      {"TlsOverUnixSocket",
       "workers:\n  - name: w\n    runtime: docker\n"
       "    tls_ca: ca.pem\n",
       4, 13, "workers[0].tls_ca",
       "TLS files are set, but endpoint \"unix:///var/run/docker.sock\" is "
       "not tcp://"},
      {"TlsCertWithoutKey",
       "workers:\n  - name: w\n    runtime: docker\n"
       "    endpoint: tcp://10.0.0.2:2376\n    tls_cert: cert.pem\n",
       5, 15, "workers[0].tls_cert", "missing tls_key"},
      {"UnknownPullPolicy",
       "workers:\n  - name: w\n    runtime: docker\n"
       "    pull_policy: sometimes\n",
       4, 18, "workers[0].pull_policy",
       "invalid value \"sometimes\". Use one of: always, if-not-present, "
       "never"},
      {"UnknownNetwork",
       "workers:\n  - name: w\n    runtime: docker\n    network: overlay\n",
       4, 14, "workers[0].network",
       "invalid value \"overlay\". Use one of: host, bridge"},
      {"GpuIdWithComma",
       "workers:\n  - name: w\n    runtime: docker\n    gpu_ids: ['0,1']\n",
       4, 14, "workers[0].gpu_ids", "invalid GPU id \"0,1\""},
      {"InvalidGatewayId", "gateway:\n  id: 'edge 1'\n", 2, 7, "gateway.id",
       "invalid gateway id \"edge 1\""},
      {"DockerDeploymentWithoutImage",
       "workers:\n  - name: w\n    runtime: docker\n"
       "deployments:\n  - name: a\n    backend: custom\n"
       "    run_command: serve\n",
       6, 14, "deployments[0].backend",
       "deployment \"a\" runs on worker \"w\" with runtime: docker, but has "
       "no image_name. Set image_name in deployments[0]"},
      {"PullPolicyOnProcessWorker",
       "deployments:\n  - name: a\n    backend: custom\n"
       "    run_command: serve\n    pull_policy: never\n",
       5, 18, "deployments[0].pull_policy",
       "pull_policy is set, but deployment \"a\" runs on worker \"local\" "
       "with runtime: process"},
      {"EmptyWorkers", "workers: []\n", 1, 10, "workers", "empty workers list"},
      {"MissingDeploymentName",
       "deployments:\n  - backend: custom\n    run_command: x\n", 2, 5,
       "deployments[0].name", "missing required key \"name\""},
      {"EmptyDeploymentName",
       "deployments:\n  - name:\n    backend: custom\n    run_command: x\n", 2,
       5, "deployments[0].name", "required key \"name\" has no value"},
      {"MissingBackendName", "backends:\n  - description: no name\n", 2, 5,
       "backends[0].backend_name", "missing required key \"backend_name\""},
      {"BackendNamedCustom", "backends:\n  - backend_name: custom\n", 2, 19,
       "backends[0].backend_name", "backend_name \"custom\" is reserved"},
      {"HealthCheckPathWithoutSlash",
       "backends:\n  - backend_name: b\n    health_check_path: health\n", 3, 24,
       "backends[0].health_check_path", "does not start with \"/\""},
      {"ControlCharacterInName",
       "deployments:\n  - name: \"a\\tb\"\n    backend: custom\n"
       "    run_command: x\n",
       2, 11, "deployments[0].name", "name contains a control character"},
      {"DuplicateDeploymentName",
       "deployments:\n  - name: a\n    backend: custom\n    run_command: x\n"
       "  - name: a\n    backend: custom\n    run_command: y\n",
       5, 11, "deployments[1].name",
       "duplicate deployment name \"a\", also used by deployments[0]"},
      {"DuplicateBackendName",
       "backends:\n  - backend_name: b\n  - backend_name: c\n"
       "  - backend_name: b\n",
       4, 19, "backends[2].backend_name",
       "duplicate backend name \"b\", also used by backends[0]"},
      {"DuplicateWorkerName", "workers:\n  - name: w\n  - {name: w}\n", 3, 12,
       "workers[1].name", "duplicate worker name \"w\""},
      {"UnknownBackend",
       kBackends + "deployments:\n  - name: a\n    backend: vlm\n", 10, 14,
       "deployments[0].backend",
       "unknown backend \"vlm\". Did you mean \"vllm\"? Use one of: vllm, "
       "custom"},
      {"VersionNotInVersionConfigs",
       kBackends + "deployments:\n  - name: a\n    backend: vllm\n"
                   "    backend_version: \"3.0\"\n    model_path: /m\n",
       11, 22, "deployments[0].backend_version",
       "version \"3.0\" is not in the version_configs of backend "
       "\"vllm\". Use one of the versions: 1.0, 2.0"},
      {"VersionWithoutVersionConfigs",
       "backends:\n  - backend_name: b\n    default_run_command: serve\n"
       "deployments:\n  - name: a\n    backend: b\n    backend_version: 1\n",
       7, 22, "deployments[0].backend_version",
       "backend \"b\" has no version_configs"},
      {"VersionOnCustomDeployment",
       "deployments:\n  - name: a\n    backend: custom\n    run_command: x\n"
       "    backend_version: 1\n",
       5, 22, "deployments[0].backend_version",
       "backend: custom has no versions"},
      {"NoWorkerOffersFramework",
       kBackends + "deployments:\n  - name: a\n    backend: vllm\n"
                   "    backend_version: \"1.0\"\n    model_path: /m\n",
       10, 14, "deployments[0].backend",
       "no worker offers framework \"cuda\", which backend \"vllm\" version "
       "\"1.0\" needs. Add it to a worker's frameworks"},
      {"PinnedWorkerLacksFramework",
       kBackends + "workers:\n  - name: cpu-box\n  - name: gpu-box\n"
                   "    frameworks: [cuda]\n"
                   "deployments:\n  - name: a\n    backend: vllm\n"
                   "    backend_version: \"1.0\"\n    model_path: /m\n"
                   "    worker: cpu-box\n",
       17, 13, "deployments[0].worker",
       "worker \"cpu-box\" does not offer framework \"cuda\""},
      {"UnknownWorker",
       "deployments:\n  - name: a\n    backend: custom\n    run_command: x\n"
       "    worker: gpu\n",
       5, 13, "deployments[0].worker",
       "unknown worker \"gpu\". Use one of the workers: local"},
      {"ImageNameOnBackendDeployment",
       kBackends + "deployments:\n  - name: a\n    backend: vllm\n"
                   "    image_name: vllm/vllm-openai\n",
       11, 17, "deployments[0].image_name",
       "image_name is only used with backend: custom"},
      {"RunCommandOnBackendDeployment",
       kBackends + "deployments:\n  - name: a\n    backend: vllm\n"
                   "    run_command: serve\n",
       11, 18, "deployments[0].run_command",
       "run_command is only used with backend: custom"},
      {"CustomWithoutRunCommand",
       "deployments:\n  - name: a\n    backend: custom\n", 2, 5,
       "deployments[0].run_command",
       "missing run_command, which backend: custom requires"},
      {"EmptyCustomRunCommand",
       "deployments:\n  - name: a\n    backend: custom\n"
       "    run_command: '  '\n",
       4, 18, "deployments[0].run_command", "empty run_command"},
      {"BackendWithoutRunCommand",
       "backends:\n  - backend_name: b\n    version_configs:\n"
       "      \"1.0\": {image_name: x}\n"
       "deployments:\n  - name: a\n    backend: b\n",
       7, 14, "deployments[0].backend",
       "backend \"b\" version \"1.0\" has no run command. Set run_command in "
       "backends[0].version_configs[\"1.0\"], or default_run_command in "
       "backends[0]"},
      {"UnknownTemplateVariable",
       "deployments:\n  - name: a\n    backend: custom\n"
       "    run_command: serve {{modle_path}}\n    model_path: /m\n",
       4, 18, "deployments[0].run_command",
       "unknown template variable {{modle_path}} in the command of "
       "deployment \"a\". Did you mean {{model_path}}?"},
      {"UnknownTemplateVariableInBackend",
       "backends:\n  - backend_name: b\n"
       "    default_run_command: serve --port={{prot}}\n"
       "deployments:\n  - name: a\n    backend: b\n",
       3, 26, "backends[0].default_run_command",
       "unknown template variable {{prot}}"},
      {"UnknownTemplateVariableInDefaultParam",
       "backends:\n  - backend_name: b\n    default_run_command: serve\n"
       "    default_backend_param: [--a, '--token={{HF_TOKEN}}']\n"
       "deployments:\n  - name: a\n    backend: b\n",
       4, 34, "backends[0].default_backend_param[1]",
       "unknown template variable {{HF_TOKEN}}"},
      {"InvalidPlaceholderInParameter",
       "deployments:\n  - name: a\n    backend: custom\n    run_command: x\n"
       "    backend_parameters: ['--x={{a-b}}']\n",
       5, 26, "deployments[0].backend_parameters[0]",
       "invalid template placeholder \"{{a-b}}\""},
      {"UnterminatedQuoteInCommand",
       "deployments:\n  - name: a\n    backend: custom\n"
       "    run_command: serve --name 'my model\n",
       4, 18, "deployments[0].run_command",
       "unterminated single quote opened at character 14"},
      {"UnterminatedQuoteInUnusedBackend",
       "backends:\n  - backend_name: b\n    version_configs:\n      \"1\":\n"
       "        entrypoint: \"python -c \\\"x\"\n",
       5, 21, "backends[0].version_configs[\"1\"].entrypoint",
       "unterminated double quote"},
      {"ModelPathPlaceholderWithoutModelPath",
       kBackends + "deployments:\n  - name: a\n    backend: vllm\n", 9, 5,
       "deployments[0].model_path",
       "the run command uses {{model_path}}, but model_path is not set"},
      {"EmptyLogDir", "gateway:\n  log_dir: ''\n", 2, 12, "gateway.log_dir",
       "empty log_dir"},
      {"ZeroMaxClientConnections", "gateway:\n  max_client_connections: 0\n", 2, 27,
       "gateway.max_client_connections", "number 0 is out of range"},
      {"ZeroClientWriteTimeout", "gateway:\n  client_write_timeout: 0\n", 2, 25,
       "gateway.client_write_timeout", "zero"},
      {"TlsWithoutKeyFile", "gateway:\n  tls:\n    cert_file: a.pem\n", 3, 5,
       "gateway.tls.key_file", "missing"},
      {"TlsMinVersionTooOld",
       "gateway:\n  tls: {cert_file: a, key_file: b, min_version: '1.1'}\n", 2, 49,
       "gateway.tls.min_version", "invalid value \"1.1\""},
      {"AdminListenWithoutPort", "gateway:\n  admin_listen: 127.0.0.1\n", 2, 17,
       "gateway.admin_listen", "has no port"},
      {"PublicAdminListenWithoutAdminKeys", "gateway:\n  admin_listen: 0.0.0.0:9091\n", 2, 17,
       "gateway.admin_listen", "auth.admin_keys is empty"},
      {"ApiKeyWithoutKey", "auth:\n  api_keys:\n    - name: team-a\n", 3, 7,
       "auth.api_keys[0]", "missing key and key_env"},
      {"ApiKeyWithKeyAndKeyEnv",
       "auth:\n  api_keys:\n    - {name: a, key: k1, key_env: MODELGATE_TEST_KEY}\n", 3, 35,
       "auth.api_keys[0].key_env", "both key and key_env are set"},
      {"ApiKeyEnvNotSet",
       "auth:\n  api_keys:\n    - name: a\n      key_env: MODELGATE_TEST_UNSET_KEY\n", 4, 16,
       "auth.api_keys[0].key_env",
       "environment variable \"MODELGATE_TEST_UNSET_KEY\" is not set or empty"},
      {"EmptyApiKeyName", "auth:\n  api_keys:\n    - {name: '', key: k1}\n", 3, 14,
       "auth.api_keys[0].name", "empty key name"},
      {"DuplicateApiKey",
       "auth:\n  api_keys:\n    - {name: a, key: k1}\n  admin_keys:\n"
       "    - {name: ops, key: k1}\n",
       5, 7, "auth.admin_keys[0]", "the same key is also given in auth.api_keys[0]"},
      {"ApiKeyForUnknownDeployment",
       "auth:\n  api_keys:\n    - {name: a, key: k1, deployments: [chatt]}\n"
       "deployments:\n  - {name: chat, backend: custom, run_command: x}\n",
       3, 40, "auth.api_keys[0].deployments[0]",
       "unknown deployment \"chatt\". Did you mean \"chat\"?"},
      {"ForbiddenStatusNot403Or404", "auth:\n  forbidden_status: 401\n", 2, 21,
       "auth.forbidden_status", "out of range"},
      {"ProtectMetricsNotBoolean", "auth:\n  protect_metrics: yes\n", 2, 20,
       "auth.protect_metrics", "invalid boolean \"yes\""},
      {"UnknownAuthKey", "auth:\n  api_key: []\n", 2, 3, "auth.api_key",
       "Did you mean \"api_keys\"?"},
      {"UpstreamKeyEnvNotSet",
       "deployments:\n  - {name: a, backend: custom, run_command: x,\n"
       "     upstream_api_key_env: MODELGATE_TEST_UNSET_KEY}\n",
       3, 28, "deployments[0].upstream_api_key_env", "is not set or empty"},
  };
  return files;
}

TEST(Config, RejectsBadFiles) {
  ASSERT_GE(bad_files().size(), 25u);
  for (const BadFile& file : bad_files()) {
    SCOPED_TRACE(file.scenario + "\n" + file.yaml);
    try {
      parse(file.yaml);
      ADD_FAILURE() << "expected ConfigError";
    } catch (const ConfigError& error) {
      EXPECT_EQ(error.file(), "/etc/modelgate/test.yaml");
      EXPECT_EQ(error.location().line, file.line) << error.what();
      EXPECT_EQ(error.location().column, file.column) << error.what();
      EXPECT_EQ(error.key_path(), file.key_path) << error.what();
      EXPECT_NE(std::string(error.what()).find(file.message), std::string::npos)
          << error.what();
      EXPECT_FALSE(error.fix().empty()) << error.what();
    }
  }
}

TEST(Config, ErrorMessageFormat) {
  try {
    parse("gateway:\n  io_threads: abc\n");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& error) {
    EXPECT_STREQ(error.what(),
                 "/etc/modelgate/test.yaml:2:15: gateway.io_threads: invalid "
                 "number \"abc\". Use a whole number from 1 to 2147483647.");
    EXPECT_EQ(error.problem(), "invalid number \"abc\"");
    EXPECT_EQ(error.fix(), "Use a whole number from 1 to 2147483647");
  }
}

TEST(Config, ErrorWithoutLocationOrKeyPath) {
  const ConfigError error("a.yaml", {}, "", "config file not found",
                          "Check the path");
  EXPECT_STREQ(error.what(), "a.yaml: config file not found. Check the path.");
}

TEST(Config, RejectsMissingFile) {
  TemporaryDirectory directory;
  const std::filesystem::path missing = directory.path() / "missing.yaml";
  try {
    load_config(missing);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& error) {
    EXPECT_EQ(error.file(), missing.string());
    EXPECT_EQ(error.location().line, 0);
    EXPECT_EQ(error.location().column, 0);
    EXPECT_EQ(error.key_path(), "");
    EXPECT_NE(std::string(error.what()).find("config file not found"),
              std::string::npos)
        << error.what();
  }
}

TEST(Config, RejectsDirectoryAsFile) {
  TemporaryDirectory directory;
  try {
    load_config(directory.path());
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& error) {
    EXPECT_EQ(error.location().line, 0);
    EXPECT_NE(std::string(error.what()).find("is a directory"),
              std::string::npos)
        << error.what();
  }
}

TEST(Config, SyntaxErrorFromFileNamesFile) {
  TemporaryDirectory directory;
  const auto file = directory.write("bad.yaml", "gateway: [\n");
  try {
    load_config(file);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& error) {
    EXPECT_EQ(error.file(), file.string());
    EXPECT_EQ(error.location().line, 2);
    EXPECT_NE(std::string(error.what()).find("invalid YAML"), std::string::npos)
        << error.what();
  }
}

TEST(Config, EmptyFileGivesDefaults) {
  const Config config = parse("");

  EXPECT_EQ(config.path, "/etc/modelgate/test.yaml");
  const GatewaySettings& gateway = config.gateway;
  EXPECT_EQ(gateway.listen_address, "127.0.0.1");
  EXPECT_EQ(gateway.listen_port, 8080);
  EXPECT_EQ(gateway.io_threads, 1);
  EXPECT_EQ(gateway.max_body_bytes, 8u * 1024 * 1024);
  EXPECT_EQ(gateway.max_header_bytes, 64u * 1024);
  EXPECT_EQ(gateway.header_timeout, 30s);
  EXPECT_EQ(gateway.keep_alive_timeout, 75s);
  EXPECT_EQ(gateway.max_held_requests_per_deployment, 1000u);
  EXPECT_EQ(gateway.hold_timeout, 10min);
  EXPECT_EQ(gateway.upstream_connect_timeout, 5s);
  EXPECT_EQ(gateway.upstream_response_timeout, Duration::zero());
  EXPECT_EQ(gateway.max_idle_upstream_connections, 64u);
  EXPECT_EQ(gateway.health_check_interval, 10ms);
  EXPECT_EQ(gateway.health_check_timeout, 2s);
  EXPECT_EQ(gateway.stop_grace_period, 10s);
  EXPECT_EQ(gateway.log_dir, "/etc/modelgate/logs");
  EXPECT_EQ(gateway.instance_log_lines, 200u);

  ASSERT_EQ(config.workers.size(), 1u);
  const Worker& worker = config.workers[0];
  EXPECT_EQ(worker.name, "local");
  EXPECT_EQ(worker.runtime, "process");
  EXPECT_EQ(worker.frameworks, Words{"cpu"});
  EXPECT_EQ(worker.ports.first, 20000);
  EXPECT_EQ(worker.ports.last, 20999);
  EXPECT_EQ(worker.ip, "127.0.0.1");
  EXPECT_TRUE(config.backends.empty());
  EXPECT_TRUE(config.deployments.empty());
}

TEST(Config, EmptySectionsGiveDefaults) {
  const Config config =
      parse("gateway:\nbackends:\ndeployments: []\n# only comments\n");
  EXPECT_EQ(config.gateway.listen_port, 8080);
  ASSERT_EQ(config.workers.size(), 1u);
  EXPECT_EQ(config.workers[0].name, "local");
}

TEST(Config, ReadsGatewaySettings) {
  const Config config = parse(R"(gateway:
  listen: "[::1]:9000"
  io_threads: 4
  max_body_size: 16MiB
  max_header_size: 8 KB
  header_timeout: 250ms
  keep_alive_timeout: 1m30s
  max_held_requests_per_deployment: 0
  hold_timeout: 1h
  upstream_connect_timeout: 3
  upstream_response_timeout: 0
  max_idle_upstream_connections: 8
  health_check_interval: 50ms
  health_check_timeout: 1s
  stop_grace_period: 20s
  log_dir: ../var/log/modelgate
  instance_log_lines: 50
)");
  const GatewaySettings& gateway = config.gateway;
  EXPECT_EQ(gateway.listen_address, "::1");
  EXPECT_EQ(gateway.listen_port, 9000);
  EXPECT_EQ(gateway.io_threads, 4);
  EXPECT_EQ(gateway.max_body_bytes, 16u * 1024 * 1024);
  EXPECT_EQ(gateway.max_header_bytes, 8000u);
  EXPECT_EQ(gateway.header_timeout, 250ms);
  EXPECT_EQ(gateway.keep_alive_timeout, 90s);
  EXPECT_EQ(gateway.max_held_requests_per_deployment, 0u);
  EXPECT_EQ(gateway.hold_timeout, 1h);
  EXPECT_EQ(gateway.upstream_connect_timeout, 3s);
  EXPECT_EQ(gateway.upstream_response_timeout, Duration::zero());
  EXPECT_EQ(gateway.max_idle_upstream_connections, 8u);
  EXPECT_EQ(gateway.health_check_interval, 50ms);
  EXPECT_EQ(gateway.health_check_timeout, 1s);
  EXPECT_EQ(gateway.stop_grace_period, 20s);
  EXPECT_EQ(gateway.log_dir, "/etc/var/log/modelgate");
  EXPECT_EQ(gateway.instance_log_lines, 50u);
}

TEST(Config, ReadsListenersAndLimits) {
  const Config config = parse(R"(gateway:
  listen: 0.0.0.0:8443
  admin_listen: 127.0.0.1:9091
  tls:
    cert_file: tls/cert.pem
    key_file: /etc/ssl/private/modelgate.key
    min_version: "1.3"
  max_client_connections: 500
  max_held_requests: 20
  max_upstream_connections: 16
  client_write_timeout: 5s
  max_stream_duration: 0
)");
  const GatewaySettings& gateway = config.gateway;
  ASSERT_TRUE(gateway.admin_listen.has_value());
  EXPECT_EQ(gateway.admin_listen->host, "127.0.0.1");
  EXPECT_EQ(gateway.admin_listen->port, 9091);
  EXPECT_TRUE(gateway.tls.enabled());
  EXPECT_EQ(gateway.tls.cert_file, "/etc/modelgate/tls/cert.pem");
  EXPECT_EQ(gateway.tls.key_file, "/etc/ssl/private/modelgate.key");
  EXPECT_EQ(gateway.tls.min_version, "1.3");
  EXPECT_EQ(gateway.max_client_connections, 500u);
  EXPECT_EQ(gateway.max_held_requests, 20u);
  EXPECT_EQ(gateway.max_upstream_connections, 16u);
  EXPECT_EQ(gateway.client_write_timeout, 5s);
  EXPECT_EQ(gateway.max_stream_duration, Duration::zero());
}

TEST(Config, SecurityDefaults) {
  const Config config = parse("");
  EXPECT_FALSE(config.gateway.tls.enabled());
  EXPECT_EQ(config.gateway.tls.min_version, "1.2");
  EXPECT_FALSE(config.gateway.admin_listen.has_value());
  EXPECT_EQ(config.gateway.max_client_connections, 10000u);
  EXPECT_EQ(config.gateway.max_held_requests, 10000u);
  EXPECT_EQ(config.gateway.max_upstream_connections, 1024u);
  EXPECT_EQ(config.gateway.client_write_timeout, 60s);
  EXPECT_EQ(config.gateway.max_stream_duration, 1h);
  EXPECT_TRUE(config.auth.api_keys.empty());
  EXPECT_TRUE(config.auth.admin_keys.empty());
  EXPECT_EQ(config.auth.forbidden_status, 403);
  EXPECT_FALSE(config.auth.protect_metrics);
}

TEST(Config, ReadsApiKeysFromFileAndEnvironment) {
  ::setenv("MODELGATE_TEST_TEAM_KEY", "sk-from-env", 1);
  ::setenv("MODELGATE_TEST_BACKEND_KEY", "backend-secret", 1);
  const Config config = parse(R"(auth:
  api_keys:
    - name: team-a
      key_env: MODELGATE_TEST_TEAM_KEY
      deployments: [chat]
    - name: ci
      key: sk-inline
  admin_keys:
    - name: ops
      key: admin-inline
  forbidden_status: 404
  protect_metrics: true
deployments:
  - name: chat
    backend: custom
    run_command: serve
    upstream_api_key_env: MODELGATE_TEST_BACKEND_KEY
  - name: embed
    backend: custom
    run_command: serve
    upstream_api_key: inline-backend-key
)");
  ::unsetenv("MODELGATE_TEST_TEAM_KEY");
  ::unsetenv("MODELGATE_TEST_BACKEND_KEY");

  ASSERT_EQ(config.auth.api_keys.size(), 2u);
  EXPECT_EQ(config.auth.api_keys[0].name, "team-a");
  EXPECT_EQ(config.auth.api_keys[0].key, "sk-from-env");
  EXPECT_EQ(config.auth.api_keys[0].deployments, Words{"chat"});
  EXPECT_EQ(config.auth.api_keys[1].key, "sk-inline");
  EXPECT_TRUE(config.auth.api_keys[1].deployments.empty());
  ASSERT_EQ(config.auth.admin_keys.size(), 1u);
  EXPECT_EQ(config.auth.admin_keys[0].key, "admin-inline");
  EXPECT_EQ(config.auth.forbidden_status, 404);
  EXPECT_TRUE(config.auth.protect_metrics);
  EXPECT_EQ(config.deployments[0].upstream_api_key, "backend-secret");
  EXPECT_EQ(config.deployments[1].upstream_api_key, "inline-backend-key");
}

TEST(Config, PublicAdminListenWithAdminKeys) {
  const Config config = parse(
      "gateway:\n  admin_listen: '[::]:9091'\nauth:\n  admin_keys: [{name: ops, key: k}]\n");
  ASSERT_TRUE(config.gateway.admin_listen.has_value());
  EXPECT_EQ(config.gateway.admin_listen->host, "::");
}

TEST(Config, ListenAcceptsHostNamesAndPortZero) {
  EXPECT_EQ(parse("gateway: {listen: localhost:0}\n").gateway.listen_address,
            "localhost");
  EXPECT_EQ(parse("gateway: {listen: localhost:0}\n").gateway.listen_port, 0);
  EXPECT_EQ(parse("gateway: {listen: 0.0.0.0:443}\n").gateway.listen_address,
            "0.0.0.0");
  EXPECT_EQ(
      parse("gateway: {listen: '[fe80::1%eth0]:80'}\n").gateway.listen_address,
      "fe80::1%eth0");
}

TEST(Config, AbsoluteLogDirIsKept) {
  const Config config = parse("gateway: {log_dir: /var/log/modelgate/}\n");
  EXPECT_EQ(config.gateway.log_dir, "/var/log/modelgate/");
}

TEST(Config, LoadsFileAndResolvesLogDir) {
  TemporaryDirectory directory;
  const auto file = directory.write(
      "gateway.yaml",
      "gateway:\n  log_dir: instance-logs\ndeployments:\n"
      "  - name: echo\n    backend: custom\n    run_command: echo hi\n");

  const Config config = load_config(file);

  EXPECT_EQ(config.path, file);
  EXPECT_EQ(config.gateway.log_dir, directory.path() / "instance-logs");
  ASSERT_EQ(config.deployments.size(), 1u);
  EXPECT_EQ(config.deployments[0].command_template, (Words{"echo", "hi"}));
}

TEST(Config, ReadsWorkers) {
  const Config config = parse(R"(workers:
  - name: gpu-box
    runtime: process
    frameworks: [cuda, cpu]
    ports: 40000-40010
    ip: 10.0.0.5
  - name: small
    ports: 20000-20000
)");
  ASSERT_EQ(config.workers.size(), 2u);
  const Worker& gpu = config.workers[0];
  EXPECT_EQ(gpu.name, "gpu-box");
  EXPECT_EQ(gpu.frameworks, (Words{"cuda", "cpu"}));
  EXPECT_EQ(gpu.ports.first, 40000);
  EXPECT_EQ(gpu.ports.last, 40010);
  EXPECT_EQ(gpu.ip, "10.0.0.5");
  EXPECT_EQ(gpu.location.line, 2);
  EXPECT_EQ(gpu.location.column, 5);

  const Worker& small = config.workers[1];
  EXPECT_EQ(small.frameworks, Words{"cpu"});
  EXPECT_EQ(small.ports.first, 20000);
  EXPECT_EQ(small.ports.last, 20000);
  EXPECT_EQ(config.find_worker("small"), &small);
  EXPECT_EQ(config.find_worker("local"), nullptr);
}

TEST(Config, ReadsDockerWorker) {
  const Config config = parse(R"(gateway:
  id: edge-1
workers:
  - name: gpu
    runtime: docker
    endpoint: tcp://[fd00::2]:2376
    tls_ca: certs/ca.pem
    tls_cert: /etc/modelgate/client.pem
    tls_key: certs/client-key.pem
    pull_policy: never
    network: bridge
    gpu_ids: [0, 2]
    frameworks: [cuda]
  - name: podman
    runtime: docker
    endpoint: unix:///run/podman/podman.sock
backends:
  - backend_name: stub
    default_entrypoint: /bin/entry --verbose
    default_run_command: serve --port {{port}}
    version_configs:
      "1.0": {image_name: example/stub:1.0, custom_framework: cuda}
deployments:
  - name: a
    backend: stub
    pull_policy: always
)");
  EXPECT_EQ(config.gateway.id, "edge-1");

  const DockerSettings& gpu = config.workers[0].docker;
  EXPECT_EQ(gpu.endpoint, "tcp://[fd00::2]:2376");
  EXPECT_EQ(gpu.socket_path, "");
  EXPECT_EQ(gpu.host, "fd00::2");
  EXPECT_EQ(gpu.port, 2376);
  EXPECT_EQ(gpu.tls_ca, "/etc/modelgate/certs/ca.pem");
  EXPECT_EQ(gpu.tls_cert, "/etc/modelgate/client.pem");
  EXPECT_EQ(gpu.tls_key, "/etc/modelgate/certs/client-key.pem");
  EXPECT_EQ(gpu.pull_policy, "never");
  EXPECT_EQ(gpu.network, "bridge");
  EXPECT_EQ(gpu.gpu_ids, (Words{"0", "2"}));

  const DockerSettings& podman = config.workers[1].docker;
  EXPECT_EQ(podman.socket_path, "/run/podman/podman.sock");
  EXPECT_EQ(podman.host, "");
  EXPECT_EQ(podman.pull_policy, "if-not-present");
  EXPECT_EQ(podman.network, "host");
  EXPECT_TRUE(podman.gpu_ids.empty());

  const Deployment& deployment = config.deployments[0];
  EXPECT_EQ(deployment.pull_policy, "always");
  EXPECT_EQ(deployment.image_name, "example/stub:1.0");
  EXPECT_EQ(deployment.entrypoint_words, 2u);
  EXPECT_EQ(deployment.command_template,
            (Words{"/bin/entry", "--verbose", "serve", "--port", "{{port}}"}));
  EXPECT_EQ(config.place(deployment), &config.workers[0]);
}

TEST(Config, DockerWorkerDefaults) {
  const Config config =
      parse("workers:\n  - name: w\n    runtime: docker\n");

  const DockerSettings& docker = config.workers[0].docker;
  EXPECT_EQ(docker.endpoint, "unix:///var/run/docker.sock");
  EXPECT_EQ(docker.socket_path, "/var/run/docker.sock");
  EXPECT_EQ(docker.pull_policy, "if-not-present");
  EXPECT_EQ(docker.network, "host");
  EXPECT_TRUE(docker.tls_ca.empty());
  EXPECT_TRUE(config.gateway.id.empty());
}

// A backend with three versions and the settings that layer over each other.
const std::string kLayeredBackend = R"(backends:
  - backend_name: vLLM
    description: vLLM server
    health_check_path: /health
    default_entrypoint: python3 -m
    default_run_command: vllm.entrypoints.openai.api_server --model {{model_path}}
    default_backend_param: ["--max-model-len=4096"]
    default_version: "0.9"
    default_env: {A: backend, B: backend, C: backend}
    version_configs:
      "0.9":
        image_name: vllm/vllm-openai:v0.9
        env: {B: version}
      "0.10":
        image_name: vllm/vllm-openai:v0.10
        run_command: vllm serve {{model_path}} --port {{port}}
        entrypoint: /usr/bin/env
        custom_framework: cuda
        built_in_frameworks: [cuda, rocm]
      "0.10rc1":
        run_command: vllm serve {{model_path}}
workers:
  - name: gpu
    frameworks: [cuda]
)";

TEST(Config, ResolvesDefaultVersion) {
  const Config config = parse(kLayeredBackend +
                              "deployments:\n  - name: a\n    backend: vLLM\n"
                              "    model_path: /m\n");
  const Deployment& deployment = config.deployments.at(0);
  EXPECT_EQ(deployment.resolved_version, "0.9");
  EXPECT_EQ(deployment.image_name, "vllm/vllm-openai:v0.9");
  EXPECT_EQ(deployment.framework, "");
  EXPECT_EQ(deployment.health_check_path, "/health");
}

TEST(Config, ResolvesExplicitVersion) {
  const Config config = parse(kLayeredBackend +
                              "deployments:\n  - name: a\n    backend: vLLM\n"
                              "    backend_version: 0.10rc1\n"
                              "    model_path: /m\n");
  EXPECT_EQ(config.deployments.at(0).resolved_version, "0.10rc1");
}

TEST(Config, ResolvesHighestVersionWithoutDefault) {
  std::string yaml = kLayeredBackend;
  yaml.replace(yaml.find("    default_version: \"0.9\"\n"),
               std::string("    default_version: \"0.9\"\n").size(), "");
  const Config config = parse(yaml +
                              "deployments:\n  - name: a\n    backend: vLLM\n"
                              "    model_path: /m\n");
  // "0.10rc1" is above "0.10" because it is longer with equal runs, and both
  // are above "0.9" because 10 > 9.
  EXPECT_EQ(config.deployments.at(0).resolved_version, "0.10rc1");
}

TEST(Config, UnknownDefaultVersionUsesHighest) {
  std::string yaml = kLayeredBackend;
  yaml.replace(yaml.find("default_version: \"0.9\""),
               std::string("default_version: \"0.9\"").size(),
               "default_version: \"5.0\"");
  const Config config = parse(yaml +
                              "deployments:\n  - name: a\n    backend: vLLM\n"
                              "    model_path: /m\n");
  EXPECT_EQ(config.deployments.at(0).resolved_version, "0.10rc1");
}

TEST(Config, BackendWithoutVersionConfigsHasNoVersion) {
  const Config config = parse(
      "backends:\n  - backend_name: llama.cpp\n"
      "    default_version: b4000\n"
      "    default_run_command: llama-server -m {{model_path}} --port "
      "{{port}}\n"
      "deployments:\n  - name: a\n    backend: llama.cpp\n"
      "    model_path: /m.gguf\n");
  const Deployment& deployment = config.deployments.at(0);
  EXPECT_EQ(deployment.resolved_version, "");
  EXPECT_EQ(
      deployment.command_template,
      (Words{"llama-server", "-m", "{{model_path}}", "--port", "{{port}}"}));
  EXPECT_EQ(deployment.image_name, "");
  EXPECT_EQ(deployment.health_check_path, "/v1/models");
}

TEST(Config, CommandFallsBackToDefaultRunCommand) {
  const Config config = parse(kLayeredBackend +
                              "deployments:\n  - name: a\n    backend: vLLM\n"
                              "    backend_version: \"0.9\"\n"
                              "    model_path: /m\n");
  // Version 0.9 has no run_command and no entrypoint.
  EXPECT_EQ(config.deployments.at(0).command_template,
            (Words{"python3", "-m", "vllm.entrypoints.openai.api_server",
                   "--model", "{{model_path}}"}));
}

TEST(Config, VersionCommandAndEntrypointWin) {
  const Config config = parse(kLayeredBackend +
                              "deployments:\n  - name: a\n    backend: vLLM\n"
                              "    backend_version: \"0.10\"\n"
                              "    model_path: /m\n");
  const Deployment& deployment = config.deployments.at(0);
  EXPECT_EQ(deployment.command_template,
            (Words{"/usr/bin/env", "vllm", "serve", "{{model_path}}", "--port",
                   "{{port}}"}));
  EXPECT_EQ(deployment.framework, "cuda");
  EXPECT_EQ(deployment.image_name, "vllm/vllm-openai:v0.10");
}

TEST(Config, DefaultEntrypointPrependsVersionCommand) {
  const Config config = parse(kLayeredBackend +
                              "deployments:\n  - name: a\n    backend: vLLM\n"
                              "    backend_version: 0.10rc1\n"
                              "    model_path: /m\n");
  EXPECT_EQ(config.deployments.at(0).command_template,
            (Words{"python3", "-m", "vllm", "serve", "{{model_path}}"}));
}

TEST(Config, ParametersDefaultToBackend) {
  const Config config = parse(kLayeredBackend +
                              "deployments:\n  - name: a\n    backend: vLLM\n"
                              "    model_path: /m\n");
  const Deployment& deployment = config.deployments.at(0);
  EXPECT_FALSE(deployment.backend_parameters.has_value());
  EXPECT_EQ(deployment.parameters, Words{"--max-model-len=4096"});
}

TEST(Config, ParametersReplaceBackendDefaults) {
  const Config config = parse(
      kLayeredBackend +
      "deployments:\n"
      "  - name: a\n    backend: vLLM\n    model_path: /m\n"
      "    backend_parameters: ['--served-model-name={{model_name}}', -tp, "
      "'2']\n"
      "  - name: b\n    backend: vLLM\n    model_path: /m\n"
      "    backend_parameters: []\n"
      "  - name: c\n    backend: vLLM\n    model_path: /m\n"
      "    backend_parameters:\n");
  EXPECT_EQ(config.deployments.at(0).parameters,
            (Words{"--served-model-name={{model_name}}", "-tp", "2"}));
  EXPECT_TRUE(config.deployments.at(1).parameters.empty());
  EXPECT_TRUE(config.deployments.at(1).backend_parameters.has_value());
  // An empty value counts as not set.
  EXPECT_EQ(config.deployments.at(2).parameters, Words{"--max-model-len=4096"});
}

TEST(Config, EnvLayersBackendVersionDeployment) {
  const Config config = parse(kLayeredBackend +
                              "deployments:\n  - name: a\n    backend: vLLM\n"
                              "    model_path: /m\n"
                              "    env: {C: deployment, D: deployment, E:}\n");
  const Env expected = {{"A", "backend"},
                        {"B", "version"},
                        {"C", "deployment"},
                        {"D", "deployment"},
                        {"E", ""}};
  EXPECT_EQ(config.deployments.at(0).effective_env, expected);
  EXPECT_EQ(config.deployments.at(0).env.size(), 3u);
}

TEST(Config, EnvKeysAreTemplateVariables) {
  const Config config = parse(
      "backends:\n  - backend_name: b\n"
      "    default_run_command: serve --token={{HF_TOKEN}}\n"
      "    default_backend_param: ['--home={{ HF_HOME }}']\n"
      "    default_env: {HF_HOME: /cache}\n"
      "deployments:\n  - name: a\n    backend: b\n"
      "    env: {HF_TOKEN: secret}\n");
  EXPECT_EQ(config.deployments.at(0).command_template,
            (Words{"serve", "--token={{HF_TOKEN}}"}));
  EXPECT_EQ(config.deployments.at(0).parameters, Words{"--home={{ HF_HOME }}"});
}

TEST(Config, PlaceholderWithSpacesStaysOneWord) {
  const Config config = parse(
      "deployments:\n  - name: a\n    backend: custom\n"
      "    run_command: serve --port {{ port }} --host={{ worker_ip }}\n");
  EXPECT_EQ(config.deployments.at(0).command_template,
            (Words{"serve", "--port", "{{ port }}", "--host={{ worker_ip }}"}));
}

TEST(Config, ReadsCustomDeployment) {
  const Config config = parse(R"(deployments:
  - name: stub
    backend: custom
    run_command: ./stub_backend --port {{port}} --name "{{model_name}}"
    image_name: local/stub:1
    health_check_path: /health
    model_path: /models/stub
    backend_parameters: [--delay-ms=5]
    env: {LOG: debug}
    idle_timeout: 0
    startup_timeout: 30s
    replicas: 2
    worker: local
)");
  const Deployment& deployment = config.deployments.at(0);
  EXPECT_EQ(deployment.name, "stub");
  EXPECT_EQ(deployment.backend, "custom");
  EXPECT_EQ(deployment.resolved_version, "");
  EXPECT_EQ(deployment.command_template,
            (Words{"./stub_backend", "--port", "{{port}}", "--name",
                   "{{model_name}}"}));
  EXPECT_EQ(deployment.image_name, "local/stub:1");
  EXPECT_EQ(deployment.health_check_path, "/health");
  EXPECT_EQ(deployment.model_path, "/models/stub");
  EXPECT_EQ(deployment.parameters, Words{"--delay-ms=5"});
  EXPECT_EQ(deployment.effective_env, (Env{{"LOG", "debug"}}));
  EXPECT_EQ(deployment.framework, "");
  EXPECT_EQ(deployment.idle_timeout, Duration::zero());
  EXPECT_EQ(deployment.startup_timeout, 30s);
  EXPECT_EQ(deployment.replicas, 2);
  EXPECT_EQ(deployment.worker, "local");
  EXPECT_EQ(deployment.location.line, 2);
  EXPECT_EQ(deployment.location.column, 5);
}

TEST(Config, CustomDeploymentDefaults) {
  const Config config = parse(
      "deployments:\n  - name: a\n    backend: custom\n"
      "    run_command: serve\n");
  const Deployment& deployment = config.deployments.at(0);
  EXPECT_EQ(deployment.health_check_path, "/v1/models");
  EXPECT_EQ(deployment.idle_timeout, 15min);
  EXPECT_EQ(deployment.startup_timeout, 10min);
  EXPECT_EQ(deployment.replicas, 1);
  EXPECT_TRUE(deployment.parameters.empty());
  EXPECT_TRUE(deployment.effective_env.empty());
}

TEST(Config, LoadsTensorRtExample) {
  const std::filesystem::path example =
      std::filesystem::path(MODELGATE_SOURCE_DIR) / "examples" /
      "tensorrt-llm.yaml";

  const Config config = load_config(example);

  ASSERT_EQ(config.backends.size(), 1u);
  const Backend& backend = config.backends[0];
  EXPECT_EQ(backend.backend_name, "TensorRT-LLM");
  EXPECT_EQ(backend.default_version, "1.2.0rc0");
  EXPECT_EQ(backend.health_check_path, "/v1/models");
  EXPECT_EQ(backend.default_run_command,
            "trtllm-serve {{model_path}} --port {{port}}");
  EXPECT_EQ(backend.default_backend_param, Words{"--max_batch_size=8"});
  ASSERT_EQ(backend.version_configs.count("1.2.0rc0"), 1u);
  const VersionConfig& version = backend.version_configs.at("1.2.0rc0");
  EXPECT_EQ(version.image_name, "nvcr.io/nvidia/tensorrt-llm/release:1.2.0rc0");
  EXPECT_EQ(version.run_command, "trtllm-serve {{model_path}} --port {{port}}");
  EXPECT_EQ(version.custom_framework, "cuda");
  EXPECT_TRUE(config.deployments.empty());
}

TEST(Config, TensorRtExampleServesDeployment) {
  const std::string example =
      read_text(std::filesystem::path(MODELGATE_SOURCE_DIR) / "examples" /
                "tensorrt-llm.yaml");
  ASSERT_FALSE(example.empty());

  const Config config = parse(example +
                              "workers:\n  - name: dgx\n"
                              "    frameworks: [cuda]\n"
                              "deployments:\n  - name: llama-3-8b\n"
                              "    backend: TensorRT-LLM\n"
                              "    model_path: /models/llama-3-8b\n");

  const Deployment& deployment = config.deployments.at(0);
  EXPECT_EQ(deployment.resolved_version, "1.2.0rc0");
  EXPECT_EQ(deployment.command_template,
            (Words{"trtllm-serve", "{{model_path}}", "--port", "{{port}}"}));
  EXPECT_EQ(deployment.parameters, Words{"--max_batch_size=8"});
  EXPECT_EQ(deployment.framework, "cuda");
  EXPECT_EQ(deployment.image_name,
            "nvcr.io/nvidia/tensorrt-llm/release:1.2.0rc0");
}

TEST(Config, AcceptsAnyPrintableModelName) {
  const Words names = {"Qwen/Qwen2.5-7B-Instruct",
                       "llama3:8b-q4_K_M",
                       "gpt-4o.mini",
                       "模型-中文",
                       "name with spaces",
                       "emoji-🦙"};
  std::string yaml = "deployments:\n";
  for (const std::string& name : names) {
    yaml += "  - name: \"" + name +
            "\"\n    backend: custom\n    run_command: serve\n";
  }

  const Config config = parse(yaml);

  ASSERT_EQ(config.deployments.size(), names.size());
  for (const std::string& name : names) {
    const Deployment* deployment = config.find_deployment(name);
    ASSERT_NE(deployment, nullptr) << name;
    EXPECT_EQ(deployment->name, name);
  }
  EXPECT_EQ(config.find_deployment("Qwen"), nullptr);
}

TEST(Config, NullValuesCountAsNotSet) {
  const Config config = parse(
      "backends:\n  - backend_name: b\n    description:\n"
      "    default_version: ~\n    default_run_command: serve\n"
      "    version_configs:\n      \"1\":\n"
      "deployments:\n  - name: a\n    backend: b\n    worker: null\n");
  EXPECT_EQ(config.backends.at(0).description, "");
  EXPECT_FALSE(config.backends.at(0).default_version.has_value());
  EXPECT_EQ(config.deployments.at(0).resolved_version, "1");
  EXPECT_EQ(config.deployments.at(0).worker, "");
}

TEST(Config, ParsesDurations) {
  const std::map<std::string, Duration> valid = {{"0", Duration::zero()},
                                                 {"30", 30s},
                                                 {"250ms", 250ms},
                                                 {"30s", 30s},
                                                 {"5m", 5min},
                                                 {"1h", 1h},
                                                 {"1h30m", 90min},
                                                 {"1m30s", 90s},
                                                 {"2s500ms", 2500ms},
                                                 {"0ms", Duration::zero()},
                                                 {"1h0m0s1ms", 1h + 1ms}};
  for (const auto& [text, expected] : valid) {
    EXPECT_EQ(parse_duration(text), expected) << text;
  }

  const Words invalid = {"",
                         "-1",
                         "1.5s",
                         "s",
                         "10 s",
                         "1d",
                         "30S",
                         "1s1m",
                         "1s1s",
                         "1m1h",
                         "ms",
                         "1h ",
                         "99999999999999999999",
                         "9999999999999999h"};
  for (const std::string& text : invalid) {
    EXPECT_EQ(parse_duration(text), std::nullopt) << text;
  }
}

TEST(Config, ParsesSizes) {
  const std::map<std::string, std::size_t> valid = {
      {"0", 0},          {"1024", 1024},    {"10B", 10},
      {"8KB", 8000},     {"2MB", 2000000},  {"1GB", 1000000000},
      {"64KiB", 65536},  {"8MiB", 8388608}, {"2GiB", 2147483648},
      {"8 MiB", 8388608}};
  for (const auto& [text, expected] : valid) {
    EXPECT_EQ(parse_size(text), expected) << text;
  }

  const Words invalid = {"",
                         "-1",
                         "1.5MB",
                         "MiB",
                         "8mib",
                         "8M",
                         "8  MiB",
                         "8MiB ",
                         " 8",
                         "8TB",
                         "99999999999999999999",
                         "99999999999GiB"};
  for (const std::string& text : invalid) {
    EXPECT_EQ(parse_size(text), std::nullopt) << text;
  }
}

TEST(Config, ComparesVersions) {
  // Each pair is in ascending order.
  const std::vector<std::pair<std::string, std::string>> ascending = {
      {"1.9", "1.10"},
      {"1.2", "1.2.1"},
      {"0.9", "0.10rc1"},
      {"1.2.0", "1.2.0rc0"},
      {"1.2.0rc0", "1.2.0rc1"},
      {"v1", "v2"},
      {"01", "1"},
      {"9", "10"},
      {"1.0-a", "1.0-b"},
      {"99999999999999999999", "100000000000000000000"}};
  for (const auto& [lower, higher] : ascending) {
    EXPECT_LT(compare_versions(lower, higher), 0) << lower << " < " << higher;
    EXPECT_GT(compare_versions(higher, lower), 0) << higher << " > " << lower;
  }
  EXPECT_EQ(compare_versions("1.2.0", "1.2.0"), 0);
  EXPECT_EQ(compare_versions("", ""), 0);
  EXPECT_LT(compare_versions("", "1"), 0);
}

}  // namespace
}  // namespace modelgate::config
