#include "launcher/docker_request.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace modelgate::launcher {
namespace {

using json = nlohmann::json;

ContainerSpec stub_spec() {
  ContainerSpec spec;
  spec.image = "example/stub:1.0";
  spec.cmd = {"/usr/local/bin/modelgate-stub", "--port", "20001", "--model", "demo model"};
  spec.env = {{"STUB_MODE", "demo"}, {"HF_HOME", "/cache"}};
  spec.labels = {{std::string(kLabelGateway), "gw-1"}, {std::string(kLabelInstance), "demo-1"}};
  spec.port = 20001;
  return spec;
}

TEST(DockerRequestTest, CreateBodyWithHostNetwork) {
  json body = json::parse(container_create_body(stub_spec()));

  EXPECT_EQ(body["Image"], "example/stub:1.0");
  EXPECT_EQ(body["Cmd"], json({"/usr/local/bin/modelgate-stub", "--port", "20001", "--model",
                               "demo model"}));
  EXPECT_FALSE(body.contains("Entrypoint")) << "the image's ENTRYPOINT must stay";
  EXPECT_EQ(body["Env"], json({"HF_HOME=/cache", "STUB_MODE=demo"}));
  EXPECT_EQ(body["Labels"]["modelgate.gateway"], "gw-1");
  EXPECT_EQ(body["Labels"]["modelgate.instance"], "demo-1");
  EXPECT_EQ(body["HostConfig"]["NetworkMode"], "host");
  EXPECT_FALSE(body.contains("ExposedPorts"));
  EXPECT_FALSE(body["HostConfig"].contains("PortBindings"));
  EXPECT_FALSE(body["HostConfig"].contains("Ulimits"))
      << "Ulimits would replace every default limit of the engine";
  EXPECT_FALSE(body["HostConfig"].contains("DeviceRequests"));
  EXPECT_FALSE(body["HostConfig"].contains("Devices"));
}

TEST(DockerRequestTest, CreateBodyWithEntrypoint) {
  ContainerSpec spec = stub_spec();
  spec.entrypoint = {"/bin/sh", "-c"};

  json body = json::parse(container_create_body(spec));

  EXPECT_EQ(body["Entrypoint"], json({"/bin/sh", "-c"}));
  EXPECT_EQ(body["Cmd"][0], "/usr/local/bin/modelgate-stub");
}

TEST(DockerRequestTest, CreateBodyWithBridgePublishesPort) {
  ContainerSpec spec = stub_spec();
  spec.network = "bridge";
  spec.host_ip = "127.0.0.1";

  json body = json::parse(container_create_body(spec));

  EXPECT_EQ(body["HostConfig"]["NetworkMode"], "bridge");
  EXPECT_TRUE(body["ExposedPorts"].contains("20001/tcp"));
  json binding = body["HostConfig"]["PortBindings"]["20001/tcp"][0];
  EXPECT_EQ(binding["HostIp"], "127.0.0.1");
  EXPECT_EQ(binding["HostPort"], "20001");
}

TEST(DockerRequestTest, CreateBodyBindsModelPathReadOnly) {
  ContainerSpec spec = stub_spec();
  spec.read_only_binds = {"/models/llama 3"};

  json body = json::parse(container_create_body(spec));

  EXPECT_EQ(body["HostConfig"]["Binds"], json({"/models/llama 3:/models/llama 3:ro"}));
}

TEST(DockerRequestTest, CudaRequestsEveryGpuWithoutIds) {
  ContainerSpec spec = stub_spec();
  spec.framework = "cuda";

  json request = json::parse(container_create_body(spec))["HostConfig"]["DeviceRequests"][0];

  EXPECT_EQ(request["Driver"], "nvidia");
  EXPECT_EQ(request["Count"], -1);
  EXPECT_FALSE(request.contains("DeviceIDs"));
  EXPECT_EQ(request["Capabilities"], json::parse(R"([["gpu"]])"));
}

TEST(DockerRequestTest, CudaRequestsConfiguredGpuIds) {
  ContainerSpec spec = stub_spec();
  spec.framework = "cuda";
  spec.gpu_ids = {"0", "2"};

  json request = json::parse(container_create_body(spec))["HostConfig"]["DeviceRequests"][0];

  EXPECT_EQ(request["DeviceIDs"], json({"0", "2"}));
  EXPECT_FALSE(request.contains("Count"));
}

TEST(DockerRequestTest, RocmPassesKfdAndDri) {
  ContainerSpec spec = stub_spec();
  spec.framework = "rocm";

  json devices = json::parse(container_create_body(spec))["HostConfig"]["Devices"];

  ASSERT_EQ(devices.size(), 2u);
  EXPECT_EQ(devices[0]["PathOnHost"], "/dev/kfd");
  EXPECT_EQ(devices[0]["PathInContainer"], "/dev/kfd");
  EXPECT_EQ(devices[1]["PathOnHost"], "/dev/dri");
  EXPECT_EQ(devices[1]["CgroupPermissions"], "rwm");
}

TEST(DockerRequestTest, FingerprintIgnoresLabelsOnly) {
  ContainerSpec spec = stub_spec();
  std::string fingerprint = spec_fingerprint(spec);
  EXPECT_EQ(fingerprint.size(), 16u);

  ContainerSpec relabelled = spec;
  relabelled.labels[std::string(kLabelSpec)] = fingerprint;
  EXPECT_EQ(spec_fingerprint(relabelled), fingerprint);

  ContainerSpec other_image = spec;
  other_image.image = "example/stub:2.0";
  EXPECT_NE(spec_fingerprint(other_image), fingerprint);

  ContainerSpec other_env = spec;
  other_env.env["STUB_MODE"] = "fast";
  EXPECT_NE(spec_fingerprint(other_env), fingerprint);
}

TEST(DockerRequestTest, PullQueryAddsLatestOnlyWithoutTag) {
  EXPECT_EQ(image_pull_query("busybox"), "fromImage=busybox&tag=latest");
  EXPECT_EQ(image_pull_query("vllm/vllm-openai:v0.6.0"), "fromImage=vllm%2Fvllm-openai%3Av0.6.0");
  EXPECT_EQ(image_pull_query("registry:5000/team/model"),
            "fromImage=registry%3A5000%2Fteam%2Fmodel&tag=latest");
  EXPECT_EQ(image_pull_query("repo@sha256:abc"), "fromImage=repo%40sha256%3Aabc");
}

TEST(DockerRequestTest, PullErrorReadsProgressLine) {
  EXPECT_EQ(pull_error(R"({"status":"Pulling fs layer","id":"a1"})"), "");
  EXPECT_EQ(pull_error(R"({"error":"manifest unknown","errorDetail":{"message":"x"}})"),
            "manifest unknown");
  EXPECT_EQ(pull_error(R"({"errorDetail":{"message":"denied"}})"), "denied");
  EXPECT_EQ(pull_error("not json"), "");
}

TEST(DockerRequestTest, ListQueryFiltersByLabel) {
  EXPECT_EQ(container_list_query("modelgate.gateway", "gw-1"),
            "all=1&filters=%7B%22label%22%3A%5B%22modelgate.gateway%3Dgw-1%22%5D%7D");
}

TEST(DockerRequestTest, ParsesContainerList) {
  auto list = parse_container_list(R"([
    {"Id": "abc", "State": "running", "Labels": {"modelgate.port": "20001", "n": 5}},
    {"State": "exited"},
    {"Id": "def", "State": "exited", "Labels": null}
  ])");

