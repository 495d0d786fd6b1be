#pragma once

// State that every client connection reads: shared across I/O threads, and
// per I/O thread.

#include "routing/asio_prelude.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "gateway/api_keys.hpp"
#include "gateway/log_format.hpp"
#include "gateway/metrics.hpp"
#include "gateway/upstream_pool.hpp"
#include "launcher/launcher.hpp"
#include "routing/route_table.hpp"

namespace modelgate::gateway {

class TlsContext;

struct ServerContext {
  ServerContext(const config::Config& config, launcher::Launcher& launcher,
                routing::RouteStore& routes, Metrics& metrics)
      : config(config), launcher(launcher), routes(routes), metrics(metrics),
        api_keys(config.auth.api_keys), admin_keys(config.auth.admin_keys) {}

  const config::Config& config;
  launcher::Launcher& launcher;
  routing::RouteStore& routes;
  Metrics& metrics;
  KeyRing api_keys;
  KeyRing admin_keys;
  TlsContext* tls = nullptr;  // null: the client listener speaks plain HTTP
  std::chrono::system_clock::time_point started_at = std::chrono::system_clock::now();
  std::atomic<bool> shutting_down{false};
  // Requests held on all I/O threads, against gateway.max_held_requests.
  std::atomic<std::size_t> held_requests{0};
  LogFormat log_format = LogFormat::text;  // of the access log
};

// Role of a listener: the set of endpoints it serves.
enum class ListenerRole {
  client,  // the OpenAI endpoints, and the admin endpoints unless `admin` exists
  admin,   // /admin/, /metrics and /health only
};

// Memory blocks of one size that an I/O thread keeps for reuse, so that
// taking one costs no heap allocation once the thread has warmed up.
class BlockPool {
 public:
  BlockPool(std::size_t block_bytes, std::size_t max_kept)
      : block_bytes_(block_bytes), max_kept_(max_kept) {}

  std::size_t block_bytes() const { return block_bytes_; }
  std::unique_ptr<char[]> take();
  // Keeps `block` for the next take(), or frees it when max_kept are kept.
  void give_back(std::unique_ptr<char[]> block);

 private:
  std::size_t block_bytes_;
  std::size_t max_kept_;
  std::vector<std::unique_ptr<char[]>> kept_;
};

// Owned by one I/O thread; sessions on that thread use it without locks.
struct ThreadContext {
  ThreadContext(asio::any_io_executor executor, const config::GatewaySettings& settings,
                std::string id_prefix)
      : upstream_pool(std::move(executor), settings.max_idle_upstream_connections,
                      // Each I/O thread's pool gets its share of the limit.
                      (settings.max_upstream_connections +
                       static_cast<std::size_t>(settings.io_threads) - 1) /
                          static_cast<std::size_t>(settings.io_threads),
                      settings.upstream_connect_timeout),
        request_id_prefix(std::move(id_prefix)) {}

  // Returns a request id unique to this gateway process.
  std::string next_request_id();

  UpstreamPool upstream_pool;
  std::string request_id_prefix;
  std::uint64_t request_counter = 0;
  // Taken while a response body is relayed.
  BlockPool relay_buffers{16 * 1024, 256};
  // Taken while a request is served, for its parsed heads.
  BlockPool head_blocks{2 * 1024, 256};
};

}  // namespace modelgate::gateway
