#include "routing/redis_client.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "routing/logger.hpp"

namespace modelgate::routing {
namespace {

std::shared_ptr<spdlog::logger> log() { return component_logger("routing"); }

RedisReply convert(const redisReply& reply) {
  RedisReply result;
  switch (reply.type) {
    case REDIS_REPLY_NIL:
      result.kind = RedisReply::Kind::nil;
      break;
    case REDIS_REPLY_STATUS:
      result.kind = RedisReply::Kind::status;
      result.text.assign(reply.str, reply.len);
      break;
    case REDIS_REPLY_ERROR:
      result.kind = RedisReply::Kind::error;
      result.text.assign(reply.str, reply.len);
      break;
    case REDIS_REPLY_INTEGER:
      result.kind = RedisReply::Kind::integer;
      result.integer = reply.integer;
      break;
    case REDIS_REPLY_STRING:
      result.kind = RedisReply::Kind::string;
      result.text.assign(reply.str, reply.len);
      break;
    case REDIS_REPLY_ARRAY:
      result.kind = RedisReply::Kind::array;
      for (std::size_t index = 0; index < reply.elements; ++index) {
        result.elements.push_back(convert(*reply.element[index]));
      }
      break;
    default:
      result = RedisReply::failure("unknown reply type " + std::to_string(reply.type));
  }
  return result;
}

std::vector<std::string> auth_arguments(const config::RedisSettings& settings) {
  if (settings.user.empty()) {
    return {"AUTH", settings.password};
  }
  return {"AUTH", settings.user, settings.password};
}

}  // namespace

RedisReply RedisReply::failure(std::string reason) {
  RedisReply reply;
  reply.kind = Kind::failed;
  reply.text = std::move(reason);
  return reply;
}

// The adapter between one hiredis async context and Asio: hiredis calls the
// add/del hooks when it wants to read or write, and the descriptor's waits
// call redisAsyncHandleRead/Write back. hiredis owns and closes the socket,
// so the descriptor releases it instead of closing it. Waits hold a
// shared_ptr, so the adapter outlives the context it served.
class RedisClient::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::any_io_executor executor, redisAsyncContext* context)
      : context_(context),
        descriptor_(executor, context->c.fd),
        connect_signal_(executor, std::chrono::steady_clock::time_point::max()),
        closed_signal_(executor, std::chrono::steady_clock::time_point::max()) {}

  // Installs the hooks. Must run before redisAsyncSetConnectCallback(),
  // which requests the first write event.
  void attach() {
    context_->data = this;
    context_->ev.data = this;
    context_->ev.addRead = [](void* data) { static_cast<Connection*>(data)->want_read(true); };
    context_->ev.delRead = [](void* data) { static_cast<Connection*>(data)->want_read(false); };
    context_->ev.addWrite = [](void* data) { static_cast<Connection*>(data)->want_write(true); };
    context_->ev.delWrite = [](void* data) { static_cast<Connection*>(data)->want_write(false); };
    context_->ev.cleanup = [](void* data) { static_cast<Connection*>(data)->cleanup(); };
    redisAsyncSetConnectCallback(context_, [](const redisAsyncContext* context, int status) {
      auto* self = static_cast<Connection*>(context->data);
      self->connect_status_ = status;
      if (status != REDIS_OK) {
        self->error_ = context->errstr;
      }
      self->connect_signal_.cancel();
    });
  }

  redisAsyncContext* context() const { return context_; }
  bool closed() const { return context_ == nullptr; }
  const std::string& error() const { return error_; }

  // Waits until hiredis reports the connect. Returns false on failure or
  // after `timeout`.
  awaitable<bool> wait_connected(Duration timeout) {
    if (!connect_status_ && context_ != nullptr) {
      connect_signal_.expires_after(timeout);
      boost::system::error_code ignored;
      co_await connect_signal_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
    if (!connect_status_ && error_.empty()) {
      error_ = "timed out connecting";
    }
    co_return connect_status_ == REDIS_OK && context_ != nullptr;
  }

  // Waits until hiredis frees the context.
  awaitable<void> wait_closed() {
    if (context_ != nullptr) {
      boost::system::error_code ignored;
      co_await closed_signal_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
  }

  void set_error(std::string error) { error_ = std::move(error); }

 private:
  void want_read(bool wanted) {
    reading_ = wanted;
    if (wanted && !read_waiting_) {
      wait_readable();
    }
  }

  void want_write(bool wanted) {
    writing_ = wanted;
    if (wanted && !write_waiting_) {
      wait_writable();
    }
  }

  void wait_readable() {
    read_waiting_ = true;
    descriptor_.async_wait(asio::posix::stream_descriptor::wait_read,
                           [self = shared_from_this()](boost::system::error_code error) {
                             self->read_waiting_ = false;
                             if (error || self->closed() || !self->reading_) {
                               return;
                             }
                             // May call the hooks, run callbacks and free the context.
                             redisAsyncHandleRead(self->context_);
                             if (!self->closed() && self->reading_ && !self->read_waiting_) {
                               self->wait_readable();
                             }
                           });
  }

  void wait_writable() {
    write_waiting_ = true;
    descriptor_.async_wait(asio::posix::stream_descriptor::wait_write,
                           [self = shared_from_this()](boost::system::error_code error) {
                             self->write_waiting_ = false;
                             if (error || self->closed() || !self->writing_) {
                               return;
                             }
                             redisAsyncHandleWrite(self->context_);
                             if (!self->closed() && self->writing_ && !self->write_waiting_) {
                               self->wait_writable();
                             }
                           });
  }

  // hiredis is freeing the context and will close the socket itself.
  void cleanup() {
    if (context_->err != 0 && error_.empty()) {
      error_ = context_->errstr;
    }
    context_ = nullptr;
    reading_ = false;
    writing_ = false;
    boost::system::error_code ignored;
    descriptor_.cancel(ignored);
    descriptor_.release();
    connect_signal_.cancel();
    closed_signal_.cancel();
  }

  redisAsyncContext* context_;
  asio::posix::stream_descriptor descriptor_;
  asio::steady_timer connect_signal_;
  asio::steady_timer closed_signal_;
  std::optional<int> connect_status_;
  std::string error_;
  bool reading_ = false;
  bool writing_ = false;
  bool read_waiting_ = false;
  bool write_waiting_ = false;
};

// One command waiting for its reply. hiredis's private data points to a
// heap-allocated shared_ptr to it, which the reply callback deletes. hiredis
// calls every pending callback, with a null reply, when it frees a context.
struct RedisClient::PendingCommand {
  explicit PendingCommand(const asio::any_io_executor& executor) : timer(executor) {}
  asio::steady_timer timer;
  std::optional<RedisReply> reply;
};

RedisClient::RedisClient(asio::any_io_executor executor, const config::RedisSettings& settings,
                         std::string name)
    : executor_(std::move(executor)),
      settings_(settings),
      name_(std::move(name)),
      backoff_timer_(executor_) {}

RedisClient::~RedisClient() {
  stopped_ = true;
  if (connection_ && !connection_->closed()) {
    redisAsyncFree(connection_->context());
  }
}

void RedisClient::start() {
  if (started_) {
    return;
  }
  started_ = true;
  asio::co_spawn(executor_, [self = shared_from_this()] { return self->run(); }, asio::detached);
}

void RedisClient::stop() {
  stopped_ = true;
  backoff_timer_.cancel();
  drop_connection("the client stopped");
}

void RedisClient::drop_connection(const std::string& reason) {
  if (connection_ && !connection_->closed()) {
    connection_->set_error(reason);
    redisAsyncFree(connection_->context());
  }
}

awaitable<void> RedisClient::run() {
  Duration backoff = first_backoff_;
  while (!stopped_) {
    std::string error = co_await connect_once();
    if (stopped_) {
      break;
    }

    if (error.empty()) {
      backoff = first_backoff_;
      connected_ = true;
      if (on_connected) {
        on_connected();
      }
      std::shared_ptr<Connection> connection = connection_;
      co_await connection->wait_closed();
      connected_ = false;
      if (stopped_) {
        break;
      }
      if (on_disconnected) {
        on_disconnected(connection->error().empty() ? "connection closed" : connection->error());
      }
    } else {
      log()->debug("Redis connection '{}' to {} failed: {}; retrying in {} ms", name_,
                   settings_.redacted_url(), error,
                   std::chrono::duration_cast<std::chrono::milliseconds>(backoff).count());
      if (on_connect_failed) {
        on_connect_failed(error);
      }
    }

    // Back off before the next attempt; a lost connection retries sooner.
    backoff_timer_.expires_after(error.empty() ? first_backoff_ : backoff);
    boost::system::error_code ignored;
    co_await backoff_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    if (!error.empty()) {
      backoff = std::min<Duration>(backoff * 2, max_backoff_);
    }
  }
  connected_ = false;
}

awaitable<std::string> RedisClient::connect_once() {
  // Connect without blocking; hiredis reports the result on the first
  // write event.
  // TODO: hiredis resolves a host name with a blocking getaddrinfo() here,
  // on the I/O thread; an IP address or a socket path does not block.
  redisAsyncContext* context = settings_.socket_path.empty()
                                   ? redisAsyncConnect(settings_.host.c_str(), settings_.port)
                                   : redisAsyncConnectUnix(settings_.socket_path.c_str());
  if (context == nullptr) {
    co_return std::string("cannot allocate a Redis connection");
  }
  if (context->err != 0) {
    std::string error = context->errstr;
    redisAsyncFree(context);
    co_return error;
  }
  auto connection = std::make_shared<Connection>(executor_, context);
  connection_ = connection;
  connection->attach();

  bool connected = co_await connection->wait_connected(connect_timeout_);
  if (!connected) {
    std::string error = connection->error();
    drop_connection(error);
    co_return error;
  }

  // AUTH and SELECT, then the subscriptions.
  if (!settings_.password.empty()) {
    RedisReply reply = co_await send(auth_arguments(settings_));
    if (!reply.ok()) {
      drop_connection("AUTH failed");
      co_return "AUTH failed: " + reply.text;
    }
  }
  if (settings_.db != 0) {
    std::vector<std::string> select = {"SELECT", std::to_string(settings_.db)};
    RedisReply reply = co_await send(select);
    if (!reply.ok()) {
      drop_connection("SELECT failed");
      co_return "SELECT " + std::to_string(settings_.db) + " failed: " + reply.text;
    }
  }
  if (connection->closed()) {
    std::string error = connection->error().empty() ? "connection closed" : connection->error();
    co_return error;
  }
  for (const auto& [channel, handler] : subscriptions_) {
    send_subscribe(channel);
  }
  co_return std::string();
}

awaitable<RedisReply> RedisClient::command_argv(std::vector<std::string> arguments) {
  if (!connected_) {
    co_return RedisReply::failure("not connected to Redis");
  }
  co_return co_await send(arguments);
}

awaitable<RedisReply> RedisClient::send(const std::vector<std::string>& arguments) {
  if (!connection_ || connection_->closed()) {
    co_return RedisReply::failure("not connected to Redis");
  }

  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  for (const std::string& argument : arguments) {
    argv.push_back(argument.data());
    lengths.push_back(argument.size());
  }
  auto pending = std::make_shared<PendingCommand>(executor_);
  pending->timer.expires_after(command_timeout_);
  auto* holder = new std::shared_ptr<PendingCommand>(pending);
  int status = redisAsyncCommandArgv(connection_->context(), &RedisClient::handle_reply, holder,
                                     static_cast<int>(argv.size()), argv.data(), lengths.data());
  if (status != REDIS_OK) {
    delete holder;
    co_return RedisReply::failure("cannot send " + arguments.front() + ": the connection is closing");
  }

  if (!pending->reply) {
    boost::system::error_code ignored;
    co_await pending->timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
  if (!pending->reply) {
    std::string reason = arguments.front() + " timed out after " +
                         std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            command_timeout_)
                                            .count()) +
                         " ms";
    drop_connection(reason);
    co_return RedisReply::failure(reason);
  }
  co_return std::move(*pending->reply);
}