  ASSERT_TRUE(list.has_value());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, "abc");
  EXPECT_EQ((*list)[0].state, "running");
  EXPECT_EQ((*list)[0].labels.at("modelgate.port"), "20001");
  EXPECT_EQ((*list)[0].labels.count("n"), 0u) << "non-string label values are skipped";
  EXPECT_EQ((*list)[1].id, "def");
  EXPECT_TRUE((*list)[1].labels.empty());
  EXPECT_FALSE(parse_container_list(R"({"message": "oops"})").has_value());
}

TEST(DockerRequestTest, ParsesCreateWaitAndInspectAnswers) {
  EXPECT_EQ(parse_created_id(R"({"Id":"61935f","Warnings":[]})"), "61935f");
  EXPECT_FALSE(parse_created_id("{}").has_value());
  EXPECT_EQ(parse_create_warnings(R"({"Id":"1","Warnings":["no swap"]})"),
            std::vector<std::string>{"no swap"});
  EXPECT_TRUE(parse_create_warnings(R"({"Id":"1","Warnings":null})").empty());

  EXPECT_EQ(parse_wait_status(R"({"StatusCode":134,"Error":null})"), 134);
  EXPECT_FALSE(parse_wait_status(R"({"Error":{"Message":"x"}})").has_value());

  auto state = parse_container_state(R"({"Id":"1","State":{"Running":false,"ExitCode":3}})");
  ASSERT_TRUE(state.has_value());
  EXPECT_FALSE(state->running);
  EXPECT_EQ(state->exit_code, 3);
  EXPECT_FALSE(parse_container_state("[]").has_value());
}

TEST(DockerRequestTest, ImagePathKeepsReferenceSeparators) {
  EXPECT_EQ(image_path("registry:5000/team/model@sha256:ab"), "registry:5000/team/model@sha256:ab");
  EXPECT_EQ(image_path("odd name"), "odd%20name");
}

TEST(DockerRequestTest, DescribesEngineVersion) {
  EXPECT_EQ(describe_engine_version(
                R"({"Components":[{"Name":"Podman Engine"}],"Version":"4.3.1","ApiVersion":"1.41"})"),
            "Podman Engine 4.3.1, API 1.41");
  EXPECT_EQ(describe_engine_version(
                R"({"Components":[{"Name":"Engine"}],"Version":"20.10.24","ApiVersion":"1.41"})"),
            "Docker Engine 20.10.24, API 1.41");
  EXPECT_EQ(describe_engine_version(R"({"Version":"24.0.5"})"), "Docker Engine 24.0.5");
  EXPECT_FALSE(describe_engine_version(R"({"message":"page not found"})").has_value());
}

TEST(DockerRequestTest, UrlEncodeKeepsUnreservedCharacters) {
  EXPECT_EQ(url_encode("a-Z_0.~"), "a-Z_0.~");
  EXPECT_EQ(url_encode("a b/c"), "a%20b%2Fc");
}

}  // namespace
}  // namespace modelgate::launcher
