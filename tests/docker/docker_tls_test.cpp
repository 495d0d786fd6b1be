// A docker worker that reaches its engine over TCP, with TLS and a client
// certificate or without TLS. The tests start Podman on a unix socket, so
// socat listens on a loopback port and relays to that socket. For TLS it
// terminates TLS and verifies the client certificate. The certificates are
// made with the openssl tool.

#include "tests/docker/podman_engine.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace modelgate::testing {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

void run_openssl(const std::vector<std::string>& arguments) {
  std::vector<std::string> argv = {find_program("openssl")};
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  std::string output;
  if (run_command(argv, output) != 0) {
    throw std::runtime_error("openssl " + arguments.front() + " failed: " + output);
  }
}

// Creates NAME.key and NAME.pem signed by `ca` (self-signed when empty),
// with the X.509 extension lines `extensions`.
void make_certificate(const fs::path& dir, const std::string& name, const std::string& subject,
                      const std::string& ca, const std::string& extensions) {
  fs::path key = dir / (name + ".key");
  fs::path certificate = dir / (name + ".pem");
  std::vector<std::string> new_key = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                                      "-nodes", "-keyout", key.string(), "-subj", subject};
  if (ca.empty()) {
    std::vector<std::string> arguments = {"req", "-x509", "-days", "1", "-out", certificate.string()};
    arguments.insert(arguments.end(), new_key.begin(), new_key.end());
    run_openssl(arguments);
    return;
  }

  fs::path request = dir / (name + ".csr");
  fs::path extension_file = dir / (name + ".ext");
  write_file(extension_file, extensions);
  std::vector<std::string> arguments = {"req", "-new", "-out", request.string()};
  arguments.insert(arguments.end(), new_key.begin(), new_key.end());
  run_openssl(arguments);
  run_openssl({"x509", "-req", "-in", request.string(), "-CA", (dir / (ca + ".pem")).string(),
               "-CAkey", (dir / (ca + ".key")).string(), "-CAcreateserial", "-days", "1",
               "-out", certificate.string(), "-extfile", extension_file.string()});
}

bool port_accepts(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  bool connected = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return connected;
}

class DockerTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* program : {"openssl", "socat"}) {
      ASSERT_FALSE(find_program(program).empty())
          << program << " not found in PATH; install the Debian packages openssl and socat";
    }
    try {
      engine_ = std::make_unique<PodmanEngine>();
      fs::path dir = certificates_.path();
      make_certificate(dir, "ca", "/CN=modelgate test CA", "", "");
      make_certificate(dir, "other-ca", "/CN=unrelated CA", "", "");
      make_certificate(dir, "server", "/CN=127.0.0.1", "ca", "subjectAltName=IP:127.0.0.1\n");
      make_certificate(dir, "client", "/CN=modelgate", "ca", "extendedKeyUsage=clientAuth\n");
    } catch (const std::exception& error) {
      FAIL() << error.what();
    }

    // socat requires and verifies a client certificate from `ca`.
    port_ = reserve_port();
    fs::path dir = certificates_.path();
    relay_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{
            find_program("socat"),
            "OPENSSL-LISTEN:" + std::to_string(port_) + ",bind=127.0.0.1,reuseaddr,fork,cert=" +
                (dir / "server.pem").string() + ",key=" + (dir / "server.key").string() +
                ",cafile=" + (dir / "ca.pem").string() + ",verify=1",
            "UNIX-CONNECT:" + engine_->socket_path().string()},
        certificates_.path() / "socat.log");
    ASSERT_TRUE(wait_until([&] { return port_accepts(port_); }))
        << "socat did not listen on port " << port_ << ":\n" << relay_->output();
  }

  void TearDown() override {
    if (HasFailure() && gateway_) {
      std::cerr << "gateway log:\n" << gateway_->log() << "socat log:\n" << relay_->output();
    }
    gateway_.reset();
    relay_.reset();
    engine_.reset();
  }

  // A gateway whose docker worker uses the relay with `tls` keys.
  void start(const std::string& tls) {
    std::string config = "gateway:\n"
                         "  listen: 127.0.0.1:{{GATEWAY_PORT}}\n"
                         "  log_dir: {{DIR}}/logs\n"
                         "  id: " + gateway_id_ + "\n"
                         "workers:\n"
                         "  - name: remote\n"
                         "    runtime: docker\n"
                         "    endpoint: " + endpoint() + "\n" + tls +
                         "    ports: {{PORTS}}\n"
                         "deployments:\n"
                         "  - name: demo\n"
                         "    backend: custom\n"
                         "    image_name: " + PodmanEngine::kImage + "\n"
                         "    run_command: /usr/local/bin/modelgate-stub --port {{port}}\n";
    gateway_ = std::make_unique<GatewayProcess>(dir_, config);
    ASSERT_TRUE(gateway_->wait_ready()) << gateway_->log();
  }

  std::string endpoint() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  std::string file(const std::string& name) const { return (certificates_.path() / name).string(); }

  std::unique_ptr<PodmanEngine> engine_;
  TempDir certificates_;
  TempDir dir_;
  std::uint16_t port_ = 0;
  std::unique_ptr<ChildProcess> relay_;
  std::string gateway_id_ = "tls-test-" + std::to_string(::getpid());
  std::unique_ptr<GatewayProcess> gateway_;
};

