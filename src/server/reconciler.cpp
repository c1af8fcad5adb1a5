#include "server/reconciler.hpp"

#include "agent/model_inspect.hpp"
#include "core/thread_name.hpp"
#include "model/catalog.hpp"
#include "server/api/detail/nodes.hpp"

#include <spdlog/spdlog.h>
#include <boost/json.hpp>

#include <algorithm>

namespace openstation::server {
namespace {

namespace json = boost::json;
using store::InstanceState;

template <class T, class F>
core::Result<std::vector<T>> list_all(F&& list) {
  auto page = list(store::PageRequest{0, {}});
  if (!page) return page.error();
  return std::move(page->items);
}

}  // namespace

bool service_deleting(const store::Service& s) {
  if (s.spec_json.empty()) return false;
  boost::system::error_code ec;
  auto v = json::parse(s.spec_json, ec);
  if (ec || !v.is_object()) return false;
  const auto* d = v.as_object().if_contains("deleting");
  return d != nullptr && d->is_bool() && d->as_bool();
}

std::string mark_deleting(const std::string& spec_json) {
  json::object o;
  if (!spec_json.empty()) {
    boost::system::error_code ec;
    auto v = json::parse(spec_json, ec);
    if (!ec && v.is_object()) o = v.as_object();
  }
  o["deleting"] = true;
  return json::serialize(o);
}

std::string engine_name_for(const std::map<std::string, config::EngineConfig>& engines,
                            core::EngineKind kind) {
  const std::string name(core::to_string(kind));
  if (engines.contains(name)) return name;
  for (const auto& [n, e] : engines) {
    if (e.kind == kind) return n;
  }
  return name;
}

core::Result<scheduler::PlacementRequest> placement_request(
    store::Store& store, const store::Service& service,
    const std::map<std::string, config::EngineConfig>& engines) {
  scheduler::PlacementRequest req;
  auto m = store.models().get(service.model_id);
  if (!m) return m.error();
  if (m->status != store::ModelStatus::ready) {
    return core::Error{core::Errc::unavailable, "service.model_not_ready",
                       "model " + m->name + " is " + std::string(store::to_string(m->status)) +
                           (m->status_reason.empty() ? "" : " (" + m->status_reason + ")") +
                           "; instances wait until it is ready"};
  }
  if (!m->meta_json.empty()) {
    auto info = agent::parse_model_info_json(m->meta_json);
    if (!info) {
      return core::Error{
          core::Errc::internal, "service.model_unknown",
          "model " + m->name + ": its stored facts cannot be read (" + info.error().message + ")"};
    }
    req.model = std::move(*info);
    req.model.id = m->name;
    req.model_path = m->path;
  } else {
    const auto catalog = model::Catalog::builtin();
    std::optional<model::ModelCard> card;
    for (const auto& c : catalog.cards()) {
      if ((!m->repo.empty() && (c.hf_repo == m->repo || c.ms_repo == m->repo)) || c.id == m->name) {
        card = c;
        break;
      }
    }
    if (!card) {
      return core::Error{core::Errc::unavailable, "service.model_unknown",
                         "model " + m->name +
                             " has no architecture facts (not a catalog model and not inspected "
                             "by an agent); import it again"};
    }
    req.model = card->to_model_info();
    req.model_path = !m->path.empty() ? m->path : (!m->repo.empty() ? m->repo : card->hf_repo);
  }
  if (!service.engine.empty()) {
    if (auto it = engines.find(service.engine); it != engines.end()) {
      req.engine = it->second.kind;
    } else if (auto k = core::parse_engine_kind(service.engine)) {
      req.engine = *k;
    } else {
      return core::Error{core::Errc::invalid_argument, "service.engine_unknown",
                         "engine " + service.engine + " is not configured on this server"};
    }
    if (service.engine_version.empty()) {
      if (auto it = engines.find(service.engine); it != engines.end()) {
        req.engine_version = it->second.version;
      }
    }
  }
  if (!service.engine_version.empty()) req.engine_version = service.engine_version;
  req.extra_args = service.extra_args;
  req.served_name = service.name;
  req.nodes = service.placement;
  return req;
}

Reconciler::Reconciler(store::Store& store, const core::Clock& clock, AssignmentNotifier& notifier,
                       InFlightSource& in_flight, Options options)
    : store_(store),
      clock_(clock),
      notifier_(notifier),
      in_flight_(in_flight),
      options_(std::move(options)) {}

Reconciler::~Reconciler() {
  stop();
}

void Reconciler::trigger() {
  {
    std::lock_guard lock(mutex_);
    triggered_ = true;
  }
  wake_.notify_all();
}

std::uint64_t Reconciler::rounds() const {
  std::lock_guard lock(mutex_);
  return rounds_;
}

void Reconciler::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = core::named_thread("reconciler", [this] {
    std::unique_lock held(mutex_);
    while (!stopping_) {
      triggered_ = false;
      held.unlock();
      if (auto r = run_once(); !r) {
        spdlog::warn("reconciler: {}", r.error().message);
      } else {
        for (const auto& e : r->errors) spdlog::warn("reconciler: {}", e);
      }
      held.lock();
      ++rounds_;
      wake_.notify_all();
      wake_.wait_for(held, options_.interval, [this] { return stopping_ || triggered_; });
    }
  });
}

