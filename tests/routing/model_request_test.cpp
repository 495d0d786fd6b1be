#include "routing/model_request.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace modelgate::routing {
namespace {

std::string_view error_name(ModelRequestError error) {
  switch (error) {
    case ModelRequestError::none:
      return "none";
    case ModelRequestError::invalid_json:
      return "invalid_json";
    case ModelRequestError::not_an_object:
      return "not_an_object";
    case ModelRequestError::missing_model:
      return "missing_model";
    case ModelRequestError::model_not_string:
      return "model_not_string";
    case ModelRequestError::empty_model:
      return "empty_model";
    case ModelRequestError::duplicate_model:
      return "duplicate_model";
    case ModelRequestError::too_deep:
      return "too_deep";
  }
  return "unknown";
}

struct BodyCase {
  std::string name;  // the test name suffix
  std::string body;
  ModelRequestError error;
  std::string model;  // checked only for valid bodies
  bool stream = false;
};

std::ostream& operator<<(std::ostream& out, const BodyCase& body_case) {
  return out << body_case.name;
}

const std::vector<BodyCase>& body_cases() {
  using E = ModelRequestError;
  static const std::vector<BodyCase> cases = {
      // Valid bodies.
      {"PlainModel", R"({"model":"qwen-7b"})", E::none, "qwen-7b"},
      {"RawUtf8Model", "{\"model\":\"\xe6\xa8\xa1\xe5\x9e\x8b-\xc3\xbc\"}", E::none,
       "\xe6\xa8\xa1\xe5\x9e\x8b-\xc3\xbc"},
      {"EscapedUnicodeModel", R"({"model":"caf\u00e9"})", E::none, "caf\xc3\xa9"},
      {"SurrogatePairModel", R"({"model":"\ud83d\ude00"})", E::none, "\xf0\x9f\x98\x80"},
      {"ModelWithSlashes", R"({"model":"org/team/llama-3"})", E::none, "org/team/llama-3"},
      {"EscapedSlashModel", R"({"model":"org\/llama"})", E::none, "org/llama"},
      {"ModelWithColons", R"({"model":"llama3:8b-q4:latest"})", E::none,
       "llama3:8b-q4:latest"},
      {"StreamTrue", R"({"model":"m","stream":true})", E::none, "m", true},
      {"StreamFalse", R"({"model":"m","stream":false})", E::none, "m", false},
      {"StreamAbsent", R"({"model":"m","messages":[]})", E::none, "m", false},
      {"StreamBeforeModel", R"({"stream":true,"model":"m"})", E::none, "m", true},
      {"NestedModelIgnored",
       R"({"messages":[{"role":"user","model":"other"}],"model":"m"})", E::none, "m"},
      {"NestedModelsNotDuplicates",
       R"({"model":"m","tools":[{"model":"a"},{"model":"b"}],"x":{"model":"c"}})", E::none,
       "m"},
      {"NestedStreamIgnored", R"({"model":"m","options":{"stream":true}})", E::none, "m",
       false},
      {"StreamInArrayIgnored", R"({"model":"m","extra":[{"stream":true},true]})", E::none,
       "m", false},
      {"StreamObjectValueIgnored", R"({"model":"m","stream":{"enabled":true}})", E::none,
       "m", false},
      {"StreamArrayValueIgnored", R"({"model":"m","stream":[true]})", E::none, "m", false},
      {"StreamStringIgnored", R"({"model":"m","stream":"true"})", E::none, "m", false},
      {"StreamOptionsNotStream", R"({"model":"m","stream_options":true})", E::none, "m",
       false},
      {"WhitespaceAround", " \r\n\t{ \"model\" : \"m\" ,\n\"stream\" : true } \n", E::none,
       "m", true},
      {"ModelAfterNestedObject", R"({"a":{"b":{"c":[1,2,{"d":null}]}},"model":"m"})",
       E::none, "m"},
      // nlohmann decodes the escape in a key before it calls the SAX handler.
      {"EscapedModelKey", R"({"mod\u0065l":"m"})", E::none, "m"},
      {"ModelWithEscapedQuote", R"({"model":"a\"b"})", E::none, "a\"b"},
      {"WhitespaceOnlyModel", R"({"model":" "})", E::none, " "},