TEST_F(DockerTlsTest, ClientCertificateReachesEngine) {
  start("    tls_ca: " + file("ca.pem") + "\n    tls_cert: " + file("client.pem") +
        "\n    tls_key: " + file("client.key") + "\n");

  HttpResponse response = gateway_->chat("demo");

  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(engine_->containers("modelgate.gateway", gateway_id_).size(), 1u);
}

TEST_F(DockerTlsTest, UnknownServerCaFailsStart) {
  start("    tls_ca: " + file("other-ca.pem") + "\n    tls_cert: " + file("client.pem") +
        "\n    tls_key: " + file("client.key") + "\n");

  HttpResponse response = gateway_->chat("demo");

  EXPECT_EQ(response.status, 502) << response.body;
  std::string message = json::parse(response.body)["error"]["message"];
  EXPECT_NE(message.find("TLS handshake with the container engine at " + endpoint() + " failed"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("certificate verify failed"), std::string::npos) << message;
}

TEST_F(DockerTlsTest, MissingClientCertificateFailsStart) {
  start("    tls_ca: " + file("ca.pem") + "\n");

  HttpResponse response = gateway_->chat("demo");

  EXPECT_EQ(response.status, 502) << response.body;
  std::string message = json::parse(response.body)["error"]["message"];
  EXPECT_NE(message.find(endpoint()), std::string::npos) << message;
  EXPECT_TRUE(engine_->containers("modelgate.gateway", gateway_id_).empty());
}

TEST_F(DockerTlsTest, PlainTcpEndpointServes) {
  // A second relay without TLS on another loopback port.
  std::uint16_t plain_port = reserve_port();
  ChildProcess plain_relay(
      {find_program("socat"),
       "TCP-LISTEN:" + std::to_string(plain_port) + ",bind=127.0.0.1,reuseaddr,fork",
       "UNIX-CONNECT:" + engine_->socket_path().string()},
      certificates_.path() / "socat-plain.log");
  ASSERT_TRUE(wait_until([&] { return port_accepts(plain_port); })) << plain_relay.output();
  port_ = plain_port;

  start("");
  HttpResponse response = gateway_->chat("demo");

  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(engine_->containers("modelgate.gateway", gateway_id_).size(), 1u);
  gateway_.reset();  // before the relay it uses goes away
}

TEST_F(DockerTlsTest, UnreadableCaFileStopsStartup) {
  std::string config = "gateway:\n"
                       "  listen: 127.0.0.1:{{GATEWAY_PORT}}\n"
                       "  log_dir: {{DIR}}/logs\n"
                       "workers:\n"
                       "  - name: remote\n"
                       "    runtime: docker\n"
                       "    endpoint: " + endpoint() + "\n"
                       "    tls_ca: " + file("absent.pem") + "\n";
  GatewayProcess gateway(dir_, config);

  std::optional<int> status = gateway.process().wait_exit(10s);

  ASSERT_TRUE(status.has_value()) << "the gateway kept running:\n" << gateway.log();
  EXPECT_NE(*status, 0);
  EXPECT_NE(gateway.log().find("cannot load the CA certificate " + file("absent.pem")),
            std::string::npos)
      << gateway.log();
}

}  // namespace
}  // namespace modelgate::testing
