#include "agent/supervisor_plan.hpp"

#include <algorithm>
#include <set>

namespace openstation::agent {
namespace {

using Kind = Action::Kind;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

std::string seconds_text(milliseconds d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + " s";
  return std::to_string(d.count()) + " ms";
}

Action make(Kind k, const std::string& id) {
  Action a;
  a.kind = k;
  a.id = id;
  return a;
}

}  // namespace

Action crash_transition(const ObservedInstance& o, SteadyTime now, const SupervisorPolicy& p,
                        std::string reason) {
  const auto recent = static_cast<unsigned>(
      std::count_if(o.crash_times.begin(), o.crash_times.end(),
                    [&](SteadyTime t) { return now - t < p.crash_loop_window; }));
  const unsigned n = recent + 1;
  Action a = make(Kind::to_backoff, o.id);
  a.count_crash = true;
  if (n >= p.crash_loop_threshold) {
    a.kind = Kind::to_crash_loop;
    a.at = now + p.backoff_max;
    a.reason = std::move(reason) + "; " + std::to_string(n) + " crashes within " +
               seconds_text(p.crash_loop_window) + ", retrying every " +
               seconds_text(p.backoff_max);
  } else {
    const auto delay = backoff_delay(p, n);
    a.at = now + delay;
    a.reason = std::move(reason) + "; restarting in " + seconds_text(delay);
  }
  return a;
}

namespace {

bool probe_due(const ObservedInstance& o, SteadyTime now, milliseconds interval) {
  return !o.last_probe_at || now - *o.last_probe_at >= interval;
}

void plan_one(const DesiredInstance* d, const ObservedInstance& o, SteadyTime now,
              const SupervisorPolicy& p, std::vector<Action>& out) {
  const bool changed = d != nullptr && d->spec_hash != o.spec_hash;
  switch (o.state) {
    case InstanceState::stopping: {
      if (o.exit) {
        if (d == nullptr) {
          out.push_back(make(Kind::forget, o.id));
        } else if (o.stop_reason == StopReason::startup_timeout && !changed) {
          out.push_back(crash_transition(o, now, p, o.stop_detail));
        } else {
          out.push_back(make(Kind::launch, o.id));
        }
      } else if (!o.kill_sent && now - o.stop_sent_at >= p.stop_grace) {
        Action a = make(Kind::kill, o.id);
        a.reason = "still running " + seconds_text(p.stop_grace) + " after SIGTERM";
        out.push_back(std::move(a));
      }
      return;
    }
    case InstanceState::starting:
    case InstanceState::running:
    case InstanceState::unhealthy: {
      if (o.exit) {
        if (d == nullptr) {
          out.push_back(make(Kind::forget, o.id));
        } else if (o.state == InstanceState::starting && o.port_conflict) {
          Action a = make(Kind::to_backoff, o.id);
          a.at = now;
          a.new_port = true;
          a.reason = o.exit->describe() + " while starting: " + *o.port_conflict +
                     "; restarting on another port";
          out.push_back(std::move(a));
        } else {
          std::string what = o.exit->describe();
          if (o.state == InstanceState::starting) what += " while starting";
          out.push_back(crash_transition(o, now, p, std::move(what)));
        }
        return;
      }
      if (d == nullptr || changed) {
        Action a = make(Kind::terminate, o.id);
        a.stop_reason = d == nullptr ? StopReason::removed : StopReason::spec_changed;
        a.reason = d == nullptr ? "no longer desired" : "its specification changed";
        out.push_back(std::move(a));
        return;
      }
      if (o.state == InstanceState::starting) {
        if (!d->probed || (o.probe && o.probe->ready())) {
          out.push_back(make(Kind::to_running, o.id));
        } else if (now - o.state_since >= d->startup_timeout) {
          Action a = make(Kind::terminate, o.id);
          a.stop_reason = StopReason::startup_timeout;
          a.reason = "not ready within " + seconds_text(d->startup_timeout) + " (GET " +
                     d->health_path + ": " +
                     (o.probe ? o.probe->detail : std::string("no answer yet")) + ")";
          out.push_back(std::move(a));
        } else if (probe_due(o, now, p.startup_probe_interval)) {
          out.push_back(make(Kind::probe, o.id));
        }
        return;
      }
      if (!d->probed) return;
      if (o.probe && o.state == InstanceState::running && !o.probe->ready() &&
          o.probe_failures >= p.unhealthy_after) {
        Action a = make(Kind::to_unhealthy, o.id);
        a.reason = std::to_string(o.probe_failures) + " failed health checks (GET " +
                   d->health_path + ": " + o.probe->detail + ")";
        out.push_back(std::move(a));
        return;
      }
      if (o.probe && o.state == InstanceState::unhealthy && o.probe->ready()) {
        out.push_back(make(Kind::to_running, o.id));
        return;
      }
      if (probe_due(o, now, p.health_probe_interval)) out.push_back(make(Kind::probe, o.id));
      return;
    }
    case InstanceState::backoff:
    case InstanceState::crash_loop:
    case InstanceState::failed: {
      if (d == nullptr) {
        out.push_back(make(Kind::forget, o.id));
      } else if (changed || (o.state != InstanceState::failed && now >= o.next_start_at)) {
        out.push_back(make(Kind::launch, o.id));
      }
      return;
    }
  }
}

}  // namespace

std::string_view to_string(InstanceState s) noexcept {
  switch (s) {
    case InstanceState::starting: return "starting";
    case InstanceState::running: return "running";
    case InstanceState::unhealthy: return "unhealthy";
    case InstanceState::stopping: return "stopping";
    case InstanceState::backoff: return "backoff";
    case InstanceState::crash_loop: return "crash_loop";
    case InstanceState::failed: return "failed";
  }
  return "unknown";
}

std::string_view to_string(Action::Kind k) noexcept {
  switch (k) {
    case Kind::launch: return "launch";
    case Kind::probe: return "probe";
    case Kind::terminate: return "terminate";
    case Kind::kill: return "kill";
    case Kind::to_running: return "to_running";
    case Kind::to_unhealthy: return "to_unhealthy";
    case Kind::to_backoff: return "to_backoff";
    case Kind::to_crash_loop: return "to_crash_loop";
    case Kind::forget: return "forget";
  }
  return "unknown";
}

std::chrono::milliseconds backoff_delay(const SupervisorPolicy& p, unsigned crashes) {
  auto d = p.backoff_base;
  for (unsigned i = 1; i < crashes && d < p.backoff_max; ++i) d *= 2;
  return std::min(d, p.backoff_max);
}

std::vector<Action> plan(const std::map<std::string, DesiredInstance>& desired,
                         const std::vector<ObservedInstance>& observed, SteadyTime now,
                         const SupervisorPolicy& policy) {
  std::map<std::string, const ObservedInstance*> seen;
  for (const auto& o : observed) seen[o.id] = &o;
  std::set<std::string> ids;
  for (const auto& [id, d] : desired) ids.insert(id);
  for (const auto& [id, o] : seen) ids.insert(id);

  std::vector<Action> out;
  for (const auto& id : ids) {
    const auto d = desired.find(id);
    const DesiredInstance* dp = d == desired.end() ? nullptr : &d->second;
    const auto o = seen.find(id);
    if (o == seen.end()) {
      out.push_back(make(Kind::launch, id));
      continue;
    }
    plan_one(dp, *o->second, now, policy, out);
  }
  return out;
}

}  // namespace openstation::agent
