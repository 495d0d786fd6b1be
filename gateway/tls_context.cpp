#include "gateway/tls_context.hpp"

#include <stdexcept>

#include <openssl/ssl.h>

namespace modelgate::gateway {

TlsContext::TlsContext(config::TlsSettings settings) : settings_(std::move(settings)) {
  current_.store(load(settings_));
}

std::optional<std::string> TlsContext::reload() {
  try {
    current_.store(load(settings_));
  } catch (const std::runtime_error& error) {
    return error.what();
  }
  return std::nullopt;
}

std::shared_ptr<asio::ssl::context> TlsContext::load(const config::TlsSettings& settings) {
  auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  context->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
  int min_version = settings.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
  ::SSL_CTX_set_min_proto_version(context->native_handle(), min_version);

  boost::system::error_code error;
  context->use_certificate_chain_file(settings.cert_file.string(), error);
  if (error) {
    throw std::runtime_error("cannot load the TLS certificate chain " +
                             settings.cert_file.string() + ": " + error.message() +
                             "; set gateway.tls.cert_file to a readable PEM file");
  }
  context->use_private_key_file(settings.key_file.string(), asio::ssl::context::pem, error);
  if (error) {
    throw std::runtime_error("cannot load the TLS private key " + settings.key_file.string() +
                             ": " + error.message() +
                             "; set gateway.tls.key_file to a readable PEM file without a "
                             "passphrase");
  }
  if (::SSL_CTX_check_private_key(context->native_handle()) != 1) {
    throw std::runtime_error("the TLS private key " + settings.key_file.string() +
                             " does not match the certificate " + settings.cert_file.string() +
                             "; give the key that belongs to the certificate");
  }
  return context;
}

}  // namespace modelgate::gateway
