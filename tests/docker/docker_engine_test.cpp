// The gateway with a `runtime: docker` worker against a real Podman engine
// (podman system service), with the stub backend in a locally built image.

#include "tests/docker/podman_engine.hpp"
#include "tests/support/redis_server.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>
#include <thread>

#include <boost/asio/local/stream_protocol.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace modelgate::testing {
namespace {

using json = nlohmann::json;

void replace_all(std::string& text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos;
       at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

std::string random_gateway_id() {
  static std::mt19937 random{std::random_device{}()};
  return "test-" + std::to_string(::getpid()) + "-" + std::to_string(random() % 100000);
}

// Deployments `demo` and `other` of the stub image on one docker worker.
// {{ID}}, {{ENDPOINT}}, {{IMAGE}}, {{WORKER_EXTRA}} and {{DEPLOYMENT_EXTRA}}
// are replaced by the test; the harness replaces the rest.
const std::string kDockerConfig = R"(gateway:
  listen: 127.0.0.1:{{GATEWAY_PORT}}
  log_dir: {{DIR}}/logs
  id: {{ID}}
  stop_grace_period: 5s
workers:
  - name: podman
    runtime: docker
    endpoint: {{ENDPOINT}}
    ports: {{PORTS}}
{{WORKER_EXTRA}}
backends:
  - backend_name: stub
    default_run_command: /usr/local/bin/modelgate-stub --port {{port}} --model {{model_name}}
    default_env: {STUB_GREETING: hello}
    version_configs:
      "1": {image_name: "{{IMAGE}}"}
deployments:
  - name: demo
    backend: stub
{{DEPLOYMENT_EXTRA}}
  - name: other
    backend: stub
)";

class DockerEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    try {
      engine_ = std::make_unique<PodmanEngine>();
    } catch (const std::exception& error) {
      FAIL() << "cannot run a Podman engine here: " << error.what();
    }
  }

  void TearDown() override {
    if (HasFailure() && gateway_) {
      std::cerr << "gateway log:\n" << gateway_->log();
    }
    gateway_.reset();
    engine_.reset();
  }

  std::string config(const std::string& deployment_extra = "",
                     const std::string& worker_extra = "",
                     const std::string& image = PodmanEngine::kImage) const {
    std::string text = kDockerConfig;
    replace_all(text, "{{ID}}", gateway_id_);
    replace_all(text, "{{ENDPOINT}}", engine_->endpoint());
    replace_all(text, "{{IMAGE}}", image);
    replace_all(text, "{{WORKER_EXTRA}}\n", worker_extra);
    replace_all(text, "{{DEPLOYMENT_EXTRA}}\n", deployment_extra);
    return text;
  }

  void start(const std::string& config_text) {
    gateway_ = std::make_unique<GatewayProcess>(dir_, config_text);
    ASSERT_TRUE(gateway_->wait_ready()) << "gateway did not answer /health:\n" << gateway_->log();
  }

  std::vector<json> own_containers() const {
    return engine_->containers("modelgate.gateway", gateway_id_);
  }

  // Waits until the engine lists `count` containers of this gateway.
  bool wait_for_containers(std::size_t count, std::chrono::milliseconds timeout = 20s) const {
    return wait_until([&] { return own_containers().size() == count; }, timeout);
  }

  std::unique_ptr<PodmanEngine> engine_;
  TempDir dir_;
  std::string gateway_id_ = random_gateway_id();
  std::unique_ptr<GatewayProcess> gateway_;
};

