// API keys, admin access and TLS, with the gateway and the stub backend as
// real processes on loopback. TLS clients are the Debian packages' curl and
// openssl command-line tools.

#include "tests/support/process_harness.hpp"

#include <signal.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace modelgate::testing {
namespace {

using json = nlohmann::json;

const std::string kCurl = "/usr/bin/curl";
const std::string kOpenssl = "/usr/bin/openssl";
const std::string kChatBody = R"({"model":"chat","messages":[{"role":"user","content":"hi"}]})";

const std::string kKeys =
    "auth:\n"
    "  api_keys:\n"
    "    - {name: everything, key: sk-all-models}\n"
    "    - {name: embed-only, key: sk-embed-only, deployments: [embed]}\n"
    "  admin_keys:\n"
    "    - {name: ops, key: admin-secret}\n";

std::map<std::string, std::string> bearer(const std::string& key) {
  return {{"Authorization", "Bearer " + key}};
}

class SecurityTest : public ::testing::Test {
 protected:
  void start(const std::string& config) {
    gateway_ = std::make_unique<GatewayProcess>(dir_, config);
    ASSERT_TRUE(gateway_->wait_ready()) << "gateway did not answer /health:\n" << gateway_->log();
  }

  HttpResponse post_chat(const std::map<std::string, std::string>& headers,
                         const std::string& body = kChatBody) {
    return http_request(gateway_->port(), "POST", "/v1/chat/completions", body, headers);
  }

  std::size_t starts() const { return read_lines(dir_.path() / "starts.txt").size(); }

  void TearDown() override {
    if (HasFailure() && gateway_) {
      std::cerr << "gateway log:\n" << gateway_->log();
    }
  }

