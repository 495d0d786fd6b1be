// modelgate: an OpenAI-compatible gateway that starts model backends on
// demand.

#include "routing/asio_prelude.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/program_options.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>

#include "config/config.hpp"
#include "gateway/log_format.hpp"
#include "gateway/metrics.hpp"
#include "gateway/redis_metrics.hpp"
#include "gateway/server.hpp"
#include "gateway/tls_context.hpp"
#include "launcher/docker_runtime.hpp"
#include "launcher/launcher.hpp"
#include "launcher/process_guard.hpp"
#include "routing/logger.hpp"
#include "routing/redis_client.hpp"
#include "routing/redis_route_store.hpp"
#include "routing/route_table.hpp"

namespace {

namespace po = boost::program_options;
using namespace modelgate;

constexpr int kExitUsage = 64;   // EX_USAGE
constexpr int kExitConfig = 78;  // EX_CONFIG

struct Options {
  std::string command = "serve";
  std::string config_path;
  std::string log_level = "info";
  gateway::LogFormat log_format = gateway::LogFormat::text;
};

void print_usage(std::ostream& out, const po::options_description& visible) {
  out << "Usage: modelgate [serve|validate] --config FILE [options]\n\n"
         "  serve     start the gateway (the default)\n"
         "  validate  check the config file and exit\n\n"
      << visible << "\n";
}

// Returns nothing when the program should exit with `exit_code`.
std::optional<Options> parse_options(int argc, char** argv, int& exit_code) {
  Options options;
  std::string log_format;
  po::options_description visible("Options");
  visible.add_options()
      ("config,c", po::value(&options.config_path)->value_name("FILE"),
       "the YAML config file (required)")
      ("log-level", po::value(&options.log_level)->value_name("LEVEL")->default_value("info"),
       "trace, debug, info, warn or error")
      ("log-format", po::value(&log_format)->value_name("FORMAT")->default_value("text"),
       "text, or json for one JSON object per line")
      ("version", "print the version and exit")
      ("help,h", "print this help and exit");
  po::options_description all;
  all.add(visible).add_options()("command", po::value(&options.command));
  po::positional_options_description positional;
  positional.add("command", 1);

  po::variables_map values;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(),
              values);
    po::notify(values);
  } catch (const po::error& error) {
    std::cerr << "modelgate: " << error.what() << "\n\n";
    print_usage(std::cerr, visible);
    exit_code = kExitUsage;
    return std::nullopt;
  }

  if (values.count("help") != 0) {
    print_usage(std::cout, visible);
    exit_code = 0;
    return std::nullopt;
  }
  if (values.count("version") != 0) {
    std::cout << "modelgate " << MODELGATE_VERSION << "\n";
    exit_code = 0;
    return std::nullopt;
  }
  if (options.command != "serve" && options.command != "validate") {
    std::cerr << "modelgate: unknown command '" << options.command
              << "'; use serve or validate\n";
    exit_code = kExitUsage;
    return std::nullopt;
  }
  if (options.config_path.empty()) {
    std::cerr << "modelgate: missing --config FILE\n\n";
    print_usage(std::cerr, visible);
    exit_code = kExitUsage;
    return std::nullopt;
  }
  if (spdlog::level::from_str(options.log_level) == spdlog::level::off &&
      options.log_level != "off") {
    std::cerr << "modelgate: invalid --log-level '" << options.log_level
              << "'; use trace, debug, info, warn or error\n";
    exit_code = kExitUsage;
    return std::nullopt;
  }
  std::optional<gateway::LogFormat> format = gateway::parse_log_format(log_format);
  if (!format) {
    std::cerr << "modelgate: invalid --log-format '" << log_format << "'; use text or json\n";
    exit_code = kExitUsage;
    return std::nullopt;
  }
  options.log_format = *format;
  return options;
}

void configure_logging(const Options& options) {
  // A sink has one formatter for all its loggers. In JSON, the session
  // writes each access line as a whole object, so the access logger gets a
  // sink of its own that adds nothing. Both sinks write whole lines to
  // stderr.
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto access_sink = sink;
  if (options.log_format == gateway::LogFormat::text) {
    sink->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [%n] %v");
  } else {
    sink->set_formatter(std::make_unique<gateway::JsonLogFormatter>());
    access_sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    access_sink->set_pattern("%v");
  }

  for (const char* name : {"gateway", "launcher", "routing", "access"}) {
    auto logger = std::make_shared<spdlog::logger>(
        name, std::string_view(name) == "access" ? access_sink : sink);
    logger->set_level(spdlog::level::from_str(options.log_level));
    spdlog::register_logger(logger);
  }
}