TEST_F(DockerEngineTest, ColdStartThroughContainerServes) {
  start(config());
  EXPECT_TRUE(own_containers().empty()) << "no container may start before the first request";

  auto began = std::chrono::steady_clock::now();
  HttpResponse response = gateway_->chat("demo");
  auto waited = std::chrono::steady_clock::now() - began;

  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(json::parse(response.body)["model"], "demo");
  auto waited_ms = std::chrono::duration_cast<std::chrono::milliseconds>(waited).count();
  RecordProperty("cold_start_ms", static_cast<int>(waited_ms));
  std::cout << "cold start through a Podman container: " << waited_ms << " ms\n";

  // One container, named after the instance and labelled for the gateway.
  std::vector<json> containers = own_containers();
  ASSERT_EQ(containers.size(), 1u);
  const json& container = containers[0];
  EXPECT_EQ(container["State"], "running");
  EXPECT_EQ(container["Labels"]["modelgate.deployment"], "demo");
  std::string instance = container["Labels"]["modelgate.instance"];
  EXPECT_EQ(container["Names"][0], "/" + instance);
  EXPECT_FALSE(std::string(container["Labels"]["modelgate.spec"]).empty());

  // The container got the rendered command, the environment and host
  // networking, and its output reached the instance log.
  EngineReply inspected = engine_->request("GET", "/containers/" + instance + "/json");
  ASSERT_EQ(inspected.status, 200) << inspected.body;
  json details = json::parse(inspected.body);
  json cmd = details["Config"]["Cmd"];
  ASSERT_GE(cmd.size(), 5u) << cmd;
  EXPECT_EQ(cmd[0], "/usr/local/bin/modelgate-stub");
  EXPECT_EQ(cmd[4], "demo");
  json env = details["Config"]["Env"];
  EXPECT_NE(std::find(env.begin(), env.end(), "STUB_GREETING=hello"), env.end()) << env;
  EXPECT_EQ(details["HostConfig"]["NetworkMode"], "host");
  std::filesystem::path log_file = dir_.path() / "logs" / (instance + ".log");
  EXPECT_TRUE(wait_until([&] { return read_file(log_file).find("listening") != std::string::npos; }))
      << "instance log " << log_file << ":\n" << read_file(log_file);

  // A second request uses the same container.
  EXPECT_EQ(gateway_->chat("demo").status, 200);
  EXPECT_EQ(own_containers().size(), 1u);
}

TEST_F(DockerEngineTest, CrashOnStartFailsHeldRequests) {
  start(config("    backend_parameters: [\"--crash-on-start\"]\n"));

  HttpResponse response = gateway_->chat("demo");

  EXPECT_EQ(response.status, 502) << response.body;
  json error = json::parse(response.body)["error"];
  EXPECT_EQ(error["code"], "backend_start_failed");
  std::string message = error["message"];
  EXPECT_NE(message.find("exited with exit code"), std::string::npos) << message;
  EXPECT_NE(message.find("crashing on start as requested"), std::string::npos) << message;
  EXPECT_TRUE(wait_for_containers(0)) << "the crashed container was not removed: "
                                      << json(own_containers()).dump();
}

TEST_F(DockerEngineTest, IdleStopRemovesContainer) {
  start(config("    idle_timeout: 1s\n"));

  ASSERT_EQ(gateway_->chat("demo").status, 200);
  ASSERT_EQ(own_containers().size(), 1u);

  EXPECT_TRUE(wait_for_containers(0)) << "the idle container was not removed: "
                                      << json(own_containers()).dump();
  EXPECT_TRUE(wait_until([&] { return gateway_->log().find("stopped after") != std::string::npos; }))
      << gateway_->log();

  // The next request starts a new container.
  EXPECT_EQ(gateway_->chat("demo").status, 200);
  EXPECT_EQ(own_containers().size(), 1u);
}

TEST_F(DockerEngineTest, SigtermRemovesEveryContainer) {
  start(config());
  ASSERT_EQ(gateway_->chat("demo").status, 200);
  ASSERT_EQ(gateway_->chat("other").status, 200);
  ASSERT_EQ(own_containers().size(), 2u);

  gateway_->process().signal(SIGTERM);
  std::optional<int> status = gateway_->process().wait_exit(30s);

  ASSERT_TRUE(status.has_value()) << "the gateway did not exit after SIGTERM";
  ASSERT_TRUE(WIFEXITED(*status)) << "wait status " << *status;
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  EXPECT_EQ(own_containers().size(), 0u)
      << "containers outlived the gateway: " << json(own_containers()).dump();
}

TEST_F(DockerEngineTest, SigtermWhileStartingRemovesContainer) {
  // The stub returns 503 for 30 s, so the instance stays STARTING.
  start(config("    backend_parameters: [\"--startup-delay\", \"30000\"]\n"));
  HttpResponse held;
  std::thread client([&] { held = gateway_->chat("demo"); });
  bool created = wait_until([&] { return own_containers().size() == 1; }, 20s);

  gateway_->process().signal(SIGTERM);
  std::optional<int> status = gateway_->process().wait_exit(30s);
  client.join();

  ASSERT_TRUE(created) << "no container was created";
  ASSERT_TRUE(status.has_value()) << "the gateway did not exit after SIGTERM";
  EXPECT_EQ(held.status, 503) << held.body;
  EXPECT_EQ(own_containers().size(), 0u)
      << "a container outlived the gateway: " << json(own_containers()).dump();
}

