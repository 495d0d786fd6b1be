#include "routing/route_table.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace modelgate::routing {
namespace {

InstancePtr make_instance(const std::string& id, const std::string& deployment,
                          InstanceState state, std::uint16_t port = 9000) {
  auto instance = std::make_shared<InstanceHandle>(id, deployment, "127.0.0.1", port);
  instance->set_state(state);
  return instance;
}

// Counts `count` requests in; the instance must be RUNNING.
void acquire_times(InstanceHandle& instance, int count) {
  for (int i = 0; i < count; ++i) {
    ASSERT_TRUE(instance.try_acquire()) << "acquire " << i << " on " << instance.id();
  }
}

// Busy-waits for `rounds` loop iterations, without a system call, so that
// threads keep running while they hold or leave a state for a moment.
void spin(int rounds) {
  std::atomic<int> counter{0};
  for (int i = 0; i < rounds; ++i) {
    counter.fetch_add(1, std::memory_order_relaxed);
  }
}

std::vector<std::string> ids_of(const std::vector<InstancePtr>* instances) {
  std::vector<std::string> ids;
  if (instances == nullptr) {
    return ids;
  }
  for (const InstancePtr& instance : *instances) {
    ids.push_back(instance->id());
  }
  return ids;
}

TEST(InstanceState, NamesEveryState) {
  EXPECT_EQ(to_string(InstanceState::starting), "starting");
  EXPECT_EQ(to_string(InstanceState::running), "running");
  EXPECT_EQ(to_string(InstanceState::stopping), "stopping");
  EXPECT_EQ(to_string(InstanceState::error), "error");
}

TEST(InstanceHandle, StartsInStartingState) {
  InstanceHandle instance("i1", "qwen", "127.0.0.1", 9001);

  EXPECT_EQ(to_string(instance.state()), "starting");
  EXPECT_EQ(instance.in_flight(), 0);
  EXPECT_EQ(instance.id(), "i1");
  EXPECT_EQ(instance.deployment(), "qwen");
  EXPECT_EQ(instance.host(), "127.0.0.1");
  EXPECT_EQ(instance.port(), 9001);
}

TEST(InstanceHandle, TryAcquireRequiresRunning) {
  for (InstanceState state :
       {InstanceState::starting, InstanceState::stopping, InstanceState::error}) {
    InstancePtr instance = make_instance("i1", "qwen", state);

    EXPECT_FALSE(instance->try_acquire()) << "try_acquire in state " << to_string(state);
    EXPECT_EQ(instance->in_flight(), 0) << "in_flight after a failed acquire in state "
                                        << to_string(state);
  }
}

TEST(InstanceHandle, TryAcquireCountsRequests) {
  InstancePtr instance = make_instance("i1", "qwen", InstanceState::running);

  EXPECT_TRUE(instance->try_acquire()) << "first acquire";
  EXPECT_TRUE(instance->try_acquire()) << "second acquire";
  EXPECT_EQ(instance->in_flight(), 2) << "in_flight after two acquires";

  instance->release();
  EXPECT_EQ(instance->in_flight(), 1) << "in_flight after one release";
}

TEST(InstanceHandle, ReleaseUpdatesLastUsed) {
  InstancePtr instance = make_instance("i1", "qwen", InstanceState::running);
  InstanceHandle::Clock::time_point before = InstanceHandle::Clock::now();

  ASSERT_TRUE(instance->try_acquire());
  instance->release();

  EXPECT_GE(instance->last_used(), before) << "last_used after release";
  EXPECT_LE(instance->last_used(), InstanceHandle::Clock::now()) << "last_used in the future";
  EXPECT_GE(instance->last_used(), instance->started_at()) << "last_used before start";
}

TEST(InstanceHandle, TryBeginStopWaitsForRelease) {
  InstancePtr instance = make_instance("i1", "qwen", InstanceState::running);
  ASSERT_TRUE(instance->try_acquire());

  EXPECT_FALSE(instance->try_begin_stop()) << "stop with one request in flight";
  EXPECT_EQ(to_string(instance->state()), "running") << "state after a failed stop";

  instance->release();
  EXPECT_TRUE(instance->try_begin_stop()) << "stop after the release";
  EXPECT_EQ(to_string(instance->state()), "stopping") << "state after a stop";
  EXPECT_FALSE(instance->try_acquire()) << "acquire after a stop";
  EXPECT_EQ(instance->in_flight(), 0) << "in_flight after a refused acquire";
}

TEST(InstanceHandle, TryBeginStopRequiresRunning) {
  for (InstanceState state :
       {InstanceState::starting, InstanceState::stopping, InstanceState::error}) {
    InstancePtr instance = make_instance("i1", "qwen", state);

    EXPECT_FALSE(instance->try_begin_stop()) << "try_begin_stop in state " << to_string(state);
    EXPECT_EQ(instance->state(), state) << "state changed by a failed stop from "
                                        << to_string(state);
  }
}

// Acquiring threads count a request in and out in a loop while another thread
// tries to stop the instance. in_flight() itself can be above zero at a
// successful stop, because a failing try_acquire() counts in for a moment, so
// the test counts only the acquires that succeeded. Every thread spins
// between attempts: without the gaps the acquirers keep the count above
// zero and no stop succeeds.
TEST(InstanceHandle, StopNeverSucceedsWithRequestInFlight) {
  constexpr int kIterations = 50000;
  constexpr int kAcquirers = 2;
  InstancePtr instance = make_instance("i1", "qwen", InstanceState::running);
  std::atomic<int> held{0};
  std::atomic<int> acquires{0};
  std::atomic<int> stops{0};
  std::atomic<int> stops_while_held{0};
  std::atomic<int> acquires_while_stopped{0};
  std::atomic<bool> stopped{false};

  std::vector<std::thread> threads;
  for (int t = 0; t < kAcquirers; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIterations; ++i) {
        if (instance->try_acquire()) {
          held.fetch_add(1);
          if (stopped.load()) {
            acquires_while_stopped.fetch_add(1);
          }
          acquires.fetch_add(1);
          spin(50);
          held.fetch_sub(1);
          instance->release();
        }
        spin(200);
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < kIterations; ++i) {
      if (instance->try_begin_stop()) {
        stopped.store(true);
        if (held.load() != 0) {
          stops_while_held.fetch_add(1);
        }
        stops.fetch_add(1);
        spin(50);
        stopped.store(false);
        instance->set_state(InstanceState::running);
      }
      spin(100);
    }
  });
  for (std::thread& thread : threads) {
    thread.join();
  }

  EXPECT_EQ(stops_while_held.load(), 0) << "stops that succeeded with a request held";
  EXPECT_EQ(acquires_while_stopped.load(), 0) << "acquires that succeeded while stopped";
  EXPECT_EQ(instance->in_flight(), 0) << "in_flight after every thread ended";
  EXPECT_GT(stops.load(), 0) << "successful stops; the race was not exercised";
  EXPECT_GT(acquires.load(), 0) << "successful acquires; the race was not exercised";
}

