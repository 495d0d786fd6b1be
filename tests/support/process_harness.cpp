#include "tests/support/process_harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

extern char** environ;

namespace modelgate::testing {

namespace beast = boost::beast;
namespace http = beast::http;

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "modelgate-test-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("mkdtemp failed");
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::uint16_t reserve_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

std::uint16_t random_port_base(int count) {
  static std::mt19937 random{std::random_device{}()};
  std::uniform_int_distribution<int> pick(21000, 29999 - count);
  return static_cast<std::uint16_t>(pick(random));
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition()) {
      return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(10ms);
  }
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << text;
}

std::vector<std::string> read_lines(const std::filesystem::path& path) {
  std::vector<std::string> lines;
  std::ifstream file(path);
  for (std::string line; std::getline(file, line);) {
    if (!line.empty()) {
      lines.push_back(line);
    }
  }
  return lines;
}

bool process_alive(pid_t pid) {
  if (::kill(pid, 0) != 0) {
    return false;
  }
  // A zombie still accepts signal 0; read its state.
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  std::size_t close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] != 'Z';
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv,
                           const std::filesystem::path& output_file)
    : output_file_(output_file) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, output_file.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);

  std::vector<std::string> strings = argv;
  std::vector<char*> pointers;
  for (std::string& text : strings) {
    pointers.push_back(text.data());
  }
  pointers.push_back(nullptr);

  int error = ::posix_spawn(&pid_, pointers[0], &actions, nullptr, pointers.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) {
    throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(error));
  }
}

ChildProcess::~ChildProcess() {
  if (!reaped_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

void ChildProcess::signal(int signal_number) { ::kill(pid_, signal_number); }

std::optional<int> ChildProcess::wait_exit(std::chrono::milliseconds timeout) {
  int status = 0;
  bool exited = wait_until(
      [&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, timeout);
  if (!exited) {
    return std::nullopt;
  }
  reaped_ = true;
  return status;
}

std::string HttpResponse::header(const std::string& name) const {
  auto found = headers.find(name);
  return found == headers.end() ? std::string() : found->second;
}

HttpResponse http_request(std::uint16_t port, const std::string& method,
                          const std::string& target, const std::string& body,
                          const std::map<std::string, std::string>& headers,
                          std::chrono::seconds timeout) {
  asio::io_context io_context;
  asio::ip::tcp::socket socket(io_context);
  socket.connect({asio::ip::make_address("127.0.0.1"), port});

  // A receive timeout makes a hung gateway fail the test instead of
  // blocking it.
  timeval limit{static_cast<time_t>(timeout.count()), 0};
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);

  http::request<http::string_body> request(http::string_to_verb(method), target, 11);
  request.set(http::field::host, "127.0.0.1:" + std::to_string(port));
  request.set(http::field::content_type, "application/json");
  for (const auto& [name, value] : headers) {
    request.set(name, value);
  }
  request.body() = body;
  request.prepare_payload();
  http::write(socket, request);

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  http::read(socket, buffer, parser);

  HttpResponse response;
  response.status = parser.get().result_int();
  for (const auto& field : parser.get()) {
    std::string name(field.name_string());
    for (char& c : name) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    response.headers[name] = std::string(field.value());
  }
  response.body = parser.get().body();
  return response;
}

std::string gateway_binary() { return MODELGATE_BIN; }
std::string stub_binary() { return MODELGATE_STUB_BIN; }

namespace {

void replace_all(std::string& text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

}  // namespace

GatewayProcess::GatewayProcess(const TempDir& dir, std::string config_yaml,
                               const std::vector<std::string>& extra_args)
    : dir_(dir.path()), port_(reserve_port()), admin_port_(reserve_port()) {
  std::uint16_t base = random_port_base(40);
  uses_admin_port_ = config_yaml.find("{{ADMIN_PORT}}") != std::string::npos;
  replace_all(config_yaml, "{{GATEWAY_PORT}}", std::to_string(port_));
  replace_all(config_yaml, "{{ADMIN_PORT}}", std::to_string(admin_port_));
  replace_all(config_yaml, "{{STUB}}", stub_binary());
  replace_all(config_yaml, "{{DIR}}", dir_.string());
  replace_all(config_yaml, "{{PORTS}}", std::to_string(base) + "-" + std::to_string(base + 39));

  std::filesystem::path config = dir_ / "config.yaml";
  write_file(config, config_yaml);
  std::vector<std::string> argv{gateway_binary(), "--config", config.string(), "--log-level",
                                "debug"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  process_ = std::make_unique<ChildProcess>(argv, dir_ / "gateway.log");
}

bool GatewayProcess::wait_ready(std::chrono::milliseconds timeout) {
  return wait_until(
      [&] {
        try {
          std::uint16_t port = uses_admin_port_ ? admin_port_ : port_;
          return http_request(port, "GET", "/health", {}, {}, 2s).status == 200;
        } catch (const std::exception&) {
          return false;
        }
      },
      timeout);
}

std::string two_model_config(const std::string& gateway_extra, const std::string& sections,
                             const std::string& chat_extra, const std::string& chat_parameters) {
  return "gateway:\n"
         "  listen: 127.0.0.1:{{GATEWAY_PORT}}\n"
         "  log_dir: {{DIR}}/logs\n" +
         gateway_extra + sections +
         "workers:\n"
         "  - name: local\n"
         "    ports: {{PORTS}}\n"
         "backends:\n"
         "  - backend_name: stub\n"
         "    health_check_path: /health\n"
         "    default_run_command: >-\n"
         "      {{STUB}} --port {{port}} --model {{model_name}} --record {{DIR}}/starts.txt\n"
         "deployments:\n"
         "  - name: chat\n"
         "    backend: stub\n"
         "    backend_parameters: " + chat_parameters + "\n" +
         chat_extra +
         "  - name: embed\n"
         "    backend: stub\n";
}

std::string GatewayProcess::metrics() {
  std::uint16_t port = uses_admin_port_ ? admin_port_ : port_;
  return http_request(port, "GET", "/metrics", {}, {}, 10s).body;
}

double metric_value(const std::string& exposition, const std::string& series) {
  std::size_t start = 0;
  while (start < exposition.size()) {
    std::size_t end = exposition.find('\n', start);
    if (end == std::string::npos) {
      end = exposition.size();
    }
    std::string_view line(exposition.data() + start, end - start);
    if (line.size() > series.size() && line.starts_with(series) && line[series.size()] == ' ') {
      return std::stod(std::string(line.substr(series.size() + 1)));
    }
    start = end + 1;
  }
  return -1;
}

CommandResult run_command(const std::vector<std::string>& argv, const std::filesystem::path& dir,
                          std::chrono::milliseconds timeout) {
  static int counter = 0;
  std::filesystem::path output = dir / ("command-" + std::to_string(++counter) + ".out");
  ChildProcess child(argv, output);
  std::optional<int> status = child.wait_exit(timeout);
  CommandResult result;
  if (status && WIFEXITED(*status)) {
    result.exit_code = WEXITSTATUS(*status);
  }
  result.output = read_file(output);
  return result;
}

HttpResponse GatewayProcess::chat(const std::string& model, const std::string& extra_fields) {
  std::string body = R"({"model":")" + model + R"(","messages":[{"role":"user","content":"hi"}])" +
                     (extra_fields.empty() ? "" : "," + extra_fields) + "}";
  return http_request(port_, "POST", "/v1/chat/completions", body);
}

}  // namespace modelgate::testing
