#pragma once

// The TLS server context of the client listener. New connections take the
// current context. reload() swaps in a context read from the files again,
// and open connections keep the one they started with.

#include "routing/asio_prelude.hpp"

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/ssl/context.hpp>

#include "config/config.hpp"

namespace modelgate::gateway {

class TlsContext {
 public:
  // Reads the certificate chain and key. Throws std::runtime_error naming
  // the file, the problem and the fix.
  explicit TlsContext(config::TlsSettings settings);

  std::shared_ptr<asio::ssl::context> current() const { return current_.load(); }

  // Reads the files again. On failure the current context stays, and the
  // error message is returned.
  std::optional<std::string> reload();

 private:
  static std::shared_ptr<asio::ssl::context> load(const config::TlsSettings& settings);

  config::TlsSettings settings_;
  std::atomic<std::shared_ptr<asio::ssl::context>> current_;
};

}  // namespace modelgate::gateway