TEST(RouteTable, PickChoosesFewestInFlight) {
  InstancePtr busy = make_instance("busy", "qwen", InstanceState::running);
  InstancePtr idle = make_instance("idle", "qwen", InstanceState::running);
  InstancePtr medium = make_instance("medium", "qwen", InstanceState::running);
  acquire_times(*busy, 3);
  acquire_times(*medium, 1);
  RouteTable table(RouteTable::Map{{"qwen", {busy, idle, medium}}});

  InstancePtr picked = table.pick("qwen");

  ASSERT_NE(picked, nullptr) << "pick among three running instances";
  EXPECT_EQ(picked->id(), "idle") << "picked instance";
}

TEST(RouteTable, PickFollowsChangingLoad) {
  InstancePtr first = make_instance("first", "qwen", InstanceState::running);
  InstancePtr second = make_instance("second", "qwen", InstanceState::running);
  RouteTable table(RouteTable::Map{{"qwen", {first, second}}});

  acquire_times(*first, 2);
  acquire_times(*second, 1);
  InstancePtr picked = table.pick("qwen");
  ASSERT_NE(picked, nullptr);
  EXPECT_EQ(picked->id(), "second") << "picked with loads 2 and 1";

  second->release();
  acquire_times(*second, 3);
  picked = table.pick("qwen");
  ASSERT_NE(picked, nullptr);
  EXPECT_EQ(picked->id(), "first") << "picked with loads 2 and 3";
}