// Reads the TLS certificate and key again on each SIGHUP. Connections that
// are open keep the context they started with.
awaitable<void> reload_tls_on_sighup(gateway::TlsContext& tls, gateway::Metrics& metrics) {
  auto executor = co_await asio::this_coro::executor;
  asio::signal_set signals(executor, SIGHUP);
  auto log = component_logger("gateway");
  for (;;) {
    boost::system::error_code error;
    co_await signals.async_wait(asio::redirect_error(asio::use_awaitable, error));
    if (error) {
      co_return;
    }
    std::optional<std::string> failure = tls.reload();
    metrics.record_tls_reload(!failure);
    if (failure) {
      log->error("TLS reload on SIGHUP failed, keeping the previous certificate: {}", *failure);
    } else {
      log->info("reloaded the TLS certificate and key on SIGHUP");
    }
  }
}

// Stops the gateway on SIGINT or SIGTERM: no new connections, every instance
// stopped, then the I/O threads end. A second signal exits at once; the
// process guard then stops the backends.
awaitable<void> handle_signals(gateway::ServerContext& context,
                               std::vector<gateway::Server*> servers,
                               launcher::Launcher& launcher, routing::RedisRouteStore* redis,
                               std::vector<std::unique_ptr<asio::io_context>>& contexts) {
  auto executor = co_await asio::this_coro::executor;
  asio::signal_set signals(executor, SIGINT, SIGTERM);
  auto log = component_logger("gateway");

  int signal_number = co_await signals.async_wait(asio::use_awaitable);
  log->info("received {}; stopping every instance and exiting", ::sigabbrev_np(signal_number));
  context.shutting_down.store(true);
  for (gateway::Server* server : servers) {
    server->stop_accepting();
  }

  signals.async_wait([log](const boost::system::error_code& error, int second) {
    if (!error) {
      log->warn("received {} again; exiting now", ::sigabbrev_np(second));
      ::_exit(1);
    }
  });
  co_await launcher.shutdown();
  log->info("all instances stopped");
  if (redis != nullptr) {
    co_await redis->shutdown();
  }
  for (auto& io_context : contexts) {
    io_context->stop();
  }
}

// Connects to Redis once before the I/O threads start. Returns false when
// Redis rejects the credentials or the database, which a restart cannot fix.
// An unreachable Redis is only a warning: the gateway serves from its local
// routes and connects when Redis is back.
bool check_redis_at_startup(const config::RedisSettings& redis) {
  auto log = component_logger("gateway");
  routing::RedisCheck check = routing::check_redis(redis, std::chrono::seconds(3));
  if (!check.reachable) {
    log->warn("Redis at {} is unreachable ({}); starting with local routes and connecting in "
              "the background",
              redis.redacted_url(), check.error);
    return true;
  }
  bool rejected = check.error.rfind("AUTH", 0) == 0 || check.error.rfind("SELECT", 0) == 0;
  if (rejected) {
    log->error("Redis at {} rejected the gateway: {}; check the user, password and database "
               "in gateway.redis.url",
               redis.redacted_url(), check.error);
    return false;
  }
  if (!check.error.empty()) {
    log->warn("Redis at {} did not answer PING ({}); connecting in the background",
              redis.redacted_url(), check.error);
  }
  return true;
}