TEST_F(DockerEngineTest, RestartAdoptsSurvivingContainer) {
  // The ports stay the same across the restart, so that the container's
  // port lies in the new gateway's range.
  std::uint16_t base = random_port_base(40);
  std::string text = config();
  replace_all(text, "{{PORTS}}", std::to_string(base) + "-" + std::to_string(base + 39));
  start(text);
  ASSERT_EQ(gateway_->chat("demo").status, 200);
  std::vector<json> before = own_containers();
  ASSERT_EQ(before.size(), 1u);

  // SIGKILL leaves the container running.
  gateway_->process().signal(SIGKILL);
  ASSERT_TRUE(gateway_->process().wait_exit(10s).has_value());
  ASSERT_EQ(own_containers().size(), 1u) << "the container did not survive SIGKILL";

  start(text);
  HttpResponse response = gateway_->chat("demo");

  ASSERT_EQ(response.status, 200) << response.body;
  std::vector<json> after = own_containers();
  ASSERT_EQ(after.size(), 1u) << json(after).dump();
  EXPECT_EQ(after[0]["Id"], before[0]["Id"]) << "a new container was started";
  EXPECT_NE(gateway_->log().find("adopted"), std::string::npos) << gateway_->log();
}

TEST_F(DockerEngineTest, RestartWithRedisAdoptsAndPublishesContainer) {
  RedisServer redis;
  std::uint16_t base = random_port_base(40);
  std::string text = config();
  replace_all(text, "{{PORTS}}", std::to_string(base) + "-" + std::to_string(base + 39));
  replace_all(text, "  stop_grace_period: 5s\n",
              "  stop_grace_period: 5s\n"
              "  redis:\n"
              "    url: " + redis.url() + "\n"
              "    lease_ttl: 1s\n"
              "    heartbeat_interval: 300ms\n"
              "    resync_interval: 300ms\n");
  start(text);
  ASSERT_EQ(gateway_->chat("demo").status, 200);
  std::vector<json> before = own_containers();
  ASSERT_EQ(before.size(), 1u);
  std::string instance_id = before[0]["Labels"]["modelgate.instance"];
  ASSERT_FALSE(instance_id.empty()) << before[0].dump();
  auto record = [&] { return redis.command({"HGET", "modelgate:instances:demo", instance_id}); };
  ASSERT_NE(record(), "(nil)") << "the instance was not published";

  // SIGKILL leaves the container running and its route in Redis.
  gateway_->process().signal(SIGKILL);
  ASSERT_TRUE(gateway_->process().wait_exit(10s).has_value());

  start(text);
  HttpResponse response = gateway_->chat("demo");

  ASSERT_EQ(response.status, 200) << response.body;
  std::vector<json> after = own_containers();
  ASSERT_EQ(after.size(), 1u) << json(after).dump();
  EXPECT_EQ(after[0]["Id"], before[0]["Id"]) << "a new container was started";
  EXPECT_TRUE(wait_until([&] { return record().find("\"running\"") != std::string::npos; }))
      << "the adopted instance is not published as running: " << record();
  EXPECT_EQ(redis.command({"HLEN", "modelgate:instances:demo"}), "1");
}