TEST(RouteTable, PickIgnoresInstancesNotRunning) {
  InstancePtr starting = make_instance("starting", "qwen", InstanceState::starting);
  InstancePtr stopping = make_instance("stopping", "qwen", InstanceState::stopping);
  InstancePtr failed = make_instance("error", "qwen", InstanceState::error);
  InstancePtr running = make_instance("running", "qwen", InstanceState::running);
  acquire_times(*running, 5);
  RouteTable table(RouteTable::Map{{"qwen", {starting, stopping, failed, running}}});

  InstancePtr picked = table.pick("qwen");

  ASSERT_NE(picked, nullptr) << "pick with one running instance";
  EXPECT_EQ(picked->id(), "running") << "picked instance";
}

TEST(RouteTable, PickWithoutRunningReturnsNull) {
  InstancePtr starting = make_instance("starting", "qwen", InstanceState::starting);
  InstancePtr failed = make_instance("error", "qwen", InstanceState::error);
  RouteTable table(RouteTable::Map{{"qwen", {starting, failed}}});

  EXPECT_EQ(table.pick("qwen"), nullptr) << "pick with no running instance";
}

TEST(RouteTable, PickUnknownDeploymentReturnsNull) {
  InstancePtr running = make_instance("running", "qwen", InstanceState::running);
  RouteTable table(RouteTable::Map{{"qwen", {running}}});

  EXPECT_EQ(table.pick("llama"), nullptr) << "pick for an unknown deployment";
  EXPECT_EQ(table.pick(""), nullptr) << "pick for an empty name";
  EXPECT_EQ(table.instances("llama"), nullptr) << "instances of an unknown deployment";
}

TEST(RouteTable, PickKeepsDeploymentsApart) {
  InstancePtr qwen = make_instance("qwen-1", "qwen", InstanceState::running);
  InstancePtr llama = make_instance("llama-1", "llama", InstanceState::running);
  acquire_times(*qwen, 4);
  RouteTable table(RouteTable::Map{{"qwen", {qwen}}, {"llama", {llama}}});

  InstancePtr picked = table.pick("qwen");

  ASSERT_NE(picked, nullptr);
  EXPECT_EQ(picked->id(), "qwen-1") << "picked for qwen";
}

TEST(MemoryRouteStore, StartsEmpty) {
  MemoryRouteStore store;

  std::shared_ptr<const RouteTable> table = store.snapshot();

  ASSERT_NE(table, nullptr) << "snapshot of a new store";
  EXPECT_TRUE(table->routes().empty()) << "routes of a new store";
}

TEST(MemoryRouteStore, AddGroupsByDeployment) {
  MemoryRouteStore store;
  store.add_instance(make_instance("q1", "qwen", InstanceState::running));
  store.add_instance(make_instance("l1", "llama", InstanceState::running));
  store.add_instance(make_instance("q2", "qwen", InstanceState::starting));

  std::shared_ptr<const RouteTable> table = store.snapshot();

  EXPECT_EQ(ids_of(table->instances("qwen")), (std::vector<std::string>{"q1", "q2"}))
      << "qwen instances";
  EXPECT_EQ(ids_of(table->instances("llama")), (std::vector<std::string>{"l1"}))
      << "llama instances";
  EXPECT_EQ(table->routes().size(), 2u) << "deployment count";
}

TEST(MemoryRouteStore, RemoveDropsInstance) {
  MemoryRouteStore store;
  InstancePtr first = make_instance("q1", "qwen", InstanceState::running);
  InstancePtr second = make_instance("q2", "qwen", InstanceState::running);
  store.add_instance(first);
  store.add_instance(second);

  store.remove_instance(*first);

  EXPECT_EQ(ids_of(store.snapshot()->instances("qwen")), (std::vector<std::string>{"q2"}))
      << "qwen instances after removing q1";
}

TEST(MemoryRouteStore, RemoveLastDropsDeployment) {
  MemoryRouteStore store;
  InstancePtr only = make_instance("q1", "qwen", InstanceState::running);
  store.add_instance(only);

  store.remove_instance(*only);

  EXPECT_EQ(store.snapshot()->instances("qwen"), nullptr) << "qwen after its last removal";
  EXPECT_TRUE(store.snapshot()->routes().empty()) << "routes after the last removal";
}

