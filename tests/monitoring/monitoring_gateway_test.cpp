// Metrics, logs and the admin API of the gateway as a real process in front
// of real stub backends on loopback.

#include "tests/support/process_harness.hpp"

#include <sys/wait.h>

#include <atomic>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/monitoring/metrics_text.hpp"

namespace modelgate::testing {
namespace {

using json = nlohmann::json;

// One deployment `demo` of the stub backend. `parameters` are extra stub
// options, `deployment_extra`, `backend_extra` and `gateway_extra` extra
// YAML keys.
std::string demo_config(const std::string& parameters = "[]",
                        const std::string& deployment_extra = "",
                        const std::string& backend_extra = "",
                        const std::string& gateway_extra = "") {
  return "gateway:\n"
         "  listen: 127.0.0.1:{{GATEWAY_PORT}}\n"
         "  log_dir: {{DIR}}/logs\n" +
         gateway_extra +
         "workers:\n"
         "  - name: local\n"
         "    runtime: process\n"
         "    ports: {{PORTS}}\n"
         "backends:\n"
         "  - backend_name: stub\n"
         "    default_run_command: >-\n"
         "      {{STUB}} --port {{port}} --model {{model_name}} --record {{DIR}}/starts.txt\n" +
         backend_extra +
         "deployments:\n"
         "  - name: demo\n"
         "    backend: stub\n"
         "    backend_parameters: " + parameters + "\n" +
         deployment_extra;
}

class MonitoringTest : public ::testing::Test {
 protected:
  void start(const std::string& config, const std::vector<std::string>& extra_args = {}) {
    gateway_ = std::make_unique<GatewayProcess>(dir_, config, extra_args);
    ASSERT_TRUE(gateway_->wait_ready()) << "gateway did not answer /health:\n" << gateway_->log();
  }

  std::vector<Sample> scrape() {
    HttpResponse response = http_request(gateway_->port(), "GET", "/metrics");
    EXPECT_EQ(response.status, 200);
    return parse_metrics_text(response.body);
  }

  std::optional<double> metric(const std::string& name,
                               const std::map<std::string, std::string>& labels) {
    return find_sample(scrape(), name, labels);
  }

  json admin_instances() {
    HttpResponse response = http_request(gateway_->port(), "GET", "/admin/instances");
    EXPECT_EQ(response.status, 200) << response.body;
    EXPECT_EQ(response.header("content-type"), "application/json");
    return json::parse(response.body);
  }

  std::filesystem::path record() const { return dir_.path() / "starts.txt"; }

  void TearDown() override {
    if (HasFailure() && gateway_) {
      std::cerr << "gateway log:\n" << gateway_->log();
    }
  }

