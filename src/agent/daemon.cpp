#include "agent/daemon.hpp"

#include "core/thread_name.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

namespace openstation::agent {

Daemon::Daemon(DaemonOptions options, Supervisor& supervisor,
               std::function<std::string()> inventory, const core::Clock& clock, ModelSync* sync)
    : options_(std::move(options)),
      supervisor_(supervisor),
      inventory_(std::move(inventory)),
      clock_(clock),
      sync_(sync),
      client_(options_.server_url, options_.request_timeout, options_.tls) {}

Daemon::~Daemon() {
  stop();
}

core::Result<NodeIdentity> Daemon::register_node() {
  if (options_.join_token.empty()) {
    return core::invalid("agent.no_join_token",
                         "this node has no identity in " +
                             identity_path(options_.data_dir).string() +
                             " and no join token; pass --token with the cluster's join token "
                             "(shown by the server's `nodes join-token`)",
                         "token");
  }
  RegisterRequest req;
  req.join_token = options_.join_token;
  req.name = options_.name;
  req.address = options_.address;
  req.api_port = options_.api_port;
  req.inventory_json = inventory_ ? inventory_() : std::string();
  auto id = client_.register_node(req);
  if (!id) return id.error();
  if (auto saved = save_identity(options_.data_dir, *id); !saved) return saved.error();
  spdlog::info("registered with {} as node {}", options_.server_url, id->node_id);
  return *id;
}

core::Result<RecoveryReport> Daemon::start() {
  auto loaded = load_identity(options_.data_dir);
  if (!loaded) return loaded.error();
  if (*loaded) {
    std::lock_guard lock(mutex_);
    identity_ = **loaded;
  } else {
    auto id = register_node();
    if (!id) {
      auto e = id.error();
      if (e.code != "agent.no_join_token") {
        e.message = "registering with " + options_.server_url + " failed: " + e.message;
      }
      return e;
    }
    std::lock_guard lock(mutex_);
    identity_ = *id;
  }
  auto report = supervisor_.recover();
  if (!report) return report.error();
  for (const auto& id : report->adopted) spdlog::info("adopted instance {}", id);
  for (const auto& id : report->gone)
    spdlog::info("instance {} ended while the agent was away", id);
  return report;
}

core::Result<void> Daemon::handle_unauthorized() {
  if (options_.join_token.empty()) {
    return core::Error(core::Errc::unauthorized, "agent.identity_rejected",
                       "the server at " + options_.server_url +
                           " refused this node's token (was the node removed?); restart the agent "
                           "with --token and the cluster's join token to join again");
  }
  spdlog::warn("the server refused node token; registering again with the join token");
  auto id = register_node();
  if (!id) return id.error();
  std::lock_guard lock(mutex_);
  identity_ = *id;
  generation_ = 0;
  return {};
}

InstanceReport Daemon::preparing_report(const std::string& id, const std::string& model_id) const {
  InstanceReport r;
  r.id = id;
  r.state = "preparing";
  const auto st = sync_ != nullptr ? sync_->status(model_id) : std::nullopt;
  if (st) {
    r.bytes_done = st->bytes_done;
    r.bytes_total = st->bytes_total;
    r.reason = st->reason;
  }
  if (r.reason.empty()) r.reason = "checking the model files of " + model_id + " on this node";
  return r;
}

HeartbeatRequest Daemon::build_heartbeat() const {
  HeartbeatRequest req;
  req.inventory_json = inventory_ ? inventory_() : std::string();
  std::set<std::string> seen;
  for (const auto& s : supervisor_.snapshot()) {
    req.instances.push_back(to_report(s));
    seen.insert(s.id);
  }
  std::lock_guard lock(mutex_);
  if (identity_) req.node_id = identity_->node_id;
  for (const auto& [id, r] : rejected_) {
    if (!seen.count(id)) req.instances.push_back(r);
  }
  for (const auto& [id, model_id] : preparing_) {
    if (!seen.count(id)) req.instances.push_back(preparing_report(id, model_id));
  }
  return req;
}

core::Result<HeartbeatResponse> Daemon::heartbeat_now() {
  const auto current = identity();
  if (!current) {
    return core::Error(core::Errc::unavailable, "agent.not_started",
                       "the agent has no identity yet");
  }
  auto req = build_heartbeat();
  auto r = client_.heartbeat(*current, req);
  if (!r && r.error().code == "agent.unauthorized") {
    if (auto again = handle_unauthorized(); !again) return again.error();
    req.node_id = identity()->node_id;
    r = client_.heartbeat(*identity(), req);
  }
  if (r) {
    std::lock_guard lock(mutex_);
    last_states_.clear();
    for (const auto& inst : req.instances) last_states_[inst.id] = inst.state;
    heartbeat_sent_ = true;
  }
  return r;
}

core::Result<bool> Daemon::watch_once(std::chrono::seconds wait) {
  auto current = identity();
  if (!current) {
    return core::Error(core::Errc::unavailable, "agent.not_started",
                       "the agent has no identity yet");
  }
  auto set = client_.watch(*current, generation(), wait);
  if (!set && set.error().code == "agent.unauthorized") {
    if (auto again = handle_unauthorized(); !again) return again.error();
    set = client_.watch(*identity(), generation(), wait);
  }
  if (!set) return set.error();

  if (auto applied = apply(*set); !applied) {
    // The set as a whole is invalid (a duplicate or bad id): keep running the previous set and
    // report the reason; the next poll brings the server's corrected set.
    return applied.error();
  }
  std::lock_guard lock(mutex_);
  const bool changed = set->generation != generation_;
  generation_ = set->generation;
  return changed;
}

core::Result<void> Daemon::apply(const AssignmentSet& set) {
  std::lock_guard apply_lock(apply_mutex_);
  const std::uint64_t sync_version = sync_ ? sync_->version() : 0;
  std::vector<InstanceSpec> specs;
  std::map<std::string, InstanceReport> rejected;
  std::map<std::string, std::string> preparing;
  std::map<std::string, InstanceSpec> applied;
  for (const auto& a : set.instances) {
    auto spec = to_spec(a, options_.engines);
    if (!spec) {
      InstanceReport r;
      r.id = a.id;
      r.state = "failed";
      r.reason = spec.error().message;
      rejected[a.id] = r;
      continue;
    }
    if (sync_ != nullptr && a.model_sync && !a.model_id.empty()) {
      const auto st = sync_->request(a.model_id, a.model_path);
      if (st.state == ModelSyncStatus::State::ready) {
        if (!st.local_path.empty()) {
          spec->argv = rewrite_model_path(std::move(spec->argv), a.model_path, st.local_path);
        }
      } else if (const auto prev = applied_.find(a.id); prev != applied_.end()) {
        *spec = prev->second;  // it runs already: keep it while its model is checked
      } else if (st.state == ModelSyncStatus::State::failed) {
        InstanceReport r;
        r.id = a.id;
        r.state = "failed";
        r.reason = st.reason;
        rejected[a.id] = r;
        continue;
      } else {
        preparing[a.id] = a.model_id;
        continue;
      }
    }
    applied[a.id] = *spec;
    specs.push_back(std::move(*spec));
  }
  if (auto r = supervisor_.reconcile(std::move(specs)); !r) return r.error();
  last_set_ = set;
  applied_ = std::move(applied);
  applied_sync_version_ = sync_version;
  std::lock_guard lock(mutex_);
  rejected_ = std::move(rejected);
  preparing_ = std::move(preparing);
  return {};
}

std::chrono::milliseconds Daemon::backoff(unsigned failures) const {
  auto d = options_.retry_base;
  for (unsigned i = 1; i < failures && d < options_.retry_max; ++i) d *= 2;
  return std::min(d, options_.retry_max);
}

bool Daemon::poll() {
  if (sync_ != nullptr) {
    std::optional<AssignmentSet> again;
    {
      std::lock_guard lock(apply_mutex_);
      if (last_set_ && sync_->version() != applied_sync_version_) again = last_set_;
    }
    if (again) {
      if (auto r = apply(*again); !r)
        spdlog::warn("applying the assignments: {}", r.error().message);
    }
  }
  supervisor_.tick();
  const auto now = clock_.steady_now();
  bool due = false;
  {
    std::lock_guard lock(mutex_);
    if (!identity_) return false;
    due = !heartbeat_sent_ || now >= next_heartbeat_;
    if (!due && heartbeat_failures_ == 0) {
      // A state transition is reported at once, not at the next interval.
      std::map<std::string, std::string> states;
      for (const auto& s : supervisor_.snapshot()) states[s.id] = std::string(to_string(s.state));
      for (const auto& [id, r] : rejected_) states.emplace(id, r.state);
      for (const auto& [id, _] : preparing_) states.emplace(id, "preparing");
      due = states != last_states_;
    }
  }
  if (!due) return false;
  auto r = heartbeat_now();
  std::lock_guard lock(mutex_);
  if (r) {
    heartbeat_failures_ = 0;
    last_error_.clear();
    next_heartbeat_ = now + options_.heartbeat_interval;
  } else {
    ++heartbeat_failures_;
    last_error_ = r.error().message;
    next_heartbeat_ = now + backoff(heartbeat_failures_);
    spdlog::warn("heartbeat failed ({}); retrying", r.error().message);
  }
  return true;
}

void Daemon::main_loop() {
  std::unique_lock lock(run_mutex_);
  while (!stopping_) {
    lock.unlock();
    poll();
    lock.lock();
    wake_.wait_for(lock, options_.loop_interval, [this] { return stopping_; });
  }
}

void Daemon::watch_loop() {
  std::unique_lock lock(run_mutex_);
  while (!stopping_) {
    lock.unlock();
    auto r = watch_once(options_.watch_wait);
    std::chrono::milliseconds pause{0};
    {
      std::lock_guard state(mutex_);
      if (r) {
        watch_failures_ = 0;
      } else {
        ++watch_failures_;
        last_error_ = r.error().message;
        pause = backoff(watch_failures_);
        spdlog::warn("watching assignments failed ({}); retrying in {} ms", r.error().message,
                     pause.count());
      }
    }
    if (r && *r) poll();  // report the new set's first transitions promptly
    lock.lock();
    if (pause.count() > 0) wake_.wait_for(lock, pause, [this] { return stopping_; });
  }
}

void Daemon::run() {
  std::lock_guard lock(run_mutex_);
  if (loop_thread_.joinable()) return;
  stopping_ = false;
  loop_thread_ = core::named_thread("agent-loop", [this] { main_loop(); });
  watch_thread_ = core::named_thread("agent-watch", [this] { watch_loop(); });
}

void Daemon::stop() {
  {
    std::lock_guard lock(run_mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (loop_thread_.joinable()) loop_thread_.join();
  if (watch_thread_.joinable()) watch_thread_.join();
}

std::optional<NodeIdentity> Daemon::identity() const {
  std::lock_guard lock(mutex_);
  return identity_;
}

std::string Daemon::node_token() const {
  std::lock_guard lock(mutex_);
  return identity_ ? identity_->node_token : std::string();
}

std::uint64_t Daemon::generation() const {
  std::lock_guard lock(mutex_);
  return generation_;
}

std::string Daemon::last_error() const {
  std::lock_guard lock(mutex_);
  return last_error_;
}

}  // namespace openstation::agent