TEST(MemoryRouteStore, RemoveUnknownIsNoOp) {
  MemoryRouteStore store;
  InstancePtr stored = make_instance("q1", "qwen", InstanceState::running);
  store.add_instance(stored);
  // Same id and deployment, but a different handle.
  InstancePtr other = make_instance("q1", "qwen", InstanceState::running);
  InstancePtr elsewhere = make_instance("l1", "llama", InstanceState::running);

  store.remove_instance(*other);
  store.remove_instance(*elsewhere);

  EXPECT_EQ(ids_of(store.snapshot()->instances("qwen")), (std::vector<std::string>{"q1"}))
      << "qwen instances after removing handles that were never added";
}

TEST(MemoryRouteStore, OldSnapshotUnchangedByAdd) {
  MemoryRouteStore store;
  store.add_instance(make_instance("q1", "qwen", InstanceState::running));
  std::shared_ptr<const RouteTable> before = store.snapshot();

  store.add_instance(make_instance("q2", "qwen", InstanceState::running));
  store.add_instance(make_instance("l1", "llama", InstanceState::running));

  EXPECT_EQ(ids_of(before->instances("qwen")), (std::vector<std::string>{"q1"}))
      << "qwen instances in the old snapshot";
  EXPECT_EQ(before->instances("llama"), nullptr) << "llama in the old snapshot";
  EXPECT_EQ(ids_of(store.snapshot()->instances("qwen")),
            (std::vector<std::string>{"q1", "q2"}))
      << "qwen instances in the new snapshot";
}

TEST(MemoryRouteStore, OldSnapshotUnchangedByRemove) {
  MemoryRouteStore store;
  InstancePtr first = make_instance("q1", "qwen", InstanceState::running);
  store.add_instance(first);
  std::shared_ptr<const RouteTable> before = store.snapshot();

  store.remove_instance(*first);

  EXPECT_EQ(ids_of(before->instances("qwen")), (std::vector<std::string>{"q1"}))
      << "qwen instances in the old snapshot";
  InstancePtr picked = before->pick("qwen");
  ASSERT_NE(picked, nullptr) << "pick in the old snapshot";
  EXPECT_EQ(picked.get(), first.get()) << "picked handle in the old snapshot";
}

TEST(MemoryRouteStore, StateChangeVisibleInSnapshot) {
  MemoryRouteStore store;
  InstancePtr instance = make_instance("q1", "qwen", InstanceState::starting);
  store.add_instance(instance);
  std::shared_ptr<const RouteTable> table = store.snapshot();
  EXPECT_EQ(table->pick("qwen"), nullptr) << "pick while starting";

  instance->set_state(InstanceState::running);
  store.update_instance(*instance);

  EXPECT_EQ(table->pick("qwen"), instance) << "pick in the held snapshot once running";
  EXPECT_EQ(store.snapshot()->pick("qwen"), instance) << "pick in a new snapshot";
}

TEST(MemoryRouteStore, ConcurrentReadersSeeWholeTables) {
  constexpr int kWrites = 2000;
  MemoryRouteStore store;
  std::atomic<bool> done{false};
  std::atomic<int> torn{0};

  // The store erases a deployment with its last instance, so a published
  // table never contains an empty instance list. A reader that sees one has
  // seen a table while a writer was changing it.
  std::thread reader([&] {
    while (!done.load()) {
      std::shared_ptr<const RouteTable> table = store.snapshot();
      const std::vector<InstancePtr>* instances = table->instances("qwen");
      if (instances != nullptr && instances->empty()) {
        torn.fetch_add(1);
      }
    }
  });
  std::vector<InstancePtr> added;
  for (int i = 0; i < kWrites; ++i) {
    InstancePtr instance =
        make_instance("q" + std::to_string(i), "qwen", InstanceState::running);
    store.add_instance(instance);
    added.push_back(instance);
  }
  for (const InstancePtr& instance : added) {
    store.remove_instance(*instance);
  }
  done.store(true);
  reader.join();

  EXPECT_EQ(torn.load(), 0) << "snapshots with an empty qwen instance list";
  EXPECT_TRUE(store.snapshot()->routes().empty()) << "routes after removing everything";
}

}  // namespace
}  // namespace modelgate::routing