void Reconciler::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Reconciler::event(std::string_view action, std::string_view kind, std::string_view id,
                       const std::string& detail) {
  store::Event e;
  e.actor = "system";
  e.action = std::string(action);
  e.target_kind = std::string(kind);
  e.target_id = std::string(id);
  e.detail_json = detail;
  if (auto r = store_.events().append(std::move(e)); !r) {
    spdlog::warn("reconciler: audit event {} {}: {}", action, id, r.error().message);
  }
}

core::Result<Reconciler::Round> Reconciler::run_once() {
  std::lock_guard round_lock(round_mutex_);
  auto services = list_all<store::Service>(
      [&](const store::PageRequest& p) { return store_.services().list({}, p); });
  if (!services) return services.error();
  auto instances = list_all<store::Instance>(
      [&](const store::PageRequest& p) { return store_.instances().list({}, p); });
  if (!instances) return instances.error();
  auto nodes = list_all<store::Node>(
      [&](const store::PageRequest& p) { return store_.nodes().list({}, p); });
  if (!nodes) return nodes.error();

  ReconcileInput in;
  in.now = clock_.now();
  in.timings = options_.timings;
  for (const auto& [name, e] : options_.engines) in.engine_kinds[name] = e.kind;
  std::set<std::string> not_ready;
  for (const auto& n : *nodes) {
    ObservedNode o;
    o.node = n;
    if (auto spec = api_detail::node_spec(n)) o.spec = std::move(*spec);
    if (!node_ready(n, in.now, in.timings.node_timeout)) not_ready.insert(n.id);
    in.nodes.push_back(std::move(o));
  }
  std::map<std::string, store::Service> by_id;
  for (const auto& s : *services) {
    by_id[s.id] = s;
    DesiredService d;
    d.service = s;
    d.deleting = service_deleting(s);
    if (!d.deleting) {
      if (auto r = placement_request(store_, s, options_.engines)) {
        d.request = std::move(*r);
      } else {
        d.unresolved = r.error().message;
      }
    }
    in.services.push_back(std::move(d));
  }
  std::map<std::string, Seen> seen;
  for (const auto& i : *instances) {
    const auto cond = condition_of(i, not_ready);
    auto it = seen_.find(i.id);
    Seen s = it != seen_.end() && it->second.condition == cond ? it->second : Seen{cond, in.now};
    in.since[i.id] = s.since;
    seen[i.id] = s;
    if (i.state == InstanceState::draining) in.in_flight[i.id] = in_flight_.in_flight(i.id);
  }
  seen_ = std::move(seen);
  in.instances = std::move(*instances);

  Round round;
  round.actions = plan_reconcile(in);
  for (const auto& a : round.actions) {
    std::set<std::string> notify;
    if (auto r = apply(a, by_id, notify); !r) {
      round.errors.push_back(std::string(to_string(a.kind)) + " " +
                             (a.instance_id.empty() ? a.service_id : a.instance_id) + ": " +
                             r.error().message);
      continue;
    }
    ++round.applied;
    for (const auto& n : notify) {
      notifier_.notify(n);
      round.notified.insert(n);
    }
  }
  return round;
}