  TempDir dir_;
  std::unique_ptr<GatewayProcess> gateway_;
};

TEST_F(SecurityTest, MissingKeyGets401) {
  start(two_model_config("", kKeys));

  HttpResponse response = post_chat({});
  EXPECT_EQ(response.status, 401) << response.body;
  EXPECT_EQ(response.header("www-authenticate"), "Bearer realm=\"modelgate\"");
  json body = json::parse(response.body);
  EXPECT_EQ(body["error"]["code"], "invalid_api_key");
  EXPECT_EQ(body["error"]["type"], "invalid_request_error");
  EXPECT_NE(body["error"]["message"].get<std::string>().find("Authorization: Bearer"),
            std::string::npos);
  EXPECT_EQ(starts(), 0u) << "no backend may start for an unauthenticated request";
  EXPECT_EQ(metric_value(gateway_->metrics(),
                         R"(modelgate_auth_failures_total{reason="missing_key"})"),
            1);
}

TEST_F(SecurityTest, WrongKeyGets401AndIsNotLogged) {
  start(two_model_config("", kKeys));

  HttpResponse response = post_chat(bearer("sk-all-modelz"));
  EXPECT_EQ(response.status, 401) << response.body;
  response = post_chat({{"x-api-key", "sk-wrong"}});
  EXPECT_EQ(response.status, 401) << response.body;
  response = post_chat({{"Authorization", "Basic c2stYWxsLW1vZGVscw=="}});
  EXPECT_EQ(response.status, 401) << "only the Bearer scheme carries a key";
  EXPECT_EQ(starts(), 0u);
  EXPECT_EQ(metric_value(gateway_->metrics(),
                         R"(modelgate_auth_failures_total{reason="invalid_key"})"),
            2);
  EXPECT_EQ(gateway_->log().find("sk-all-modelz"), std::string::npos);
  EXPECT_EQ(gateway_->log().find("sk-wrong"), std::string::npos);
}

TEST_F(SecurityTest, BearerAndXApiKeyBothAccepted) {
  start(two_model_config("", kKeys));

  HttpResponse response = post_chat(bearer("sk-all-models"));
  EXPECT_EQ(response.status, 200) << response.body;
  response = post_chat({{"authorization", "bearer  sk-all-models "}});
  EXPECT_EQ(response.status, 200) << "the scheme is case-insensitive: " << response.body;
  response = post_chat({{"x-api-key", "sk-all-models"}});
  EXPECT_EQ(response.status, 200) << response.body;

  // The access log names the key, never the key itself.
  EXPECT_NE(gateway_->log().find("key=everything"), std::string::npos);
  EXPECT_EQ(gateway_->log().find("sk-all-models"), std::string::npos);
}

TEST_F(SecurityTest, KeyNotAllowedForModelGets403) {
  start(two_model_config("", kKeys));

  HttpResponse response = post_chat(bearer("sk-embed-only"));
  EXPECT_EQ(response.status, 403) << response.body;
  json body = json::parse(response.body);
  EXPECT_EQ(body["error"]["code"], "model_not_allowed");
  EXPECT_EQ(body["error"]["type"], "permission_error");
  EXPECT_EQ(starts(), 0u);
  EXPECT_EQ(metric_value(gateway_->metrics(),
                         R"(modelgate_auth_failures_total{reason="model_denied"})"),
            1);

  response = http_request(gateway_->port(), "POST", "/v1/embeddings",
                          R"({"model":"embed","input":"hello"})", bearer("sk-embed-only"));
  EXPECT_EQ(response.status, 200) << response.body;
}

TEST_F(SecurityTest, ForbiddenStatus404HidesModel) {
  start(two_model_config("", kKeys + "  forbidden_status: 404\n"));

  HttpResponse denied = post_chat(bearer("sk-embed-only"));
  HttpResponse unknown = post_chat(
      bearer("sk-embed-only"), R"({"model":"nothing","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(denied.status, 404) << denied.body;
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  EXPECT_EQ(json::parse(denied.body)["error"]["code"], "model_not_found");

  HttpResponse model = http_request(gateway_->port(), "GET", "/v1/models/chat", {},
                                    bearer("sk-embed-only"));
  EXPECT_EQ(model.status, 404) << model.body;
}

TEST_F(SecurityTest, ModelListShowsAllowedModelsOnly) {
  start(two_model_config("", kKeys));

  HttpResponse response =
      http_request(gateway_->port(), "GET", "/v1/models", {}, bearer("sk-embed-only"));
  ASSERT_EQ(response.status, 200) << response.body;
  json data = json::parse(response.body)["data"];
  ASSERT_EQ(data.size(), 1u) << response.body;
  EXPECT_EQ(data[0]["id"], "embed");

  response = http_request(gateway_->port(), "GET", "/v1/models", {}, bearer("sk-all-models"));
  EXPECT_EQ(json::parse(response.body)["data"].size(), 2u) << response.body;

  response = http_request(gateway_->port(), "GET", "/v1/models", {});
  EXPECT_EQ(response.status, 401) << response.body;
}

TEST_F(SecurityTest, ClientKeyIsNotForwarded) {
  // The backend accepts only the client's own key, so a 200 would mean that
  // the gateway forwarded it.
  start(two_model_config("", kKeys, "", R"(["--api-key", "sk-all-models"])"));

  HttpResponse response = post_chat(bearer("sk-all-models"));
  EXPECT_EQ(response.status, 401) << "the backend received the client's key: " << response.body;
  response = post_chat({{"x-api-key", "sk-all-models"}});
  EXPECT_EQ(response.status, 401) << "the backend received the client's key: " << response.body;
}

TEST_F(SecurityTest, DeploymentSendsItsOwnUpstreamKey) {
  start(two_model_config("", kKeys, "    upstream_api_key: backend-only-key\n",
                        R"(["--api-key", "backend-only-key"])"));

  HttpResponse response = post_chat(bearer("sk-all-models"));
  EXPECT_EQ(response.status, 200) << response.body;
}

TEST_F(SecurityTest, NoKeysConfiguredNeedsNoKey) {
  start(two_model_config("", ""));

  EXPECT_EQ(post_chat({}).status, 200);
  EXPECT_EQ(post_chat(bearer("anything")).status, 200);
}

TEST_F(SecurityTest, AdminEndpointsNeedAdminKey) {
  start(two_model_config("", kKeys));

  HttpResponse response = http_request(gateway_->port(), "GET", "/admin/instances");
  EXPECT_EQ(response.status, 401) << response.body;
  response = http_request(gateway_->port(), "GET", "/admin/instances", {},
                          bearer("sk-all-models"));
  EXPECT_EQ(response.status, 401) << "a client key must not open admin endpoints";
  response = http_request(gateway_->port(), "GET", "/admin/instances", {},
                          bearer("admin-secret"));
  EXPECT_EQ(response.status, 200) << response.body;

  // /metrics stays open for scrapers unless protect_metrics is set.
  response = http_request(gateway_->port(), "GET", "/metrics");
  EXPECT_EQ(response.status, 200);
}

TEST_F(SecurityTest, ProtectMetricsNeedsAdminKey) {
  start(two_model_config("", kKeys + "  protect_metrics: true\n"));

  EXPECT_EQ(http_request(gateway_->port(), "GET", "/metrics").status, 401);
  HttpResponse response =
      http_request(gateway_->port(), "GET", "/metrics", {}, bearer("admin-secret"));
  EXPECT_EQ(response.status, 200);
  EXPECT_NE(response.body.find("modelgate_requests_total"), std::string::npos);
}

TEST_F(SecurityTest, PublicListenerWithoutAdminKeysRefusesAdmin) {
  // The listener on every interface is reachable from other machines, so
  // without admin keys the admin endpoints stay closed, also to loopback
  // clients, which may be a local proxy's.
  std::string config = two_model_config("", "");
  config.replace(config.find("127.0.0.1:{{GATEWAY_PORT}}"), 9, "0.0.0.0");
  start(config);

  HttpResponse response = http_request(gateway_->port(), "GET", "/admin/instances");
  EXPECT_EQ(response.status, 403) << response.body;
  EXPECT_EQ(json::parse(response.body)["error"]["code"], "admin_key_required");
}

TEST_F(SecurityTest, AdminListenerServesAdminEndpointsOnly) {
  start(two_model_config("  admin_listen: 127.0.0.1:{{ADMIN_PORT}}\n", ""));

  // The client listener no longer serves them.
  EXPECT_EQ(http_request(gateway_->port(), "GET", "/admin/instances").status, 404);
  EXPECT_EQ(http_request(gateway_->port(), "GET", "/metrics").status, 404);
  EXPECT_EQ(post_chat({}).status, 200);

  std::uint16_t admin = gateway_->admin_port();
  HttpResponse instances = http_request(admin, "GET", "/admin/instances");
  ASSERT_EQ(instances.status, 200) << instances.body;
  EXPECT_EQ(json::parse(instances.body).size(), 1u) << instances.body;
  EXPECT_EQ(http_request(admin, "GET", "/metrics").status, 200);
  EXPECT_EQ(http_request(admin, "GET", "/health").status, 200);
  HttpResponse chat = http_request(admin, "POST", "/v1/chat/completions", kChatBody);
  EXPECT_EQ(chat.status, 404) << "the admin listener must not proxy model requests";
}

TEST_F(SecurityTest, AdminListenerWithKeysNeedsAdminKey) {
  start(two_model_config("  admin_listen: 127.0.0.1:{{ADMIN_PORT}}\n", kKeys));

  std::uint16_t admin = gateway_->admin_port();
  EXPECT_EQ(http_request(admin, "GET", "/admin/instances").status, 401);
  EXPECT_EQ(http_request(admin, "GET", "/metrics").status, 401);
  EXPECT_EQ(http_request(admin, "GET", "/admin/instances", {}, bearer("admin-secret")).status,
            200);
}

// TLS: a certificate made with the openssl tool for 127.0.0.1.
struct Certificate {
  std::filesystem::path cert;
  std::filesystem::path key;
};

Certificate make_certificate(const TempDir& dir, const std::string& name) {
  Certificate made{dir.path() / (name + ".crt"), dir.path() / (name + ".key")};
  CommandResult result = run_command(
      {kOpenssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
       "-nodes", "-days", "2", "-subj", "/CN=" + name, "-addext",
       "subjectAltName=IP:127.0.0.1", "-keyout", made.key.string(), "-out", made.cert.string()},
      dir.path());
  EXPECT_EQ(result.exit_code, 0) << result.output;
  return made;
}

class TlsTest : public SecurityTest {
 protected:
  void SetUp() override {
    first_ = make_certificate(dir_, "modelgate-test-first");
    second_ = make_certificate(dir_, "modelgate-test-second");
    // The live files that the config names; a reload reads them again.
    std::filesystem::copy_file(first_.cert, dir_.path() / "live.crt");
    std::filesystem::copy_file(first_.key, dir_.path() / "live.key");
    write_file(dir_.path() / "trusted.pem",
               read_file(first_.cert) + read_file(second_.cert));
  }

  std::string tls_config(const std::string& tls_extra = "") {
    return two_model_config("  admin_listen: 127.0.0.1:{{ADMIN_PORT}}\n"
                           "  tls:\n"
                           "    cert_file: live.crt\n"
                           "    key_file: live.key\n" +
                               tls_extra,
                           "");
  }

  // Runs curl over HTTPS against the client listener. The output contains
  // the TLS details (-v) and the body.
  CommandResult curl(const std::string& target, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv{kCurl, "-sS", "-v", "--max-time", "20", "--cacert",
                                  (dir_.path() / "trusted.pem").string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back("https://127.0.0.1:" + std::to_string(gateway_->port()) + target);
    return run_command(argv, dir_.path());
  }

  CommandResult curl_chat(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv{"-H", "Content-Type: application/json", "-d", kChatBody};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return curl("/v1/chat/completions", argv);
  }

  Certificate first_;
  Certificate second_;
};

TEST_F(TlsTest, ServesHttpsWithTls13) {
  start(tls_config());

  CommandResult result = curl_chat();
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("TLSv1.3"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("CN=modelgate-test-first"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("\"finish_reason\":\"stop\""), std::string::npos)
      << result.output;
}

TEST_F(TlsTest, AcceptsTls12ByDefault) {
  start(tls_config());

  CommandResult result = curl_chat({"--tls-max", "1.2"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("TLSv1.2"), std::string::npos) << result.output;
}

TEST_F(TlsTest, MinVersion13RejectsTls12) {
  start(tls_config("    min_version: \"1.3\"\n"));

  CommandResult result = curl_chat({"--tls-max", "1.2"});
  EXPECT_NE(result.exit_code, 0) << result.output;
  EXPECT_TRUE(wait_until([&] {
    return metric_value(gateway_->metrics(), "modelgate_tls_handshake_failures_total") >= 1;
  })) << gateway_->metrics();
  EXPECT_EQ(curl_chat().exit_code, 0);
}

TEST_F(TlsTest, PlainHttpOnTlsPortIsClosed) {
  start(tls_config());

  EXPECT_ANY_THROW(http_request(gateway_->port(), "GET", "/health", {}, {}, 5s));
  EXPECT_TRUE(wait_until([&] {
    return metric_value(gateway_->metrics(), "modelgate_tls_handshake_failures_total") >= 1;
  })) << gateway_->metrics();
  EXPECT_EQ(curl("/health").exit_code, 0) << "the gateway must keep serving after a bad client";
}

TEST_F(TlsTest, SighupReloadsCertificateWithoutDroppingStreams) {
  // A stream of 100 events, 30 ms apart, runs across the reload.
  std::string config = tls_config();
  config.replace(config.find("backend_parameters: []"), 22,
                 R"(backend_parameters: ["--token-interval", "30", "--tokens", "100"])");
  start(config);

  std::filesystem::path stream_output = dir_.path() / "stream.out";
  ChildProcess stream(
      {kCurl, "-sS", "-N", "--max-time", "30", "--cacert", (dir_.path() / "trusted.pem").string(),
       "-H", "Content-Type: application/json", "-d",
       R"({"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]})",
       "https://127.0.0.1:" + std::to_string(gateway_->port()) + "/v1/chat/completions"},
      stream_output);
  ASSERT_TRUE(wait_until([&] { return read_file(stream_output).find("data:") != std::string::npos; }))
      << read_file(stream_output);

  std::filesystem::copy_file(second_.cert, dir_.path() / "live.crt",
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(second_.key, dir_.path() / "live.key",
                             std::filesystem::copy_options::overwrite_existing);
  gateway_->process().signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] {
    return metric_value(gateway_->metrics(), R"(modelgate_tls_reloads_total{result="success"})") ==
           1;
  })) << gateway_->log();

