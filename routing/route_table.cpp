#include "routing/route_table.hpp"

#include <algorithm>

namespace modelgate::routing {

std::string_view to_string(InstanceState state) {
  switch (state) {
    case InstanceState::starting:
      return "starting";
    case InstanceState::running:
      return "running";
    case InstanceState::stopping:
      return "stopping";
    case InstanceState::error:
      return "error";
  }
  return "unknown";
}

InstanceHandle::InstanceHandle(std::string id, std::string deployment,
                               std::string host, std::uint16_t port)
    : id_(std::move(id)),
      deployment_(std::move(deployment)),
      host_(std::move(host)),
      port_(port),
      started_at_(Clock::now()),
      last_used_(started_at_.time_since_epoch().count()) {}

bool InstanceHandle::try_acquire() {
  // Sequentially consistent on both sides: either this sees STOPPING, or
  // try_begin_stop() sees the count.
  in_flight_.fetch_add(1);
  if (state_.load() != InstanceState::running) {
    in_flight_.fetch_sub(1);
    return false;
  }
  last_used_.store(Clock::now().time_since_epoch().count());
  return true;
}

void InstanceHandle::release() {
  last_used_.store(Clock::now().time_since_epoch().count());
  in_flight_.fetch_sub(1);
}

bool InstanceHandle::try_begin_stop() {
  InstanceState expected = InstanceState::running;
  if (!state_.compare_exchange_strong(expected, InstanceState::stopping)) {
    return false;
  }
  if (in_flight_.load() != 0) {
    state_.store(InstanceState::running);
    return false;
  }
  return true;
}

InstanceHandle::Clock::time_point InstanceHandle::last_used() const {
  return Clock::time_point(Clock::duration(last_used_.load()));
}

void InstanceHandle::note_used_at(Clock::time_point when) {
  Clock::rep value = when.time_since_epoch().count();
  Clock::rep current = last_used_.load();
  while (current < value && !last_used_.compare_exchange_weak(current, value)) {
  }
}

InstancePtr RouteTable::pick(std::string_view deployment) const {
  auto found = routes_.find(deployment);
  if (found == routes_.end()) {
    return nullptr;
  }

  InstancePtr best;
  for (const InstancePtr& instance : found->second) {
    if (instance->state() != InstanceState::running) {
      continue;
    }
    if (!best || instance->in_flight() < best->in_flight()) {
      best = instance;
    }
  }
  return best;
}

const std::vector<InstancePtr>* RouteTable::instances(
    std::string_view deployment) const {
  auto found = routes_.find(deployment);
  return found == routes_.end() ? nullptr : &found->second;
}

awaitable<StartClaim> RouteStore::claim_start(std::string, std::chrono::milliseconds) {
  co_return StartClaim{true, 0, {}};
}

void RouteStore::release_start(const std::string&, const StartClaim&) {}

bool RouteStore::report_unreachable(const InstanceHandle&) { return false; }

void RouteStore::set_change_listener(ChangeListener) {}

void RouteStore::set_orphan_listener(OrphanListener) {}

awaitable<std::string> RouteStore::live_owner_of(std::string, std::string) {
  co_return std::string();
}

MemoryRouteStore::MemoryRouteStore()
    : table_(std::make_shared<const RouteTable>()) {}

std::shared_ptr<const RouteTable> MemoryRouteStore::snapshot() const {
  return table_.load();
}

void MemoryRouteStore::add_instance(InstancePtr instance) {
  modify([&](RouteTable::Map& routes) {
    routes[instance->deployment()].push_back(instance);
  });
}

void MemoryRouteStore::remove_instance(const InstanceHandle& instance) {
  modify([&](RouteTable::Map& routes) {
    auto found = routes.find(instance.deployment());
    if (found == routes.end()) {
      return;
    }
    std::erase_if(found->second, [&](const InstancePtr& candidate) {
      return candidate.get() == &instance;
    });
    if (found->second.empty()) {
      routes.erase(found);
    }
  });
}

void MemoryRouteStore::update_instance(const InstanceHandle&) {
  // The handle is shared with the table, so its state is already visible.
}

void MemoryRouteStore::modify(
    const std::function<void(RouteTable::Map&)>& change) {
  std::lock_guard lock(write_mutex_);
  RouteTable::Map routes = table_.load()->routes();
  change(routes);
  table_.store(std::make_shared<const RouteTable>(std::move(routes)));
}

}  // namespace modelgate::routing