core::Result<void> Reconciler::apply(const Action& a,
                                     const std::map<std::string, store::Service>& services,
                                     std::set<std::string>& notify) {
  const store::Service* svc =
      services.contains(a.service_id) ? &services.at(a.service_id) : nullptr;
  std::set<std::string> touched;
  std::string created_id;

  auto assignment_options = [&](store::Store& tx) {
    AssignmentOptions o;
    if (svc) {
      // A model without a node lives on the server's model store (a hub download): nodes that
      // do not share that storage pull its files before the launch.
      if (auto m = tx.models().get(svc->model_id)) {
        o.model_id = m->id;
        o.model_sync = !m->node_id && !m->path.empty();
      }
    }
    o.engine_name = svc && !svc->engine.empty()
                        ? svc->engine
                        : engine_name_for(options_.engines, a.placement->plan.engine);
    if (auto e = options_.engines.find(o.engine_name); e != options_.engines.end()) {
      o.health_path = e->second.health_path;
    }
    o.startup_timeout_s = options_.startup_timeout_s;
    return o;
  };
  // A new instance (create, or the second half of replace), placed or pending.
  auto create = [&](store::Store& tx) -> core::Result<void> {
    store::Instance i;
    i.service_id = a.service_id;
    i.state = a.placement ? InstanceState::scheduled : InstanceState::pending;
    i.state_reason = a.placement ? "" : a.reason;
    auto made = tx.instances().create(i);
    if (!made) return made.error();
    created_id = made->id;
    if (a.placement) {
      const auto o = assignment_options(tx);
      made->node_ids = a.placement->node_ids;
      made->assignment_json =
          assignments_to_json(build_assignments(made->id, svc ? svc->name : "", *a.placement, o));
      auto up = tx.instances().update(*made);
      if (!up) return up.error();
      touched.insert(a.placement->node_ids.begin(), a.placement->node_ids.end());
    }
    return {};
  };
  // The stored instance, still in one of `states`; nullopt when it moved on (nothing to do).
  auto current = [&](store::Store& tx, std::initializer_list<InstanceState> states)
      -> core::Result<std::optional<store::Instance>> {
    auto i = tx.instances().get(a.instance_id);
    if (!i) {
      if (i.error().code == "store.not_found") return std::optional<store::Instance>{};
      return i.error();
    }
    if (std::find(states.begin(), states.end(), i->state) == states.end()) {
      return std::optional<store::Instance>{};
    }
    return std::optional<store::Instance>{std::move(*i)};
  };

  std::string action;
  json::object detail{{"reason", a.reason}, {"service", a.service_id}};
  auto r = store_.transaction([&](store::Store& tx) -> core::Result<void> {
    switch (a.kind) {
      case ActionKind::create: action = "instance.create"; return create(tx);
      case ActionKind::place: {
        auto i = current(tx, {InstanceState::pending});
        if (!i) return i.error();
        if (!*i) return {};
        auto& inst = **i;
        const auto o = assignment_options(tx);
        inst.state = InstanceState::scheduled;
        inst.state_reason.clear();
        inst.node_ids = a.placement->node_ids;
        inst.assignment_json =
            assignments_to_json(build_assignments(inst.id, svc ? svc->name : "", *a.placement, o));
        auto up = tx.instances().update(inst);
        if (!up) return up.error();
        touched.insert(inst.node_ids.begin(), inst.node_ids.end());
        action = "instance.schedule";
        return {};
      }
      case ActionKind::keep_pending: {
        auto i = current(tx, {InstanceState::pending});
        if (!i) return i.error();
        if (!*i || (*i)->state_reason == a.reason) return {};
        (*i)->state_reason = a.reason;
        auto up = tx.instances().update(**i);
        if (!up) return up.error();
        return {};
      }
      case ActionKind::mark_unhealthy: {
        auto i = current(tx, {InstanceState::scheduled, InstanceState::preparing,
                              InstanceState::starting, InstanceState::running});
        if (!i) return i.error();
        if (!*i) return {};
        (*i)->state = InstanceState::unhealthy;
        (*i)->state_reason = a.reason;
        auto up = tx.instances().update(**i);
        if (!up) return up.error();
        action = "instance.unhealthy";
        return {};
      }
      case ActionKind::replace: {
        auto old = tx.instances().get(a.instance_id);
        if (!old) return old.error();
        if (auto rm = tx.instances().remove(a.instance_id); !rm) return rm.error();
        touched.insert(old->node_ids.begin(), old->node_ids.end());
        detail["replaced"] = a.instance_id;
        action = "instance.replace";
        return create(tx);
      }
      case ActionKind::drain: {
        auto i = current(
            tx, {InstanceState::scheduled, InstanceState::preparing, InstanceState::starting,
                 InstanceState::running, InstanceState::unhealthy});
        if (!i) return i.error();
        if (!*i) return {};
        (*i)->state = InstanceState::draining;
        (*i)->state_reason = a.reason;
        auto up = tx.instances().update(**i);
        if (!up) return up.error();
        action = "instance.drain";
        return {};
      }
      case ActionKind::remove: {
        auto i = tx.instances().get(a.instance_id);
        if (!i) return i.error().code == "store.not_found" ? core::Result<void>{} : i.error();
        if (auto rm = tx.instances().remove(a.instance_id); !rm) return rm.error();
        touched.insert(i->node_ids.begin(), i->node_ids.end());
        action = "instance.remove";
        return {};
      }
      case ActionKind::delete_service: {
        auto rm = tx.services().remove(a.service_id);
        if (!rm && rm.error().code != "store.not_found") return rm.error();
        action = "service.deleted";
        return {};
      }
    }
    return {};
  });
  if (!r) return r;
  notify.insert(touched.begin(), touched.end());
  if (!action.empty()) {
    const bool about_service = a.kind == ActionKind::delete_service;
    std::string id =
        about_service ? a.service_id : (!created_id.empty() ? created_id : a.instance_id);
    if (svc) detail["service_name"] = svc->name;
    if (a.placement) {
      json::array nodes;
      for (const auto& n : a.placement->node_ids) nodes.emplace_back(n);
      detail["nodes"] = std::move(nodes);
    }
    event(action, about_service ? "service" : "instance", id, json::serialize(detail));
  }
  return {};
}

}  // namespace openstation::server
