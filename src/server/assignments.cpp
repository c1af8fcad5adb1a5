// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames (awaitable_frame_base
// has its own operator new/delete); the frames are allocated and freed by the same pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include "server/assignments.hpp"

#include "core/json.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <set>

namespace openstation::server {
namespace json = boost::json;

namespace {

core::Error bad_assignment(std::string what) {
  return core::Error(core::Errc::internal, "server.bad_assignment",
                     "an instance's stored assignment is unreadable (" + std::move(what) +
                         "); it was not written by this version of OpenStation");
}

}  // namespace

std::string assignments_to_json(const InstanceAssignments& a) {
  json::object o;
  for (const auto& [node, assignment] : a) {
    o[node] = json::parse(agent::to_json(assignment));
  }
  return json::serialize(o);
}

core::Result<InstanceAssignments> parse_assignments(std::string_view text) {
  InstanceAssignments out;
  if (text.empty()) return out;
  json::value v;
  try {
    v = json::parse(text);
  } catch (const std::exception& e) {
    return bad_assignment(std::string("not JSON: ") + e.what());
  }
  if (!v.is_object()) return bad_assignment("not a JSON object");
  // Reuse the protocol's validation of each Assignment: parse them as one set, in key order.
  json::array list;
  std::vector<std::string> nodes;
  for (const auto& [node, a] : v.as_object()) {
    nodes.emplace_back(node);
    list.push_back(a);
  }
  auto set = agent::parse_assignment_set(
      json::serialize(json::object{{"generation", 0}, {"instances", std::move(list)}}));
  if (!set) return bad_assignment(set.error().message);
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    out[nodes[i]] = std::move(set->instances[i]);
  }
  return out;
}

std::string assignment_id(std::string_view instance_id, std::size_t rank, std::size_t nodes) {
  if (nodes <= 1) return std::string(instance_id);
  return std::string(instance_id) + ".r" + std::to_string(rank);
}

std::string instance_of_assignment(std::string_view id) {
  const auto dot = id.rfind(".r");
  if (dot == std::string_view::npos || dot + 2 >= id.size()) return std::string(id);
  const auto digits = id.substr(dot + 2);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::string(id);
  }
  return std::string(id.substr(0, dot));
}

// ---------------------------------------------------------------------------------------------

using Channel = boost::asio::experimental::concurrent_channel<void(boost::system::error_code)>;

struct AssignmentNotifier::Impl {
  struct Waiter {
    std::string node;
    std::shared_ptr<Channel> wake;
  };

  mutable std::mutex mutex;
  std::uint64_t base = 0;    // wall-clock milliseconds at construction
  std::uint64_t global = 0;  // notify_all() count
  std::map<std::string, std::uint64_t, std::less<>> per_node;
  std::vector<std::shared_ptr<Waiter>> waiters;
  bool stopped = false;

  std::uint64_t generation_locked(std::string_view node) const {
    const auto it = per_node.find(node);
    return base + global + (it == per_node.end() ? 0 : it->second);
  }

  void wake_locked(const std::string* node) {
    for (const auto& w : waiters) {
      if (node == nullptr || w->node == *node) w->wake->try_send(boost::system::error_code{});
    }
  }
};

AssignmentNotifier::AssignmentNotifier(const core::Clock& clock) : impl_(std::make_unique<Impl>()) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock.now().time_since_epoch());
  impl_->base = static_cast<std::uint64_t>(std::max<std::int64_t>(ms.count(), 1));
}

AssignmentNotifier::~AssignmentNotifier() {
  shutdown();
}

std::uint64_t AssignmentNotifier::generation(std::string_view node_id) const {
  std::lock_guard lock(impl_->mutex);
  return impl_->generation_locked(node_id);
}

void AssignmentNotifier::notify(std::string_view node_id) {
  std::lock_guard lock(impl_->mutex);
  const std::string node(node_id);
  ++impl_->per_node[node];
  impl_->wake_locked(&node);
}

void AssignmentNotifier::notify_all() {
  std::lock_guard lock(impl_->mutex);
  ++impl_->global;
  impl_->wake_locked(nullptr);
}

void AssignmentNotifier::shutdown() {
  std::lock_guard lock(impl_->mutex);
  impl_->stopped = true;
  impl_->wake_locked(nullptr);
}

http::Awaitable<std::uint64_t> AssignmentNotifier::wait_change(std::string node_id,
                                                               std::uint64_t known,
                                                               std::chrono::milliseconds timeout) {
  using namespace boost::asio::experimental::awaitable_operators;
  auto ex = co_await boost::asio::this_coro::executor;
  auto waiter = std::make_shared<Impl::Waiter>();
  waiter->node = node_id;
  waiter->wake = std::make_shared<Channel>(ex, 1);
  {
    std::lock_guard lock(impl_->mutex);
    const auto g = impl_->generation_locked(node_id);
    if (g != known || impl_->stopped || timeout.count() <= 0) co_return g;
    impl_->waiters.push_back(waiter);
  }
  // Unregisters on every way out, a coroutine destroyed at server shutdown included.
  struct Unregister {
    Impl& impl;
    std::shared_ptr<Impl::Waiter> waiter;
    ~Unregister() {
      std::lock_guard lock(impl.mutex);
      auto& ws = impl.waiters;
      ws.erase(std::remove(ws.begin(), ws.end(), waiter), ws.end());
    }
  } unregister{*impl_, waiter};
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    boost::asio::steady_timer timer(ex, deadline);
    co_await (waiter->wake->async_receive(boost::asio::as_tuple(boost::asio::use_awaitable)) ||
              timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable)));
    std::uint64_t g = 0;
    bool done = false;
    {
      std::lock_guard lock(impl_->mutex);
      g = impl_->generation_locked(node_id);
      done = g != known || impl_->stopped || std::chrono::steady_clock::now() >= deadline;
    }
    if (done) co_return g;
  }
}

}  // namespace openstation::server
