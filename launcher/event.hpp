#pragma once

// A one-shot event that coroutines wait for, with or without a deadline.
// Not thread-safe: set() and every wait run on the same strand.

#include "routing/asio_prelude.hpp"

#include <chrono>
#include <list>

#include <boost/asio/steady_timer.hpp>

namespace modelgate::launcher {

class Event {
 public:
  explicit Event(asio::any_io_executor executor) : executor_(std::move(executor)) {}
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  // Wakes every waiter, now and later.
  void set();
  bool is_set() const { return set_; }

  // Returns true once the event is set, or false after `timeout`.
  awaitable<bool> wait_for(std::chrono::steady_clock::duration timeout);
  awaitable<void> wait();

 private:
  asio::any_io_executor executor_;
  bool set_ = false;
  std::list<asio::steady_timer*> waiters_;
};

}  // namespace modelgate::launcher
