#include "gateway/api_keys.hpp"

#include <gtest/gtest.h>

namespace modelgate::gateway {
namespace {

std::vector<config::ApiKey> sample_keys() {
  return {
      {"team-a", "sk-team-a", {}, {}},
      {"embed-only", "sk-embed", {"embed", "rerank"}, {}},
  };
}

TEST(KeyRing, FindsConfiguredKeys) {
  std::vector<config::ApiKey> keys = sample_keys();
  KeyRing ring(keys);

  const config::ApiKey* found = ring.find("sk-team-a");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->name, "team-a");
  found = ring.find("sk-embed");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->name, "embed-only");
}

TEST(KeyRing, RejectsOtherKeys) {
  std::vector<config::ApiKey> keys = sample_keys();
  KeyRing ring(keys);

  EXPECT_EQ(ring.find(""), nullptr) << "empty key";
  EXPECT_EQ(ring.find("sk-team-"), nullptr) << "prefix of a key";
  EXPECT_EQ(ring.find("sk-team-aa"), nullptr) << "key with an extra character";
  EXPECT_EQ(ring.find("SK-TEAM-A"), nullptr) << "keys compare case-sensitively";
  EXPECT_EQ(ring.find(std::string_view("sk-team-a\0", 10)), nullptr) << "key with a NUL";
}

TEST(KeyRing, EmptyRingFindsNothing) {
  KeyRing ring;
  EXPECT_TRUE(ring.empty());
  EXPECT_EQ(ring.find("sk-team-a"), nullptr);
}

TEST(KeyAllows, ListedDeploymentsOnly) {
  std::vector<config::ApiKey> keys = sample_keys();

  EXPECT_TRUE(key_allows(keys[0], "anything")) << "a key without a list allows every deployment";
  EXPECT_TRUE(key_allows(keys[1], "embed"));
  EXPECT_TRUE(key_allows(keys[1], "rerank"));
  EXPECT_FALSE(key_allows(keys[1], "chat"));
  EXPECT_FALSE(key_allows(keys[1], "embed2"));
}

TEST(BearerToken, ParsesSchemeAndSpaces) {
  EXPECT_EQ(bearer_token("Bearer sk-1"), "sk-1");
  EXPECT_EQ(bearer_token("bearer sk-1"), "sk-1") << "the scheme is case-insensitive";
  EXPECT_EQ(bearer_token("BEARER   sk-1  "), "sk-1") << "spaces around the key";
  EXPECT_EQ(bearer_token("Basic c2s6MQ=="), "") << "another scheme";
  EXPECT_EQ(bearer_token("Bearer"), "") << "no key";
  EXPECT_EQ(bearer_token("Bearer    "), "") << "only spaces";
  EXPECT_EQ(bearer_token("sk-1"), "") << "no scheme";
}

}  // namespace
}  // namespace modelgate::gateway