void RedisClient::handle_reply(redisAsyncContext* context, void* reply, void* private_data) {
  auto* holder = static_cast<std::shared_ptr<PendingCommand>*>(private_data);
  PendingCommand& pending = **holder;
  if (reply != nullptr) {
    pending.reply = convert(*static_cast<redisReply*>(reply));
  } else {
    std::string reason = context->errstr[0] != '\0' ? context->errstr : "connection closed";
    pending.reply = RedisReply::failure(reason);
  }
  pending.timer.cancel();
  delete holder;
}

void RedisClient::subscribe(const std::string& channel, MessageHandler handler) {
  subscriptions_[channel] = std::move(handler);
  if (connected_) {
    send_subscribe(channel);
  }
}

void RedisClient::send_subscribe(const std::string& channel) {
  const char* argv[] = {"SUBSCRIBE", channel.c_str()};
  std::size_t lengths[] = {9, channel.size()};
  redisAsyncCommandArgv(connection_->context(), &RedisClient::handle_message, this, 2, argv,
                        lengths);
}

void RedisClient::handle_message(redisAsyncContext*, void* reply, void* private_data) {
  // hiredis calls this once per pushed message, and once with a null reply
  // when it frees the context.
  if (reply == nullptr) {
    return;
  }
  auto* self = static_cast<RedisClient*>(private_data);
  const auto& message = *static_cast<redisReply*>(reply);
  if (message.type != REDIS_REPLY_ARRAY || message.elements != 3 ||
      message.element[0]->type != REDIS_REPLY_STRING ||
      std::string_view(message.element[0]->str, message.element[0]->len) != "message") {
    return;
  }
  std::string_view channel(message.element[1]->str, message.element[1]->len);
  std::string_view payload(message.element[2]->str, message.element[2]->len);
  auto found = self->subscriptions_.find(std::string(channel));
  if (found != self->subscriptions_.end() && found->second) {
    found->second(channel, payload);
  }
}

