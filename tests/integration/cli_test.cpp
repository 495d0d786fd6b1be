// The gateway binary's command line: `validate` and its exit codes.

#include "tests/support/process_harness.hpp"

#include <gtest/gtest.h>

namespace modelgate::testing {
namespace {

constexpr int kExitUsage = 64;
constexpr int kExitConfig = 78;

class CliTest : public ::testing::Test {
 protected:
  CommandResult validate(const std::string& yaml) {
    std::filesystem::path config = dir_.path() / "config.yaml";
    write_file(config, yaml);
    return run_command({gateway_binary(), "validate", "--config", config.string()}, dir_.path());
  }

  TempDir dir_;
};

TEST_F(CliTest, ValidateAcceptsGoodFile) {
  CommandResult result = validate(
      "deployments:\n  - name: chat\n    backend: custom\n    run_command: serve {{port}}\n");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("valid (1 worker(s), 0 backend(s), 1 deployment(s))"),
            std::string::npos)
      << result.output;
}

TEST_F(CliTest, ValidateNamesLineAndKey) {
  CommandResult result = validate("gateway:\n  max_held_requests: many\n");
  EXPECT_EQ(result.exit_code, kExitConfig) << result.output;
  EXPECT_NE(result.output.find("config.yaml:2:22: gateway.max_held_requests: invalid number"),
            std::string::npos)
      << result.output;
}

TEST_F(CliTest, ValidateEndsWhenYamlParserLoops) {
  // yaml-cpp 0.7 never returns on this document; the gateway gives up after
  // 3 s with a message.
  CommandResult result = validate("&\xff,");
  EXPECT_EQ(result.exit_code, kExitConfig) << result.output;
  EXPECT_NE(result.output.find("the YAML parser did not finish within 3 s"), std::string::npos)
      << result.output;
}

TEST_F(CliTest, UnknownCommandIsUsageError) {
  CommandResult result = run_command({gateway_binary(), "serve-all", "--config", "x"}, dir_.path());
  EXPECT_EQ(result.exit_code, kExitUsage) << result.output;
  EXPECT_NE(result.output.find("unknown command 'serve-all'"), std::string::npos)
      << result.output;
}

}  // namespace
}  // namespace modelgate::testing
