#pragma once

// Test support for running the gateway and the stub backend as real
// processes on loopback: temporary directories, free ports, a child process
// with its output in a file, a blocking HTTP client, and polling with a
// deadline.

#include "routing/asio_prelude.hpp"

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace modelgate::testing {

using namespace std::chrono_literals;

// A directory under /tmp removed with its contents at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Returns a loopback port that was free a moment ago (bind port 0, close).
std::uint16_t reserve_port();

// Returns the first port of `count` consecutive ports, chosen at random in
// 21000-29999, below the kernel's ephemeral range.
std::uint16_t random_port_base(int count);

// Polls `condition` every 10 ms until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = 10s);

std::string read_file(const std::filesystem::path& path);
void write_file(const std::filesystem::path& path, const std::string& text);
std::vector<std::string> read_lines(const std::filesystem::path& path);

bool process_alive(pid_t pid);

// A child process whose stdout and stderr go to `output_file`.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& output_file);
  ~ChildProcess();  // SIGKILL if still running

  pid_t pid() const { return pid_; }
  void signal(int signal_number);
  // Waits for the exit; returns the raw wait status, or nothing on timeout.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  std::string output() const { return read_file(output_file_); }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::filesystem::path output_file_;
};

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string header(const std::string& name) const;
};

// Sends one request on a new connection and reads the whole response.
// Throws std::runtime_error when the connection fails or times out.
HttpResponse http_request(std::uint16_t port, const std::string& method,
                          const std::string& target, const std::string& body = {},
                          const std::map<std::string, std::string>& headers = {},
                          std::chrono::seconds timeout = 60s);

// Returns the value of the series `series` (name and labels exactly as
// exposed, such as `modelgate_limit_hits_total{limit="hold_timeout"}`) in a
// Prometheus text exposition, or -1 when the series is absent.
double metric_value(const std::string& exposition, const std::string& series);

struct CommandResult {
  int exit_code = -1;  // -1: killed by a signal or timed out
  std::string output;  // stdout and stderr
};

// Runs a command to its end, with its output in a file under `dir`.
CommandResult run_command(const std::vector<std::string>& argv, const std::filesystem::path& dir,
                          std::chrono::milliseconds timeout = 30s);

// A config for GatewayProcess with two deployments of the stub backend,
// `chat` and `embed`, health-checked on /health. `gateway_extra` adds lines
// under `gateway:`, `sections` whole sections such as `auth:`, `chat_extra`
// keys of the chat deployment, and `chat_parameters` its backend_parameters.
std::string two_model_config(const std::string& gateway_extra, const std::string& sections = "",
                             const std::string& chat_extra = "",
                             const std::string& chat_parameters = "[]");

// A running gateway on a config written by the test.
class GatewayProcess {
 public:
  // Writes `config_yaml` to DIR/config.yaml and starts the gateway on it.
  // The text may use {{GATEWAY_PORT}}, {{ADMIN_PORT}}, {{STUB}}, {{DIR}} and
  // {{PORTS}} (a free range of 40 ports), which are replaced first.
  // `extra_args` are added to the gateway's command line. With
  // {{ADMIN_PORT}} in the config, wait_ready() polls the admin listener.
  GatewayProcess(const TempDir& dir, std::string config_yaml,
                 const std::vector<std::string>& extra_args = {});

  // Waits until GET /health answers 200. Returns false on timeout.
  bool wait_ready(std::chrono::milliseconds timeout = 10s);

  std::uint16_t port() const { return port_; }
  std::uint16_t admin_port() const { return admin_port_; }
  // GET /metrics from the admin listener if there is one, else from the
  // client listener.
  std::string metrics();
  ChildProcess& process() { return *process_; }
  std::string log() const { return process_->output(); }
  const std::filesystem::path& dir() const { return dir_; }

  HttpResponse chat(const std::string& model, const std::string& extra_fields = {});

 private:
  std::filesystem::path dir_;
  std::uint16_t port_;
  std::uint16_t admin_port_;
  bool uses_admin_port_ = false;
  std::unique_ptr<ChildProcess> process_;
};

std::string gateway_binary();
std::string stub_binary();

}  // namespace modelgate::testing