      // Invalid bodies.
      {"EmptyBody", "", E::invalid_json, ""},
      {"WhitespaceOnlyBody", " \n\t ", E::invalid_json, ""},
      {"TruncatedObject", R"({"model":"m")", E::invalid_json, ""},
      {"TruncatedString", R"({"model":"m)", E::invalid_json, ""},
      {"TruncatedAfterKey", R"({"model":)", E::invalid_json, ""},
      {"TrailingGarbage", R"({"model":"m"} x)", E::invalid_json, ""},
      {"TrailingSecondObject", R"({"model":"m"}{})", E::invalid_json, ""},
      {"TrailingComma", R"({"model":"m",})", E::invalid_json, ""},
      {"SingleQuotes", R"({'model':'m'})", E::invalid_json, ""},
      {"Comment", R"({"model":"m"/* c */})", E::invalid_json, ""},
      {"NaNValue", R"({"model":"m","t":NaN})", E::invalid_json, ""},
      {"RawNewlineInString", "{\"model\":\"a\nb\"}", E::invalid_json, ""},
      // nlohmann 3.11 rejects ill-formed UTF-8 in any string while lexing.
      {"InvalidUtf8InModel", "{\"model\":\"\xff\"}", E::invalid_json, ""},
      {"InvalidUtf8InNestedString",
       "{\"model\":\"m\",\"messages\":[{\"content\":\"\xc3\x28\"}]}", E::invalid_json, ""},
      {"LoneSurrogateEscape", R"({"model":"\ud83d"})", E::invalid_json, ""},
      {"TopLevelArray", R"([{"model":"m"}])", E::not_an_object, ""},
      {"TopLevelEmptyArray", "[]", E::not_an_object, ""},
      {"TopLevelString", R"("model")", E::not_an_object, ""},
      {"TopLevelNumber", "42", E::not_an_object, ""},
      {"TopLevelNull", "null", E::not_an_object, ""},
      {"TopLevelBool", "true", E::not_an_object, ""},
      {"EmptyObject", "{}", E::missing_model, ""},
      {"NoTopLevelModel", R"({"messages":[{"model":"m"}]})", E::missing_model, ""},
      {"ModelKeyWrongCase", R"({"Model":"m"})", E::missing_model, ""},
      {"ModelInteger", R"({"model":7})", E::model_not_string, ""},
      {"ModelNegative", R"({"model":-7})", E::model_not_string, ""},
      {"ModelFloat", R"({"model":1.5})", E::model_not_string, ""},
      {"ModelNull", R"({"model":null})", E::model_not_string, ""},
      {"ModelObject", R"({"model":{"name":"m"}})", E::model_not_string, ""},
      {"ModelArray", R"({"model":["m"]})", E::model_not_string, ""},
      {"ModelBool", R"({"model":true})", E::model_not_string, ""},
      {"EmptyModel", R"({"model":""})", E::empty_model, ""},
      {"DuplicateModel", R"({"model":"a","model":"b"})", E::duplicate_model, ""},
      {"DuplicateModelSameValue", R"({"model":"a","stream":true,"model":"a"})",
       E::duplicate_model, ""},
      {"DuplicateModelFirstEmpty", R"({"model":"","model":"a"})", E::duplicate_model, ""},
  };
  return cases;
}

class ModelRequestBody : public ::testing::TestWithParam<BodyCase> {};

TEST_P(ModelRequestBody, Parses) {
  const BodyCase& expected = GetParam();
  ModelRequest result = parse_model_request(expected.body);

  EXPECT_EQ(error_name(result.error), error_name(expected.error))
      << "error for body [" << expected.body << "], detail: " << result.detail;
  if (expected.error != ModelRequestError::none) {
    return;
  }
  EXPECT_EQ(result.model, expected.model) << "model for body [" << expected.body << "]";
  EXPECT_EQ(result.stream, expected.stream) << "stream for body [" << expected.body << "]";
  EXPECT_TRUE(result.detail.empty()) << "detail for a valid body: " << result.detail;
}

INSTANTIATE_TEST_SUITE_P(Table, ModelRequestBody, ::testing::ValuesIn(body_cases()),
                         [](const ::testing::TestParamInfo<BodyCase>& info) {
                           return info.param.name;
                         });

TEST(ModelRequest, TableHasThirtyBodies) {
  EXPECT_GE(body_cases().size(), 30u) << "size of the body table";
}

TEST(ModelRequest, InvalidJsonDetailNamesByte) {
  ModelRequest result = parse_model_request(R"({"model":"m" x})");

  EXPECT_EQ(error_name(result.error), "invalid_json");
  EXPECT_NE(result.detail.find("(byte "), std::string::npos) << "detail: " << result.detail;
}