  TempDir dir_;
  std::unique_ptr<GatewayProcess> gateway_;
};

TEST_F(MonitoringTest, ColdStartShowsInMetrics) {
  start(demo_config(R"(["--startup-delay", "300"])"));
  ASSERT_EQ(gateway_->chat("demo").status, 200);
  std::vector<Sample> samples = scrape();

  EXPECT_EQ(find_sample(samples, "modelgate_cold_starts_total",
                        {{"deployment", "demo"}, {"result", "success"}}),
            1.0);
  EXPECT_GE(*find_sample(samples, "modelgate_cold_start_duration_seconds_sum",
                         {{"deployment", "demo"}, {"result", "success"}}),
            0.3);
  EXPECT_EQ(find_sample(samples, "modelgate_instances", {{"deployment", "demo"}, {"state", "running"}}),
            1.0);
  EXPECT_EQ(find_sample(samples, "modelgate_instances", {{"deployment", "demo"}, {"state", "starting"}}),
            0.0);
  EXPECT_EQ(find_sample(samples, "modelgate_requests_total",
                        {{"deployment", "demo"}, {"endpoint", "chat_completions"}, {"code", "200"}}),
            1.0);
  EXPECT_GE(*find_sample(samples, "modelgate_time_to_first_byte_seconds_sum",
                         {{"deployment", "demo"}, {"endpoint", "chat_completions"}}),
            0.3)
      << "time to first byte includes the time held";
  EXPECT_EQ(find_sample(samples, "modelgate_hold_duration_seconds_count", {{"deployment", "demo"}}),
            1.0);
  EXPECT_EQ(find_sample(samples, "modelgate_held_requests", {{"deployment", "demo"}}), 0.0);
  EXPECT_EQ(find_sample(samples, "modelgate_upstream_idle_connections", {}), 1.0)
      << "the backend connection goes back to the pool";
  EXPECT_GE(*find_sample(samples, "modelgate_client_connections", {}), 1.0);
}

TEST_F(MonitoringTest, CountsRequestsOfBothIoThreads) {
  // Two I/O threads take new connections in turn, so the requests run on
  // both while scrapes on either thread read the counts.
  start(demo_config("[]", "", "", "  io_threads: 2\n"));
  ASSERT_NE(gateway_->log().find("2 I/O thread(s)"), std::string::npos) << gateway_->log();
  ASSERT_EQ(gateway_->chat("demo").status, 200);

  constexpr int kClients = 4;
  constexpr int kRequestsPerClient = 5;
  std::atomic<int> succeeded{0};
  std::vector<std::thread> clients;
  for (int index = 0; index < kClients; ++index) {
    clients.emplace_back([&] {
      for (int request = 0; request < kRequestsPerClient; ++request) {
        try {
          if (gateway_->chat("demo").status == 200) {
            ++succeeded;
          }
        } catch (const std::exception&) {
          // Counted as missing below.
        }
      }
    });
  }
  for (int scrape_index = 0; scrape_index < 10; ++scrape_index) {
    scrape();
  }
  for (std::thread& client : clients) {
    client.join();
  }
  ASSERT_EQ(succeeded.load(), kClients * kRequestsPerClient);

  // A request is counted after its response is written, on the thread that
  // served it, so the count can trail the responses for a moment.
  const double expected = 1 + kClients * kRequestsPerClient;
  std::optional<double> counted;
  EXPECT_TRUE(wait_until(
      [&] {
        counted = metric("modelgate_requests_total",
                         {{"deployment", "demo"}, {"endpoint", "chat_completions"}, {"code", "200"}});
        return counted == expected;
      },
      5s))
      << "modelgate_requests_total is " << counted.value_or(-1) << ", expected " << expected;
}

TEST_F(MonitoringTest, UnknownModelRecordedWithEmptyDeployment) {
  start(demo_config());
  ASSERT_EQ(gateway_->chat("no-such-model").status, 404);

  EXPECT_EQ(metric("modelgate_requests_total",
                   {{"deployment", ""}, {"endpoint", "chat_completions"}, {"code", "404"}}),
            1.0);
  EXPECT_EQ(metric("modelgate_requests_total", {{"deployment", "no-such-model"}}), std::nullopt)
      << "a model name from a client must not become a label value";
}

TEST_F(MonitoringTest, FailedStartShowsErrorInstance) {
  start(demo_config(R"(["--exit-on-start", "3"])"));
  ASSERT_EQ(gateway_->chat("demo").status, 502);
  std::vector<Sample> samples = scrape();

  EXPECT_EQ(find_sample(samples, "modelgate_cold_starts_total",
                        {{"deployment", "demo"}, {"result", "failed"}}),
            1.0);
  EXPECT_EQ(find_sample(samples, "modelgate_instances", {{"deployment", "demo"}, {"state", "error"}}),
            1.0);
  EXPECT_EQ(find_sample(samples, "modelgate_requests_total",
                        {{"deployment", "demo"}, {"endpoint", "chat_completions"}, {"code", "502"}}),
            1.0);

  json instances = admin_instances();
  ASSERT_EQ(instances.size(), 1u) << instances.dump();
  EXPECT_EQ(instances[0]["state"], "error");
  EXPECT_NE(instances[0]["error"].get<std::string>().find("exit code 3"), std::string::npos)
      << instances[0].dump();
  EXPECT_EQ(instances[0]["last_log_lines"].back(), "stub backend: exiting with code 3 as requested");

  std::string log = gateway_->log();
  EXPECT_NE(log.find("failed to start: backend exited with exit code 3"), std::string::npos);
  EXPECT_NE(log.find("last log lines:\nstub backend: exiting with code 3 as requested"),
            std::string::npos);
}

TEST_F(MonitoringTest, SuccessfulStartClearsErrorInstance) {
  // The backend fails to start until the file `ready` exists.
  write_file(dir_.path() / "start.sh",
             "if [ ! -e \"$1/ready\" ]; then echo 'not ready yet'; exit 3; fi\n"
             "shift; exec \"$@\"\n");
  start("gateway:\n"
        "  listen: 127.0.0.1:{{GATEWAY_PORT}}\n"
        "  log_dir: {{DIR}}/logs\n"
        "workers:\n"
        "  - name: local\n"
        "    ports: {{PORTS}}\n"
        "backends:\n"
        "  - backend_name: stub\n"
        "    default_run_command: >-\n"
        "      /bin/sh {{DIR}}/start.sh {{DIR}} {{STUB}} --port {{port}} --model {{model_name}}\n"
        "deployments:\n"
        "  - name: demo\n"
        "    backend: stub\n");
  ASSERT_EQ(gateway_->chat("demo").status, 502);
  EXPECT_EQ(metric("modelgate_instances", {{"deployment", "demo"}, {"state", "error"}}), 1.0);

  write_file(dir_.path() / "ready", "");
  ASSERT_EQ(gateway_->chat("demo").status, 200);
  std::vector<Sample> samples = scrape();
  EXPECT_EQ(find_sample(samples, "modelgate_instances", {{"deployment", "demo"}, {"state", "error"}}),
            0.0);
  EXPECT_EQ(find_sample(samples, "modelgate_instances", {{"deployment", "demo"}, {"state", "running"}}),
            1.0);
  EXPECT_EQ(find_sample(samples, "modelgate_cold_starts_total",
                        {{"deployment", "demo"}, {"result", "failed"}}),
            1.0);
  EXPECT_EQ(find_sample(samples, "modelgate_cold_starts_total",
                        {{"deployment", "demo"}, {"result", "success"}}),
            1.0);

  json instances = admin_instances();
  ASSERT_EQ(instances.size(), 1u) << instances.dump();
  EXPECT_EQ(instances[0]["state"], "running");
}

TEST_F(MonitoringTest, AdminInstancesListsRunningInstance) {
  start(demo_config());
  ASSERT_EQ(gateway_->chat("demo").status, 200);
  std::vector<std::string> started = read_lines(record());
  ASSERT_EQ(started.size(), 1u);
  std::string pid = started[0].substr(0, started[0].find(' '));
  std::string port = started[0].substr(started[0].find(' ') + 1);

  json instances = admin_instances();
  ASSERT_EQ(instances.size(), 1u) << instances.dump();
  const json& instance = instances[0];
  EXPECT_TRUE(instance["id"].get<std::string>().starts_with("demo-")) << instance.dump();
  EXPECT_EQ(instance["deployment"], "demo");
  EXPECT_EQ(instance["state"], "running");
  EXPECT_EQ(instance["endpoint"], "127.0.0.1:" + port);
  EXPECT_EQ(instance["runtime_id"], "pid " + pid);
  EXPECT_EQ(instance["in_flight"], 0);
  EXPECT_GT(instance["uptime_seconds"].get<double>(), 0.0);
  EXPECT_TRUE(instance["error"].is_null());
  EXPECT_TRUE(instance["last_log_lines"].is_array());

  HttpResponse post = http_request(gateway_->port(), "POST", "/admin/instances", "{}");
  EXPECT_EQ(post.status, 405);
}

TEST_F(MonitoringTest, IdleStopCountedAndLogged) {
  start(demo_config("[]", "    idle_timeout: 300ms\n"));
  ASSERT_EQ(gateway_->chat("demo").status, 200);

  bool stopped = wait_until([&] {
    return metric("modelgate_idle_stops_total", {{"deployment", "demo"}}) == 1.0 &&
           metric("modelgate_instances", {{"deployment", "demo"}, {"state", "running"}}) == 0.0 &&
           metric("modelgate_instances", {{"deployment", "demo"}, {"state", "stopping"}}) == 0.0;
  });
  ASSERT_TRUE(stopped) << "the idle instance was not counted as stopped";
  EXPECT_TRUE(admin_instances().empty());

  // Every lifecycle step has its line, with the instance id.
  std::string log = gateway_->log();
  for (const char* step : {"' starting on 127.0.0.1:", "started as pid ", "' healthy after ",
                           "stopping: idle for ", "stopped after "}) {
    EXPECT_NE(log.find(step), std::string::npos) << "missing lifecycle line with: " << step;
  }
}

TEST_F(MonitoringTest, StreamedChunksCounted) {
  start(demo_config(R"(["--token-interval", "20"])"));
  HttpResponse response = gateway_->chat("demo", R"("stream":true,"max_tokens":5)");
  ASSERT_EQ(response.status, 200);

  EXPECT_GE(*metric("modelgate_stream_chunks_total", {{"deployment", "demo"}}), 2.0);
}

TEST_F(MonitoringTest, Backend5xxCountedAsUpstreamError) {
  // The health path passes at once while the stub still returns 503.
  start(demo_config(R"(["--startup-delay", "60000"])", "",
                    "    health_check_path: /stub/stats\n"));
  HttpResponse response = gateway_->chat("demo");
  ASSERT_EQ(response.status, 503) << response.body;

  std::vector<Sample> samples = scrape();
  EXPECT_EQ(find_sample(samples, "modelgate_upstream_errors_total",
                        {{"deployment", "demo"}, {"kind", "backend_5xx"}}),
            1.0);
  EXPECT_EQ(find_sample(samples, "modelgate_requests_total",
                        {{"deployment", "demo"}, {"endpoint", "chat_completions"}, {"code", "503"}}),
            1.0);
}

TEST_F(MonitoringTest, JsonLogHasOneObjectPerLine) {
  start(demo_config(), {"--log-format", "json"});
  HttpResponse response = gateway_->chat("demo");
  ASSERT_EQ(response.status, 200);
  std::string request_id = response.header("x-request-id");

  std::optional<json> access;
  bool healthy_logged = false;
  ASSERT_TRUE(wait_until([&] {
    access.reset();
    for (const std::string& text : read_lines(gateway_->dir() / "gateway.log")) {
      json line = json::parse(text);  // throws, and fails the test, on a non-JSON line
      if (line["logger"] == "access" && line["request_id"] == request_id) {
        access = line;
      }
      if (line["logger"] == "launcher" &&
          line["message"].get<std::string>().find("healthy after") != std::string::npos) {
        healthy_logged = true;
      }
    }
    return access.has_value();
  })) << "no access line for request " << request_id;

  EXPECT_TRUE(healthy_logged);
  EXPECT_EQ((*access)["level"], "info");
  EXPECT_EQ((*access)["deployment"], "demo");
  EXPECT_EQ((*access)["endpoint"], "chat_completions");
  EXPECT_TRUE((*access)["instance"].get<std::string>().starts_with("demo-"));
  EXPECT_EQ((*access)["status"], 200);
  EXPECT_GT((*access)["bytes"].get<int>(), 0);
  EXPECT_GT((*access)["duration_ms"].get<double>(), 0.0);
  EXPECT_GT((*access)["first_byte_ms"].get<double>(), 0.0);
  EXPECT_GT((*access)["held_ms"].get<double>(), 0.0);
  EXPECT_TRUE((*access)["time"].get<std::string>().ends_with("Z"));
}

TEST_F(MonitoringTest, InvalidLogFormatRejected) {
  ChildProcess process({gateway_binary(), "--config", "/nonexistent.yaml", "--log-format", "xml"},
                       dir_.path() / "out.txt");
  std::optional<int> status = process.wait_exit(std::chrono::seconds(10));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(WEXITSTATUS(*status), 64);
  EXPECT_NE(process.output().find("invalid --log-format 'xml'; use text or json"),
            std::string::npos)
      << process.output();
}

TEST_F(MonitoringTest, SecretOptionValueNotLogged) {
  // The stub does not know --hf-token, so the start fails and is logged.
  start(demo_config(R"(["--hf-token", "s3cr3t-value"])"));
  ASSERT_EQ(gateway_->chat("demo").status, 502);

  ASSERT_TRUE(wait_until([&] { return gateway_->log().find("failed to start") != std::string::npos; }));
  std::string log = gateway_->log();
  EXPECT_NE(log.find("--hf-token <redacted>"), std::string::npos);
  EXPECT_EQ(log.find("s3cr3t-value"), std::string::npos) << "the secret appears in the log";
}

}  // namespace
}  // namespace modelgate::testing
