#include "launcher/event.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace modelgate::launcher {

void Event::set() {
  set_ = true;
  for (asio::steady_timer* timer : waiters_) {
    timer->cancel();
  }
}

awaitable<bool> Event::wait_for(std::chrono::steady_clock::duration timeout) {
  if (set_) {
    co_return true;
  }

  asio::steady_timer timer(executor_);
  if (timeout == std::chrono::steady_clock::duration::max()) {
    timer.expires_at(std::chrono::steady_clock::time_point::max());
  } else {
    timer.expires_after(timeout);
  }
  auto position = waiters_.insert(waiters_.end(), &timer);

  boost::system::error_code ignored;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));

  waiters_.erase(position);
  co_return set_;
}

awaitable<void> Event::wait() {
  co_await wait_for(std::chrono::steady_clock::duration::max());
}

}  // namespace modelgate::launcher
