#include "config/command.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

namespace modelgate::config {
namespace {

using Words = std::vector<std::string>;

struct SplitCase {
  std::string command;
  Words words;
};

TEST(Command, SplitsLikeShell) {
  const std::vector<SplitCase> cases = {
      SplitCase{"", {}},
      SplitCase{"   \t\n ", {}},
      SplitCase{"serve", {"serve"}},
      SplitCase{"  serve   --port  8000 ", {"serve", "--port", "8000"}},
      SplitCase{"a\tb\nc", {"a", "b", "c"}},
      // Single quotes keep everything, including backslashes and "$".
      SplitCase{"echo 'a b'", {"echo", "a b"}},
      SplitCase{R"('a\b $HOME "x"')", {R"(a\b $HOME "x")"}},
      // Double quotes: backslash escapes $ ` " \ only.
      SplitCase{R"("a b")", {"a b"}},
      SplitCase{R"("say \"hi\"")", {R"(say "hi")"}},
      SplitCase{R"("\$x \`y\` \\ \n")", {R"($x `y` \ \n)"}},
      SplitCase{R"("it's")", {"it's"}},
      // Backslash outside quotes keeps the next character.
      SplitCase{R"(a\ b)", {"a b"}},
      SplitCase{R"(\'x\')", {"'x'"}},
      SplitCase{R"(\"x)", {"\"x"}},
      SplitCase{"a\\\nb", {"ab"}},
      SplitCase{"\"a\\\nb\"", {"ab"}},
      // Adjacent quoted and unquoted parts form one word.
      SplitCase{R"('a'"b"c)", {"abc"}},
      SplitCase{R"(--name='my model')", {"--name=my model"}},
      // An empty quoted string is an empty word.
      SplitCase{"''", {""}},
      SplitCase{R"(a "" b)", {"a", "", "b"}},
      SplitCase{"a '' ''", {"a", "", ""}},
      // Shell operators are plain text.
      SplitCase{"a | b ; c & d > e < f",
                {"a", "|", "b", ";", "c", "&", "d", ">", "e", "<", "f"}},
      SplitCase{"echo $(rm -rf x) `id` $HOME",
                {"echo", "$(rm", "-rf", "x)", "`id`", "$HOME"}},
      SplitCase{"a&&b||c", {"a&&b||c"}},
      SplitCase{"# not a comment", {"#", "not", "a", "comment"}},
      // Placeholders are ordinary text at this stage.
      SplitCase{"serve {{model_path}} --port={{port}}",
                {"serve", "{{model_path}}", "--port={{port}}"}},
      SplitCase{"'{{model_name}} x'", {"{{model_name}} x"}},
      // Spaces inside the braces of a placeholder do not split it.
      SplitCase{"serve --port {{ port }} --x={{ a }}{{b}}",
                {"serve", "--port", "{{ port }}", "--x={{ a }}{{b}}"}},
      SplitCase{"a {{ b", {"a", "{{", "b"}},
  };

  for (const SplitCase& c : cases) {
    EXPECT_EQ(split_command_line(c.command), c.words)
        << "command: " << c.command;
  }
}

TEST(Command, RejectsUnterminatedSingleQuote) {
  try {
    split_command_line("serve 'model");
    FAIL() << "expected CommandError";
  } catch (const CommandError& error) {
    EXPECT_NE(std::string(error.what()).find("unterminated single quote"),
              std::string::npos)
        << error.what();
    EXPECT_NE(std::string(error.what()).find("character 7"), std::string::npos)
        << error.what();
  }
}

TEST(Command, RejectsUnterminatedDoubleQuote) {
  try {
    split_command_line(R"(serve "model \")");
    FAIL() << "expected CommandError";
  } catch (const CommandError& error) {
    EXPECT_NE(std::string(error.what()).find("unterminated double quote"),
              std::string::npos)
        << error.what();
  }
}

TEST(Command, RejectsTrailingBackslash) {
  try {
    split_command_line("serve model\\");
    FAIL() << "expected CommandError";
  } catch (const CommandError& error) {
    EXPECT_NE(std::string(error.what()).find("trailing backslash"),
              std::string::npos)
        << error.what();
  }
}

TEST(Command, QuoteInsideOtherQuoteIsText) {
  EXPECT_EQ(split_command_line(R"('say "hi')"), Words{R"(say "hi)"});
  EXPECT_EQ(split_command_line(R"("it's")"), Words{"it's"});
}

TEST(Command, TemplateVariablesListed) {
  const Words expected = {"model_path", "model_name",  "port",
                          "worker_ip",  "worker_name", "instance_id",
                          "gpu_ids",    "gpu_count",   "config_dir"};
  EXPECT_EQ(template_variables(), expected);
}

TEST(Command, FindsPlaceholdersInOrder) {
  EXPECT_EQ(template_placeholders("--port={{port}}:{{ worker_ip }}x{{port}}"),
            (Words{"port", "worker_ip", "port"}));
  EXPECT_EQ(template_placeholders("{{\tHF_TOKEN  }}"), Words{"HF_TOKEN"});
  EXPECT_EQ(template_placeholders("{{a_1}}{{B2}}"), (Words{"a_1", "B2"}));
}

TEST(Command, TextWithoutPlaceholders) {
  EXPECT_TRUE(template_placeholders("").empty());
  EXPECT_TRUE(template_placeholders("plain --flag=1").empty());
  EXPECT_TRUE(template_placeholders("{single} }} {").empty());
}

TEST(Command, RejectsMalformedPlaceholders) {
  const Words bad = {"{{port",  "x {{ port }", "{{}}",
                     "{{  }}",  "{{a-b}}",     "{{a.b}}",
                     "{{a b}}", "{{{port}}}",  "{{port}} {{"};
  for (const std::string& text : bad) {
    EXPECT_THROW(template_placeholders(text), CommandError) << text;
  }
}

TEST(Command, PlaceholderErrorNamesText) {
  try {
    template_placeholders("--x={{model-path}}");
    FAIL() << "expected CommandError";
  } catch (const CommandError& error) {
    EXPECT_NE(std::string(error.what()).find("{{model-path}}"),
              std::string::npos)
        << error.what();
  }
}

TEST(Command, RendersSeveralPlaceholdersInWord) {
  const std::map<std::string, std::string> values = {{"worker_ip", "127.0.0.1"},
                                                     {"port", "20001"}};
  EXPECT_EQ(render_template("http://{{worker_ip}}:{{ port }}/v1", values),
            "http://127.0.0.1:20001/v1");
  EXPECT_EQ(render_template("no placeholders", values), "no placeholders");
  EXPECT_EQ(render_template("{{port}}{{port}}", values), "2000120001");
}

TEST(Command, DoesNotExpandValuesAgain) {
  const std::map<std::string, std::string> values = {{"model_name", "{{port}}"},
                                                     {"port", "1"}};
  EXPECT_EQ(render_template("{{model_name}}", values), "{{port}}");
}

TEST(Command, RenderRejectsUnknownPlaceholder) {
  const std::map<std::string, std::string> values = {{"port", "1"}};
  try {
    render_template("--gpus={{gpu_ids}}", values);
    FAIL() << "expected CommandError";
  } catch (const CommandError& error) {
    EXPECT_NE(std::string(error.what()).find("{{gpu_ids}}"), std::string::npos)
        << error.what();
  }
}

TEST(Command, ValueWithSpacesAndQuotesStaysOneWord) {
  const Words words = split_command_line(
      "serve {{model_path}} --served-model-name {{model_name}}");
  const std::map<std::string, std::string> values = {
      {"model_path", "/models/my model's \"v2\" dir"},
      {"model_name", "org/name: v1; rm -rf / $(id)"}};

  const Words rendered = render_command(words, values);

  const Words expected = {"serve", "/models/my model's \"v2\" dir",
                          "--served-model-name",
                          "org/name: v1; rm -rf / $(id)"};
  EXPECT_EQ(rendered, expected);
}

TEST(Command, RendersEveryWord) {
  const Words words = {"--host={{worker_ip}}", "--port", "{{port}}", "{{K}}"};
  const std::map<std::string, std::string> values = {
      {"worker_ip", "::1"}, {"port", "20000"}, {"K", ""}};
  EXPECT_EQ(render_command(words, values),
            (Words{"--host=::1", "--port", "20000", ""}));
}

TEST(Command, RejectsUnknownPlaceholderInAnyWord) {
  const Words words = {"serve", "{{port}}", "{{unknown}}"};
  const std::map<std::string, std::string> values = {{"port", "1"}};
  EXPECT_THROW(render_command(words, values), CommandError);
}

}  // namespace
}  // namespace modelgate::config