RedisCheck check_redis(const config::RedisSettings& settings, std::chrono::milliseconds timeout) {
  timeval limit{};
  limit.tv_sec = static_cast<long>(timeout.count() / 1000);
  limit.tv_usec = static_cast<long>((timeout.count() % 1000) * 1000);
  std::unique_ptr<redisContext, void (*)(redisContext*)> context(
      settings.socket_path.empty()
          ? redisConnectWithTimeout(settings.host.c_str(), settings.port, limit)
          : redisConnectUnixWithTimeout(settings.socket_path.c_str(), limit),
      redisFree);
  RedisCheck result;
  if (!context) {
    result.error = "cannot allocate a Redis connection";
    return result;
  }
  if (context->err != 0) {
    result.error = context->errstr;
    return result;
  }
  redisSetTimeout(context.get(), limit);
  result.reachable = true;

  auto run = [&](const std::vector<std::string>& arguments) -> std::string {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (const std::string& argument : arguments) {
      argv.push_back(argument.data());
      lengths.push_back(argument.size());
    }
    auto* reply = static_cast<redisReply*>(redisCommandArgv(
        context.get(), static_cast<int>(argv.size()), argv.data(), lengths.data()));
    if (reply == nullptr) {
      return arguments.front() + " failed: " + context->errstr;
    }
    std::string error;
    if (reply->type == REDIS_REPLY_ERROR) {
      error = arguments.front() + " failed: " + std::string(reply->str, reply->len);
    }
    freeReplyObject(reply);
    return error;
  };

  if (!settings.password.empty()) {
    result.error = run(auth_arguments(settings));
  }
  if (result.error.empty() && settings.db != 0) {
    result.error = run({"SELECT", std::to_string(settings.db)});
  }
  if (result.error.empty()) {
    result.error = run({"PING"});
  }
  return result;
}

}  // namespace modelgate::routing
