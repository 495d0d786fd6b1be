#include "tests/docker/podman_engine.hpp"

#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace modelgate::testing {

namespace beast = boost::beast;
namespace http = beast::http;
using json = nlohmann::json;

namespace {

// crun rejects hybrid cgroup layouts whose unified hierarchy contains
// controllers, so runc runs the containers. Podman's default nofile limit
// (1048576) is above what an unprivileged hard limit allows on many
// machines, and a failed setrlimit fails the container, so the limits are
// set to values below the usual hard limits.
std::string containers_conf(const std::filesystem::path& dir) {
  return "[containers]\n"
         "default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n"
         "[engine]\n"
         "runtime = \"runc\"\n"
         "cgroup_manager = \"cgroupfs\"\n"
         "events_logger = \"file\"\n"
         "events_logfile_path = \"" + (dir / "events.log").string() + "\"\n"
         "tmp_dir = \"" + (dir / "libpod-tmp").string() + "\"\n";
}

// The shared libraries `binary` loads, from ldd's output.
std::vector<std::string> shared_libraries(const std::string& binary) {
  std::string output;
  int code = run_command({find_program("ldd"), binary}, output);
  if (code != 0) {
    throw std::runtime_error("ldd " + binary + " failed: " + output);
  }
  std::vector<std::string> libraries;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    std::size_t slash = line.find('/');
    if (slash == std::string::npos) {
      continue;  // linux-vdso.so.1 has no file
    }
    std::size_t end = line.find_first_of(" (", slash);
    libraries.push_back(line.substr(slash, end - slash));
  }
  return libraries;
}

void copy_into(const std::filesystem::path& root, const std::filesystem::path& file) {
  std::filesystem::path target = root / file.relative_path();
  std::filesystem::create_directories(target.parent_path());
  std::filesystem::copy_file(std::filesystem::canonical(file), target,
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::permissions(target, std::filesystem::status(file).permissions());
}

}  // namespace

std::string find_program(const std::string& name) {
  const char* path = ::getenv("PATH");
  std::istringstream directories(path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
  for (std::string directory; std::getline(directories, directory, ':');) {
    std::filesystem::path candidate = std::filesystem::path(directory) / name;
    if (::access(candidate.c_str(), X_OK) == 0) {
      return candidate.string();
    }
  }
  return {};
}

int run_command(const std::vector<std::string>& argv, std::string& output,
                std::chrono::milliseconds timeout) {
  char pattern[] = "/tmp/modelgate-command-XXXXXX";
  int fd = ::mkstemp(pattern);
  if (fd < 0) {
    throw std::runtime_error("mkstemp failed");
  }
  ::close(fd);

  int code = -1;
  {
    ChildProcess child(argv, pattern);
    std::optional<int> status = child.wait_exit(timeout);
    if (status && WIFEXITED(*status)) {
      code = WEXITSTATUS(*status);
    }
    output = child.output();
  }
  std::filesystem::remove(pattern);
  return code;
}

PodmanEngine::PodmanEngine() : socket_path_(dir_.path() / "podman.sock") {
  podman_binary_ = find_program("podman");
  for (const char* program : {"podman", "runc", "tar", "ldd"}) {
    if (find_program(program).empty()) {
      throw std::runtime_error(std::string(program) +
                               " not found in PATH; install the Debian packages podman, runc "
                               "and busybox-static (bash .ci/run installs them)");
    }
  }
  if (::access("/bin/busybox", X_OK) != 0) {
    throw std::runtime_error("/bin/busybox not found; install the Debian package busybox-static");
  }

  // The private containers.conf reaches every podman command through the
  // environment, which the children inherit.
  write_file(dir_.path() / "containers.conf", containers_conf(dir_.path()));
  ::setenv("CONTAINERS_CONF", (dir_.path() / "containers.conf").c_str(), 1);

  service_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{podman_binary_, "--root", (dir_.path() / "storage").string(),
                               "--runroot", (dir_.path() / "run").string(), "system", "service",
                               "--time=0", endpoint()},
      dir_.path() / "service.log");

  // The engine is ready once GET /_ping returns 200.
  bool ready = wait_until(
      [&] {
        try {
          return request("GET", "/_ping").status == 200;
        } catch (const std::exception&) {
          return false;
        }
      },
      20s);
  if (!ready) {
    throw std::runtime_error("podman system service did not answer GET /_ping on " + endpoint() +
                             " within 20 s:\n" + service_->output());
  }
  build_image();
}