  CommandResult after = curl("/health");
  ASSERT_EQ(after.exit_code, 0) << after.output;
  EXPECT_NE(after.output.find("CN=modelgate-test-second"), std::string::npos) << after.output;

  std::optional<int> status = stream.wait_exit(30s);
  ASSERT_TRUE(status.has_value()) << "the stream did not end";
  ASSERT_TRUE(WIFEXITED(*status)) << read_file(stream_output);
  EXPECT_EQ(WEXITSTATUS(*status), 0) << read_file(stream_output);
  EXPECT_NE(read_file(stream_output).find("data: [DONE]"), std::string::npos)
      << "the stream that began before the reload was cut: " << read_file(stream_output);
  EXPECT_TRUE(process_alive(gateway_->process().pid()));
}

TEST_F(TlsTest, FailedReloadKeepsCurrentCertificate) {
  start(tls_config());

  write_file(dir_.path() / "live.key", "not a key\n");
  gateway_->process().signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] {
    return metric_value(gateway_->metrics(), R"(modelgate_tls_reloads_total{result="failure"})") ==
           1;
  })) << gateway_->log();
  EXPECT_NE(gateway_->log().find("keeping the previous certificate"), std::string::npos);

  CommandResult result = curl("/health");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("CN=modelgate-test-first"), std::string::npos) << result.output;
}

TEST_F(TlsTest, MissingCertificateFailsStartup) {
  std::filesystem::remove(dir_.path() / "live.crt");
  GatewayProcess gateway(dir_, tls_config());
  std::optional<int> status = gateway.process().wait_exit(10s);
  ASSERT_TRUE(status.has_value()) << "the gateway kept running without its certificate";
  ASSERT_TRUE(WIFEXITED(*status)) << gateway.log();
  EXPECT_EQ(WEXITSTATUS(*status), 1) << gateway.log();
  EXPECT_NE(gateway.log().find("cannot load the TLS certificate chain " +
                               (dir_.path() / "live.crt").string()),
            std::string::npos)
      << gateway.log();
}

}  // namespace
}  // namespace modelgate::testing