TEST_F(DockerEngineTest, SurvivorAdoptsContainerOfKilledGateway) {
  RedisServer redis;
  // Both gateways share the engine, the worker and its port range.
  std::uint16_t base = random_port_base(40);
  auto config_for = [&](const std::string& id) {
    std::string text = config();
    replace_all(text, "{{PORTS}}", std::to_string(base) + "-" + std::to_string(base + 39));
    replace_all(text, "id: " + gateway_id_, "id: " + id);
    replace_all(text, "  stop_grace_period: 5s\n",
                "  stop_grace_period: 5s\n"
                "  redis:\n"
                "    url: " + redis.url() + "\n"
                "    lease_ttl: 1s\n"
                "    heartbeat_interval: 300ms\n"
                "    resync_interval: 300ms\n");
    return text;
  };
  std::string id_a = gateway_id_ + "-a";
  std::string id_b = gateway_id_ + "-b";
  TempDir dir_b;
  gateway_ = std::make_unique<GatewayProcess>(dir_, config_for(id_a));
  ASSERT_TRUE(gateway_->wait_ready()) << gateway_->log();
  GatewayProcess survivor(dir_b, config_for(id_b));
  ASSERT_TRUE(survivor.wait_ready()) << survivor.log();

  ASSERT_EQ(gateway_->chat("demo").status, 200);
  ASSERT_TRUE(wait_until([&] { return survivor.chat("demo").status == 200; }));
  std::vector<json> before = engine_->containers("modelgate.gateway", id_a);
  ASSERT_EQ(before.size(), 1u);
  std::string instance_id = before[0]["Labels"]["modelgate.instance"];
  auto record = [&] { return redis.command({"HGET", "modelgate:instances:demo", instance_id}); };

  // The container outlives its gateway; once the lease expired, the
  // survivor adopts it and publishes it as its own.
  gateway_->process().signal(SIGKILL);
  ASSERT_TRUE(gateway_->process().wait_exit(10s).has_value());
  EXPECT_TRUE(wait_until(
      [&] { return record().find("\"owner\":\"" + id_b + "\"") != std::string::npos; }, 10s))
      << "not adopted: " << record() << "\n" << survivor.log();
  EXPECT_NE(record().find("\"running\""), std::string::npos) << record();

  HttpResponse response = survivor.chat("demo");
  ASSERT_EQ(response.status, 200) << response.body;
  std::vector<json> after = engine_->containers("modelgate.gateway", id_a);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0]["Id"], before[0]["Id"]);
  EXPECT_TRUE(engine_->containers("modelgate.gateway", id_b).empty())
      << "the survivor started a container of its own";
  EXPECT_NE(survivor.log().find("adopted"), std::string::npos) << survivor.log();

  // Restarted, the killed gateway finds its container served by the
  // survivor: it neither adopts nor removes it, and routes to it.
  gateway_ = std::make_unique<GatewayProcess>(dir_, config_for(id_a));
  ASSERT_TRUE(gateway_->wait_ready()) << gateway_->log();
  EXPECT_TRUE(wait_until(
      [&] { return gateway_->log().find("leaving container") != std::string::npos; }, 10s))
      << gateway_->log();
  ASSERT_EQ(gateway_->chat("demo").status, 200) << gateway_->log();
  after = engine_->containers("modelgate.gateway", id_a);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0]["Id"], before[0]["Id"]);
  EXPECT_NE(record().find("\"owner\":\"" + id_b + "\""), std::string::npos) << record();
  EXPECT_EQ(redis.command({"HLEN", "modelgate:instances:demo"}), "1");

  // The adopter stops what it adopted.
  survivor.process().signal(SIGTERM);
  EXPECT_TRUE(survivor.process().wait_exit(20s).has_value());
  EXPECT_TRUE(wait_until([&] { return engine_->containers("modelgate.gateway", id_a).empty(); }))
      << "the adopted container was not removed at shutdown";
}

TEST_F(DockerEngineTest, RestartRemovesContainerOfChangedSpec) {
  std::uint16_t base = random_port_base(40);
  std::string text = config();
  replace_all(text, "{{PORTS}}", std::to_string(base) + "-" + std::to_string(base + 39));
  start(text);
  ASSERT_EQ(gateway_->chat("demo").status, 200);
  std::string old_id = own_containers().at(0)["Id"];
  gateway_->process().signal(SIGKILL);
  ASSERT_TRUE(gateway_->process().wait_exit(10s).has_value());

  // The restarted gateway gives `demo` other parameters, so the container
  // left behind no longer matches and is removed.
  std::string changed = text;
  replace_all(changed, "    backend: stub\n  - name: other",
              "    backend: stub\n    backend_parameters: [\"--tokens\", \"3\"]\n  - name: other");
  ASSERT_NE(changed, text);
  start(changed);

  EXPECT_TRUE(wait_until([&] {
    std::vector<json> containers = own_containers();
    return containers.empty();
  })) << "the container left behind was not removed: " << json(own_containers()).dump();
  EXPECT_NE(gateway_->log().find("removing container " + old_id.substr(0, 12)), std::string::npos)
      << gateway_->log();
  EXPECT_EQ(gateway_->chat("demo").status, 200);
}

TEST_F(DockerEngineTest, MissingImageWithPullNeverNamesImage) {
  start(config("    pull_policy: never\n", "", "modelgate-test/absent:1"));

  HttpResponse response = gateway_->chat("demo");

  EXPECT_EQ(response.status, 502) << response.body;
  std::string message = json::parse(response.body)["error"]["message"];
  EXPECT_NE(message.find("image 'modelgate-test/absent:1' is not present"), std::string::npos)
      << message;
  EXPECT_NE(message.find("pull_policy is never"), std::string::npos) << message;
  EXPECT_TRUE(own_containers().empty());
}

TEST_F(DockerEngineTest, PullFailureCarriesEngineMessage) {
  // Port 1 on loopback has no registry, so the engine's pull fails at once.
  start(config("", "    pull_policy: always\n", "127.0.0.1:1/modelgate/absent:1"));

  HttpResponse response = gateway_->chat("demo");

  EXPECT_EQ(response.status, 502) << response.body;
  std::string message = json::parse(response.body)["error"]["message"];
  std::string prefix = "cannot pull image '127.0.0.1:1/modelgate/absent:1': ";
  std::size_t at = message.find(prefix);
  ASSERT_NE(at, std::string::npos) << message;
  EXPECT_GT(message.size(), at + prefix.size() + 10)
      << "the engine's own message is missing: " << message;
}

