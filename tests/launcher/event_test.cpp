#include "launcher/event.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace modelgate::launcher {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class EventTest : public ::testing::Test {
 protected:
  // Runs io_ until every spawned coroutine has returned or `timeout` passes.
  // Returns whether io_ ran out of work in time.
  bool run(Clock::duration timeout = 10s) {
    Clock::time_point deadline = Clock::now() + timeout;
    while (io_.run_one_until(deadline) > 0) {
    }
    return io_.stopped();
  }

  void spawn(std::function<awaitable<void>()> body) {
    asio::co_spawn(
        io_, [body]() -> awaitable<void> { co_await body(); }, asio::detached);
  }

  // Checks `condition` every millisecond until it is true.
  static awaitable<void> poll_until(std::function<bool()> condition) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    while (!condition()) {
      timer.expires_after(1ms);
      co_await timer.async_wait(asio::use_awaitable);
    }
  }

  asio::io_context io_;
};

TEST_F(EventTest, SetWakesAllWaiters) {
  constexpr int kWaiters = 3;
  Event event(io_.get_executor());
  int waiting = 0;
  std::vector<int> results(kWaiters, -1);
  std::vector<Clock::duration> waited(kWaiters);

  for (int i = 0; i < kWaiters; ++i) {
    spawn([&, i]() -> awaitable<void> {
      Clock::time_point before = Clock::now();
      ++waiting;
      bool woken = co_await event.wait_for(30s);
      results[static_cast<std::size_t>(i)] = woken ? 1 : 0;
      waited[static_cast<std::size_t>(i)] = Clock::now() - before;
    });
  }
  spawn([&]() -> awaitable<void> {
    co_await poll_until([&] { return waiting == kWaiters; });
    event.set();
  });

  ASSERT_TRUE(run()) << "the coroutines did not finish within 10 s";
  for (int i = 0; i < kWaiters; ++i) {
    auto index = static_cast<std::size_t>(i);
    EXPECT_EQ(results[index], 1) << "wait_for result of waiter " << i;
    EXPECT_LT(waited[index], 5s) << "time waiter " << i << " waited for a set event";
  }
  EXPECT_TRUE(event.is_set()) << "is_set() after set()";
}

TEST_F(EventTest, WaitForTimesOut) {
  Event event(io_.get_executor());
  int result = -1;
  Clock::duration waited{};

  spawn([&]() -> awaitable<void> {
    Clock::time_point before = Clock::now();
    bool woken = co_await event.wait_for(50ms);
    result = woken ? 1 : 0;
    waited = Clock::now() - before;
  });

  ASSERT_TRUE(run()) << "the coroutine did not finish within 10 s";
  EXPECT_EQ(result, 0) << "wait_for(50 ms) on an event never set";
  EXPECT_GE(waited, 50ms) << "wait_for returned before its timeout";
  EXPECT_FALSE(event.is_set()) << "is_set() without set()";
}

TEST_F(EventTest, WaitAfterSetReturnsAtOnce) {
  Event event(io_.get_executor());
  event.set();
  int result = -1;
  bool waited = false;
  Clock::duration elapsed{};

  spawn([&]() -> awaitable<void> {
    Clock::time_point before = Clock::now();
    bool woken = co_await event.wait_for(30s);
    result = woken ? 1 : 0;
    co_await event.wait();
    waited = true;
    elapsed = Clock::now() - before;
  });

  ASSERT_TRUE(run()) << "the coroutine did not finish within 10 s";
  EXPECT_EQ(result, 1) << "wait_for(30 s) on a set event";
  EXPECT_TRUE(waited) << "wait() on a set event";
  EXPECT_LT(elapsed, 1s) << "time to wait for an event already set";
}

TEST_F(EventTest, WaitWithoutTimeoutWakesOnSet) {
  Event event(io_.get_executor());
  bool waiting = false;
  bool woken = false;

  spawn([&]() -> awaitable<void> {
    waiting = true;
    co_await event.wait();
    woken = true;
  });
  spawn([&]() -> awaitable<void> {
    co_await poll_until([&] { return waiting; });
    EXPECT_FALSE(woken) << "wait() returned before set()";
    event.set();
  });

  ASSERT_TRUE(run()) << "the coroutines did not finish within 10 s";
  EXPECT_TRUE(woken) << "wait() after set()";
}

TEST_F(EventTest, TimedOutWaiterLeavesOthersWaiting) {
  Event event(io_.get_executor());
  int short_result = -1;
  int long_result = -1;

  spawn([&]() -> awaitable<void> {
    bool woken = co_await event.wait_for(10ms);
    short_result = woken ? 1 : 0;
  });
  spawn([&]() -> awaitable<void> {
    bool woken = co_await event.wait_for(30s);
    long_result = woken ? 1 : 0;
  });
  spawn([&]() -> awaitable<void> {
    co_await poll_until([&] { return short_result != -1; });
    event.set();
  });

  ASSERT_TRUE(run()) << "the coroutines did not finish within 10 s";
  EXPECT_EQ(short_result, 0) << "wait_for(10 ms) with set() after it timed out";
  EXPECT_EQ(long_result, 1) << "wait_for(30 s) with set() after the other waiter timed out";
}

}  // namespace
}  // namespace modelgate::launcher