// Object nesting: `{"a":{"a":...1...}}` with `levels` objects in total.
std::string nested_objects(std::size_t levels) {
  std::string body;
  for (std::size_t i = 0; i < levels; ++i) {
    body += R"({"a":)";
  }
  body += "1";
  for (std::size_t i = 0; i < levels; ++i) {
    body += "}";
  }
  return body;
}

// A top-level object with a model and an array value nested so that the
// deepest array sits at depth `depth`, counting the top-level object as 1.
std::string body_with_depth(std::size_t depth) {
  std::string body = R"({"model":"m","deep":)";
  body += std::string(depth - 1, '[');
  body += std::string(depth - 1, ']');
  body += "}";
  return body;
}

TEST(ModelRequest, DeepArraysAreTooDeep) {
  std::string body = R"({"model":"m","deep":)" + std::string(10000, '[') +
                     std::string(10000, ']') + "}";

  ModelRequest result = parse_model_request(body);

  EXPECT_EQ(error_name(result.error), "too_deep") << "10,000 nested arrays";
}

TEST(ModelRequest, UnclosedDeepArraysAreTooDeep) {
  // The parser stops at the limit, before it can see that the body is cut.
  std::string body = R"({"model":"m","deep":)" + std::string(10000, '[');

  ModelRequest result = parse_model_request(body);

  EXPECT_EQ(error_name(result.error), "too_deep") << "10,000 unclosed arrays";
}

TEST(ModelRequest, DeepObjectsAreTooDeep) {
  ModelRequest result = parse_model_request(nested_objects(10000));

  EXPECT_EQ(error_name(result.error), "too_deep") << "10,000 nested objects";
}

TEST(ModelRequest, DeepTopLevelArrayIsTooDeep) {
  ModelRequest result =
      parse_model_request(std::string(10000, '[') + std::string(10000, ']'));

  EXPECT_EQ(error_name(result.error), "too_deep") << "10,000 nested top-level arrays";
}

TEST(ModelRequest, DepthAtLimitIsAccepted) {
  ModelRequest result = parse_model_request(body_with_depth(kMaxJsonDepth));

  EXPECT_EQ(error_name(result.error), "none") << "depth " << kMaxJsonDepth;
  EXPECT_EQ(result.model, "m") << "model at depth " << kMaxJsonDepth;
}

TEST(ModelRequest, DepthOverLimitIsTooDeep) {
  ModelRequest result = parse_model_request(body_with_depth(kMaxJsonDepth + 1));

  EXPECT_EQ(error_name(result.error), "too_deep") << "depth " << kMaxJsonDepth + 1;
}

TEST(ModelRequest, CustomDepthLimit) {
  ModelRequest at_limit = parse_model_request(body_with_depth(3), 3);
  ModelRequest over_limit = parse_model_request(body_with_depth(4), 3);
  ModelRequest objects_over_limit = parse_model_request(nested_objects(4), 3);

  EXPECT_EQ(error_name(at_limit.error), "none") << "depth 3 with limit 3";
  EXPECT_EQ(error_name(over_limit.error), "too_deep") << "depth 4 with limit 3";
  EXPECT_EQ(error_name(objects_over_limit.error), "too_deep")
      << "4 nested objects with limit 3";
}

TEST(ModelRequest, ByteOrderMarkBodyIsObject) {
  // nlohmann skips a leading UTF-8 byte order mark, so the body is an object.
  ModelRequest result = parse_model_request("\xef\xbb\xbf{\"model\":\"m\"}");

  EXPECT_EQ(error_name(result.error), "none") << "error for an object after a BOM";
  EXPECT_EQ(result.model, "m") << "model after a BOM";
}

TEST(ModelRequest, LongModelKeptWhole) {
  std::string model(100000, 'x');

  ModelRequest result = parse_model_request(R"({"model":")" + model + R"("})");

  EXPECT_EQ(error_name(result.error), "none");
  EXPECT_EQ(result.model.size(), model.size()) << "size of a 100,000-byte model";
}

TEST(ModelRequest, EmbeddedNulEscapeKept) {
  ModelRequest result = parse_model_request(R"({"model":"a\u0000b"})");

  EXPECT_EQ(error_name(result.error), "none");
  EXPECT_EQ(result.model, std::string("a\0b", 3)) << "model with an escaped NUL";
}

}  // namespace
}  // namespace modelgate::routing