TEST_F(DockerEngineTest, ModelPathMountedReadOnly) {
  std::filesystem::path model = dir_.path() / "model dir";
  std::filesystem::create_directories(model);
  write_file(model / "weights.bin", "not really weights");
  start(config("    model_path: " + model.string() + "\n"));

  ASSERT_EQ(gateway_->chat("demo").status, 200);

  std::string instance = own_containers().at(0)["Labels"]["modelgate.instance"];
  json details = json::parse(engine_->request("GET", "/containers/" + instance + "/json").body);
  json binds = details["HostConfig"]["Binds"];
  ASSERT_EQ(binds.size(), 1u) << binds;
  std::string bind = binds[0];
  EXPECT_EQ(bind.rfind(model.string() + ":" + model.string() + ":", 0), 0u) << bind;
  EXPECT_NE(bind.find("ro"), std::string::npos) << bind;
}

// No engine runs behind the docker worker's socket, while a process worker
// next to it serves its model as usual.
TEST(DockerWithoutEngineTest, MissingSocketFailsOnlyItsModels) {
  TempDir dir;
  std::filesystem::path socket = dir.path() / "missing.sock";
  std::string text = R"(gateway:
  listen: 127.0.0.1:{{GATEWAY_PORT}}
  log_dir: {{DIR}}/logs
  id: {{ID}}
workers:
  - name: local
    runtime: process
    ports: {{PORTS}}
  - name: podman
    runtime: docker
    endpoint: unix://{{SOCKET}}
    ports: 30000-30009
backends:
  - backend_name: stub
    default_run_command: {{STUB}} --port {{port}} --model {{model_name}}
deployments:
  - name: local-model
    backend: stub
    worker: local
  - name: container-model
    backend: custom
    image_name: modelgate-test/stub:1
    run_command: /usr/local/bin/modelgate-stub --port {{port}}
    worker: podman
)";
  replace_all(text, "{{ID}}", random_gateway_id());
  replace_all(text, "{{SOCKET}}", socket.string());
  GatewayProcess gateway(dir, text);
  ASSERT_TRUE(gateway.wait_ready()) << gateway.log();

  HttpResponse failed = gateway.chat("container-model");
  HttpResponse served = gateway.chat("local-model");

  EXPECT_EQ(failed.status, 502) << failed.body;
  std::string message = json::parse(failed.body)["error"]["message"];
  EXPECT_NE(message.find("unix://" + socket.string()), std::string::npos) << message;
  EXPECT_NE(message.find("No such file or directory"), std::string::npos) << message;
  EXPECT_EQ(served.status, 200) << served.body;
  std::string log = gateway.log();
  EXPECT_NE(log.find("container-model' failed to start: cannot"), std::string::npos) << log;
}

// A socket file that nothing listens on, as an engine that stopped leaves.
TEST(DockerWithoutEngineTest, StaleSocketReportsEngineDown) {
  TempDir dir;
  std::filesystem::path socket_path = dir.path() / "stale.sock";
  {
    asio::io_context io_context;
    asio::local::stream_protocol::socket socket(io_context);
    socket.open();
    socket.bind(asio::local::stream_protocol::endpoint(socket_path.string()));
  }
  ASSERT_TRUE(std::filesystem::exists(socket_path));
  std::string text = R"(gateway:
  listen: 127.0.0.1:{{GATEWAY_PORT}}
  log_dir: {{DIR}}/logs
workers:
  - name: podman
    runtime: docker
    endpoint: unix://{{SOCKET}}
    ports: {{PORTS}}
deployments:
  - name: container-model
    backend: custom
    image_name: modelgate-test/stub:1
    run_command: /usr/local/bin/modelgate-stub --port {{port}}
)";
  replace_all(text, "{{SOCKET}}", socket_path.string());
  GatewayProcess gateway(dir, text);
  ASSERT_TRUE(gateway.wait_ready()) << gateway.log();

  HttpResponse failed = gateway.chat("container-model");

  EXPECT_EQ(failed.status, 502) << failed.body;
  std::string message = json::parse(failed.body)["error"]["message"];
  EXPECT_NE(message.find("Connection refused"), std::string::npos) << message;
  EXPECT_NE(message.find("is the engine running?"), std::string::npos) << message;
  EXPECT_TRUE(wait_until([&] { return gateway.log().find("is not usable") != std::string::npos; }))
      << gateway.log();
}

}  // namespace
}  // namespace modelgate::testing