int serve(const config::Config& config, gateway::LogFormat log_format) {
  auto log = component_logger("gateway");

  // The guard is forked before any thread exists.
  std::unique_ptr<launcher::ProcessGuard> guard =
      launcher::ProcessGuard::start(config.gateway.stop_grace_period);
  ::signal(SIGPIPE, SIG_IGN);

  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<asio::io_context*> context_pointers;
  for (int index = 0; index < config.gateway.io_threads; ++index) {
    contexts.push_back(std::make_unique<asio::io_context>(1));
    context_pointers.push_back(contexts.back().get());
  }

  std::vector<std::string> deployment_names;
  for (const config::Deployment& deployment : config.deployments) {
    deployment_names.push_back(deployment.name);
  }
  gateway::Metrics metrics(deployment_names);

  // Routes in Redis when gateway.redis is set, else in memory.
  std::unique_ptr<routing::RouteStore> routes;
  std::unique_ptr<gateway::RedisMetrics> redis_metrics;
  routing::RedisRouteStore* redis = nullptr;
  if (config.gateway.redis.enabled()) {
    if (!check_redis_at_startup(config.gateway.redis)) {
      return 1;
    }
    std::string gateway_id =
        config.gateway.id.empty() ? launcher::default_gateway_id(config) : config.gateway.id;
    redis_metrics = std::make_unique<gateway::RedisMetrics>(metrics.registry());
    auto store = std::make_unique<routing::RedisRouteStore>(
        *contexts.front(), config.gateway.redis, gateway_id, deployment_names,
        redis_metrics.get());
    redis = store.get();
    routes = std::move(store);
  } else {
    routes = std::make_unique<routing::MemoryRouteStore>();
  }
  launcher::Launcher launcher(*contexts.front(), config, *routes, guard.get(), &metrics);
  gateway::ServerContext context(config, launcher, *routes, metrics);
  context.log_format = log_format;
  gateway::Server server(context, context_pointers);
  std::unique_ptr<gateway::Server> admin_server;
  if (config.gateway.admin_listen) {
    admin_server = std::make_unique<gateway::Server>(
        context, std::vector<asio::io_context*>{contexts.front().get()},
        gateway::ListenerRole::admin);
  }
  std::unique_ptr<gateway::TlsContext> tls;
  try {
    launcher.check_startup();
    if (config.gateway.tls.enabled()) {
      tls = std::make_unique<gateway::TlsContext>(config.gateway.tls);
      context.tls = tls.get();
    }
    server.listen();
    if (admin_server) {
      admin_server->listen();
    }
  } catch (const std::exception& error) {
    log->error("{}", error.what());
    return 1;
  }
  if (redis != nullptr) {
    redis->start();
  }

  std::vector<gateway::Server*> servers{&server};
  server.start();
  if (admin_server) {
    admin_server->start();
    servers.push_back(admin_server.get());
  }
  asio::co_spawn(*contexts.front(),
                 handle_signals(context, servers, launcher, redis, contexts),
                 asio::detached);
  if (tls) {
    asio::co_spawn(*contexts.front(), reload_tls_on_sighup(*tls, metrics), asio::detached);
  }

  auto endpoint = server.local_endpoint();
  log->info("modelgate {} listening on {}:{} ({}) with {} deployment(s), {} I/O thread(s)",
            MODELGATE_VERSION, endpoint.address().to_string(), endpoint.port(),
            tls ? "https" : "http", config.deployments.size(), config.gateway.io_threads);
  if (admin_server) {
    auto admin_endpoint = admin_server->local_endpoint();
    log->info("admin endpoints listening on {}:{}", admin_endpoint.address().to_string(),
              admin_endpoint.port());
  }

  std::vector<std::thread> threads;
  for (std::size_t index = 1; index < contexts.size(); ++index) {
    threads.emplace_back([&io_context = *contexts[index]] { io_context.run(); });
  }
  contexts.front()->run();
  for (std::thread& thread : threads) {
    thread.join();
  }
  log->info("stopped");
  return 0;
}

// yaml-cpp 0.7 (Debian 12) never returns on some malformed documents that
// the loader does not screen out. Reading the config runs under an alarm,
// so that such a file ends the program with a message instead of a hang.
constexpr unsigned kConfigReadSeconds = 3;
char config_read_message[512];

void on_config_read_alarm(int) {
  ::write(STDERR_FILENO, config_read_message, std::strlen(config_read_message));
  ::_exit(kExitConfig);
}

void arm_config_read_alarm(const std::string& config_path) {
  std::snprintf(config_read_message, sizeof config_read_message,
                "modelgate: invalid config: %s: the YAML parser did not finish within %u s. "
                "yaml-cpp 0.7 loops on some malformed YAML, most often a ',' outside "
                "brackets; check the file's commas and indentation.\n",
                config_path.c_str(), kConfigReadSeconds);
  ::signal(SIGALRM, on_config_read_alarm);
  ::alarm(kConfigReadSeconds);
}

void disarm_config_read_alarm() {
  ::alarm(0);
  ::signal(SIGALRM, SIG_DFL);
}

}  // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  std::optional<Options> options = parse_options(argc, argv, exit_code);
  if (!options) {
    return exit_code;
  }

  config::Config config;
  arm_config_read_alarm(options->config_path);
  try {
    config = config::load_config(options->config_path);
  } catch (const config::ConfigError& error) {
    std::cerr << "modelgate: invalid config: " << error.what() << "\n";
    return kExitConfig;
  }
  disarm_config_read_alarm();

  if (options->command == "validate") {
    std::cout << options->config_path << ": valid (" << config.workers.size() << " worker(s), "
              << config.backends.size() << " backend(s), " << config.deployments.size()
              << " deployment(s))\n";
    return 0;
  }

  configure_logging(*options);
  return serve(config, options->log_format);
}