PodmanEngine::~PodmanEngine() {
  if (service_) {
    try {
      podman({"rm", "--all", "--force", "--time", "0"});
    } catch (const std::exception& error) {
      std::cerr << "podman rm --all failed: " << error.what() << "\n";
    }
    service_->signal(SIGTERM);
    if (!service_->wait_exit(10s)) {
      std::cerr << "podman system service (pid " << service_->pid()
                << ") did not exit within 10 s of SIGTERM; killing it\n";
    }
    service_.reset();
  }
  unmount_storage();
}

std::string PodmanEngine::podman(const std::vector<std::string>& arguments) const {
  std::vector<std::string> argv = {podman_binary_, "--root", (dir_.path() / "storage").string(),
                                   "--runroot", (dir_.path() / "run").string()};
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  std::string output;
  int code = run_command(argv, output, 120s);
  if (code != 0) {
    std::string command;
    for (const std::string& word : argv) {
      command += word + " ";
    }
    throw std::runtime_error(command + "failed with exit code " + std::to_string(code) + ":\n" +
                             output);
  }
  return output;
}

void PodmanEngine::build_image() {
  // A root filesystem: busybox and its applets, /etc/passwd, and the stub
  // backend with the shared libraries it loads.
  std::filesystem::path root = dir_.path() / "rootfs";
  std::filesystem::create_directories(root / "bin");
  std::filesystem::create_directories(root / "etc");
  std::filesystem::create_directories(root / "tmp");
  copy_into(root, "/bin/busybox");

  std::string applets;
  if (run_command({"/bin/busybox", "--list"}, applets) != 0) {
    throw std::runtime_error("/bin/busybox --list failed: " + applets);
  }
  std::istringstream names(applets);
  for (std::string name; std::getline(names, name);) {
    if (!name.empty() && name != "busybox") {
      std::filesystem::create_symlink("busybox", root / "bin" / name);
    }
  }
  write_file(root / "etc" / "passwd", "root:x:0:0:root:/root:/bin/sh\n");

  std::filesystem::path stub = root / "usr/local/bin/modelgate-stub";
  std::filesystem::create_directories(stub.parent_path());
  std::filesystem::copy_file(stub_binary(), stub);
  for (const std::string& library : shared_libraries(stub_binary())) {
    copy_into(root, library);
  }

  std::string output;
  std::filesystem::path tarball = dir_.path() / "rootfs.tar";
  int code = run_command({find_program("tar"), "-C", root.string(), "-cf", tarball.string(), "."},
                         output);
  if (code != 0) {
    throw std::runtime_error("tar of the root filesystem failed: " + output);
  }
  podman({"import", "--change", "CMD [\"/bin/sh\"]", tarball.string(), kImage});
}

void PodmanEngine::unmount_storage() const {
  // The overlay driver bind-mounts its directory onto itself, and a
  // container that outlived `rm --all` keeps its layers mounted.
  std::vector<std::string> mounts;
  std::ifstream table("/proc/self/mounts");
  std::string prefix = dir_.path().string() + "/";
  for (std::string line; std::getline(table, line);) {
    std::istringstream fields(line);
    std::string device;
    std::string mount_point;
    fields >> device >> mount_point;
    if (mount_point.rfind(prefix, 0) == 0) {
      mounts.push_back(mount_point);
    }
  }
  std::sort(mounts.rbegin(), mounts.rend());
  for (const std::string& mount_point : mounts) {
    ::umount2(mount_point.c_str(), MNT_DETACH);
  }
}

EngineReply PodmanEngine::request(const std::string& method, const std::string& target,
                                  const std::string& body) const {
  asio::io_context io_context;
  asio::local::stream_protocol::socket socket(io_context);
  socket.connect(asio::local::stream_protocol::endpoint(socket_path_.string()));
  timeval limit{30, 0};
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);

  http::request<http::string_body> message(http::string_to_verb(method), "/v1.41" + target, 11);
  message.set(http::field::host, "docker");
  if (!body.empty()) {
    message.set(http::field::content_type, "application/json");
  }
  message.body() = body;
  message.prepare_payload();
  http::write(socket, message);

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  http::read(socket, buffer, parser);
  return {static_cast<int>(parser.get().result_int()), parser.get().body()};
}

std::vector<json> PodmanEngine::containers(const std::string& key, const std::string& value) const {
  json filters = {{"label", json::array({key + "=" + value})}};
  std::string encoded;
  for (unsigned char c : filters.dump()) {
    if (std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_') {
      encoded += static_cast<char>(c);
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      encoded += '%';
      encoded += kHex[c >> 4];
      encoded += kHex[c & 0xf];
    }
  }
  EngineReply reply = request("GET", "/containers/json?all=1&filters=" + encoded);
  if (reply.status != 200) {
    throw std::runtime_error("GET /containers/json answered " + std::to_string(reply.status) +
                             ": " + reply.body);
  }
  return json::parse(reply.body).get<std::vector<json>>();
}

}  // namespace modelgate::testing
