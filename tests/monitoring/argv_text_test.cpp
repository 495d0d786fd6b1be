#include "launcher/argv_text.hpp"

#include <gtest/gtest.h>

namespace modelgate::launcher {
namespace {

TEST(ArgvForLog, PlainWordsJoined) {
  EXPECT_EQ(argv_for_log({"/usr/bin/serve", "--port", "20000", "/models/qwen"}),
            "/usr/bin/serve --port 20000 /models/qwen");
}

TEST(ArgvForLog, WordsWithSpacesQuoted) {
  EXPECT_EQ(argv_for_log({"serve", "my model", "it's", ""}), "serve 'my model' 'it'\\''s' ''");
}

TEST(ArgvForLog, SecretOptionValueRedacted) {
  EXPECT_EQ(argv_for_log({"serve", "--api-key", "sk-123", "--port", "1"}),
            "serve --api-key <redacted> --port 1");
  EXPECT_EQ(argv_for_log({"serve", "--hf_token=hf_abc"}), "serve --hf_token=<redacted>");
  EXPECT_EQ(argv_for_log({"serve", "-password", "p"}), "serve -password <redacted>");
  EXPECT_EQ(argv_for_log({"serve", "--Secret", "s"}), "serve --Secret <redacted>");
  EXPECT_EQ(argv_for_log({"serve", "--auth.credentials=c w"}),
            "serve --auth.credentials=<redacted>");
}

TEST(ArgvForLog, SecretOptionWithoutValueKeepsNextOption) {
  EXPECT_EQ(argv_for_log({"serve", "--trust-token", "--port", "1"}),
            "serve --trust-token --port 1");
  EXPECT_EQ(argv_for_log({"serve", "--api-key"}), "serve --api-key");
}

TEST(ArgvForLog, SimilarOptionNamesKept) {
  EXPECT_EQ(argv_for_log({"serve", "--max-tokens", "16", "--tokenizer", "/t", "--keyfile", "/k"}),
            "serve --max-tokens 16 --tokenizer /t --keyfile /k");
}

TEST(ArgvForLog, ControlCharactersEscaped) {
  EXPECT_EQ(argv_for_log({"serve", "a\nb"}), "serve 'a\\x0ab'");
}

}  // namespace
}  // namespace modelgate::launcher
