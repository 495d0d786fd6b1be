#include "gateway/api_keys.hpp"

#include <algorithm>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "gateway/http_text.hpp"

namespace modelgate::gateway {

KeyRing::KeyRing(const std::vector<config::ApiKey>& keys) {
  entries_.reserve(keys.size());
  for (const config::ApiKey& key : keys) {
    entries_.push_back({digest_of(key.key), &key});
  }
}

KeyRing::Digest KeyRing::digest_of(std::string_view text) {
  Digest digest;
  ::SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest.data());
  return digest;
}

const config::ApiKey* KeyRing::find(std::string_view presented) const {
  if (presented.empty()) {
    return nullptr;
  }
  Digest digest = digest_of(presented);

  // Every entry is compared, also after a match.
  const config::ApiKey* match = nullptr;
  for (const Entry& entry : entries_) {
    bool equal = CRYPTO_memcmp(entry.digest.data(), digest.data(), digest.size()) == 0;
    if (equal) {
      match = entry.key;
    }
  }
  return match;
}

bool key_allows(const config::ApiKey& key, std::string_view deployment) {
  if (key.deployments.empty()) {
    return true;
  }
  return std::find(key.deployments.begin(), key.deployments.end(), deployment) !=
         key.deployments.end();
}

std::string_view bearer_token(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size() ||
      !equals_ignore_case(authorization.substr(0, kScheme.size()), kScheme)) {
    return {};
  }
  std::string_view token = authorization.substr(kScheme.size());
  std::size_t first = token.find_first_not_of(' ');
  if (first == std::string_view::npos) {
    return {};
  }
  token.remove_prefix(first);
  std::size_t last = token.find_last_not_of(" \t");
  return token.substr(0, last + 1);
}

}  // namespace modelgate::gateway
