#pragma once

// API keys for the OpenAI endpoints and the admin endpoints, compared in
// constant time. Each configured key is kept as its SHA-256 digest, and the
// presented key is hashed once. Every digest is compared in full with
// CRYPTO_memcmp, so the time taken does not depend on where a guess first
// differs or on which key matched.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace modelgate::gateway {

class KeyRing {
 public:
  KeyRing() = default;
  explicit KeyRing(const std::vector<config::ApiKey>& keys);

  bool empty() const { return entries_.empty(); }

  // The configured key equal to `presented`, or nullptr.
  const config::ApiKey* find(std::string_view presented) const;

 private:
  using Digest = std::array<std::uint8_t, 32>;
  struct Entry {
    Digest digest;
    const config::ApiKey* key;
  };

  static Digest digest_of(std::string_view text);

  std::vector<Entry> entries_;
};

// Whether `key` may use `deployment`.
bool key_allows(const config::ApiKey& key, std::string_view deployment);

// The key in an `Authorization: Bearer KEY` value (the scheme compares
// case-insensitively), or an empty view.
std::string_view bearer_token(std::string_view authorization);

}  // namespace modelgate::gateway
