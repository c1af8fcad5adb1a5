#include "agent/supervisor.hpp"

#include "core/strings.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <ctime>

namespace openstation::agent {
namespace {

using Kind = Action::Kind;

bool valid_id(const std::string& id) {
  if (id.empty() || id.size() > 128 || id[0] == '.' || id[0] == '-') return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' || c == '-';
  });
}

void fnv(std::uint64_t& h, std::string_view s) {
  // Length first, so ("ab","c") and ("a","bc") differ.
  const std::string len = std::to_string(s.size()) + ":";
  for (char c : len) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
}

std::string wall_time_text(core::Clock::TimePoint t) {
  const auto secs = std::chrono::time_point_cast<std::chrono::seconds>(t);
  const std::time_t tt = secs.time_since_epoch().count();
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

std::uint64_t spec_hash(const InstanceSpec& spec) {
  std::uint64_t h = 14695981039346656037ull;
  fnv(h, "argv");
  for (const auto& a : spec.argv) fnv(h, a);
  fnv(h, "env");
  for (const auto& [k, v] : spec.env) {
    fnv(h, k);
    fnv(h, v);
  }
  fnv(h, "cwd");
  fnv(h, spec.working_dir.string());
  fnv(h, "ports");
  fnv(h, std::to_string(spec.ports));
  fnv(h, "health");
  fnv(h, spec.health_path);
  fnv(h, "startup");
  fnv(h, std::to_string(spec.startup_timeout.count()));
  return h;
}

std::string expand_ports(std::string_view text, const std::vector<std::uint16_t>& ports) {
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, 5, "{port") == 0) {
      const auto close = text.find('}', i + 5);
      if (close != std::string_view::npos) {
        const auto digits = text.substr(i + 5, close - i - 5);
        const bool numeric = std::all_of(digits.begin(), digits.end(), [](char c) {
          return std::isdigit(static_cast<unsigned char>(c)) != 0;
        });
        if (numeric && digits.size() <= 3) {
          const std::size_t n = digits.empty() ? 0 : std::stoul(std::string(digits));
          if (n < ports.size()) {
            out += std::to_string(ports[n]);
            i = close + 1;
            continue;
          }
        }
      }
    }
    out += text[i++];
  }
  return out;
}

Supervisor::Supervisor(SupervisorOptions options, ProcessLauncher& launcher, ReadinessProbe& probe,
                       PortChecker& ports, const core::Clock& clock)
    : options_(std::move(options)),
      launcher_(launcher),
      probe_(probe),
      checker_(ports),
      clock_(clock),
      allocator_(options_.ports, ports),
      store_(options_.data_dir / "supervisor" / "instances.json") {
  if (options_.log_dir.empty()) options_.log_dir = options_.data_dir / "logs";
}

Supervisor::~Supervisor() = default;

std::filesystem::path Supervisor::log_path(const std::string& id) const {
  return options_.log_dir / id / "engine.log";
}

core::Result<RecoveryReport> Supervisor::recover() {
  std::lock_guard lock(mutex_);
  auto records = store_.load();
  if (!records) return records.error();
  RecoveryReport report;
  const auto now = clock_.steady_now();
  for (const auto& r : *records) {
    ProcessHandle h{r.pid, r.start_time};
    if (!launcher_.alive(h) || instances_.count(r.id)) {
      // Its leader is gone: make sure nothing of its process group lingers.
      launcher_.signal_group(h, SIGKILL);
      report.gone.push_back(r.id);
      spdlog::info("supervisor: instance {} (pid {}) ended while the agent was away", r.id, r.pid);
      continue;
    }
    Instance inst;
    inst.obs.id = r.id;
    inst.obs.spec_hash = r.spec_hash;
    inst.obs.state_since = now;
    inst.proc = h;
    inst.has_process = true;
    inst.ports = r.ports;
    inst.health_path = r.health_path;
    inst.adopted = true;
    inst.launches = 1;
    inst.since = clock_.now();
    allocator_.reserve(r.id, r.ports);
    bool listening = r.ports.empty();
    if (!listening) {
      if (const auto owner = checker_.owner(r.ports.front())) {
        const auto st = read_proc_stat(owner->pid);
        listening = owner->pid == r.pid || (st && st->pgid == r.pid);
      }
    }
    if (!listening && !r.ports.empty() && !r.health_path.empty()) {
      listening = probe_.probe(r.ports.front(), r.health_path).ready();
    }
    inst.obs.state = listening ? InstanceState::running : InstanceState::starting;
    instances_.emplace(r.id, std::move(inst));
    report.adopted.push_back(r.id);
    spdlog::info("supervisor: adopted instance {} (pid {}, {})", r.id, r.pid,
                 listening ? "serving" : "not serving yet");
  }
  dirty_ = true;
  persist();
  return report;
}

core::Result<void> Supervisor::reconcile(std::vector<InstanceSpec> desired) {
  std::map<std::string, InstanceSpec> specs;
  std::map<std::string, DesiredInstance> plans;
  for (auto& s : desired) {
    if (!valid_id(s.id)) {
      return core::invalid("supervisor.bad_instance_id",
                           "instance id \"" + s.id +
                               "\" is not valid: use 1-128 letters, digits, '.', '_' or '-', "
                               "not starting with '.' or '-'",
                           "id");
    }
    if (s.argv.empty() || s.argv.front().empty()) {
      return core::invalid("supervisor.empty_argv", "instance " + s.id + " has no command", "argv");
    }
    if (!s.health_path.empty() && (s.health_path.front() != '/' || s.ports == 0)) {
      return core::invalid("supervisor.bad_health_path",
                           "instance " + s.id + ": the health path \"" + s.health_path +
                               "\" must start with '/' and the instance needs a port to probe",
                           "health_path");
    }
    DesiredInstance d;
    d.spec_hash = spec_hash(s);
    d.startup_timeout = s.startup_timeout;
    d.probed = !s.health_path.empty();
    d.health_path = s.health_path;
    const std::string id = s.id;
    if (!specs.emplace(id, std::move(s)).second) {
      return core::invalid("supervisor.duplicate_instance", "instance id " + id + " is given twice",
                           "id");
    }
    plans.emplace(id, d);
  }
  std::lock_guard lock(mutex_);
  desired_ = std::move(specs);
  desired_plan_ = std::move(plans);
  reconciled_ = true;
  return {};
}

void Supervisor::observe(Instance& inst) {
  if (!inst.has_process) return;
  const auto exit = launcher_.poll(inst.proc);
  if (!exit) return;
  inst.has_process = false;
  inst.obs.exit = exit;
  inst.last_exit = exit;
  dirty_ = true;
  if (inst.obs.state == InstanceState::starting) {
    for (auto port : inst.ports) {
      if (checker_.is_free(port)) continue;
      const auto owner = checker_.owner(port);
      inst.obs.port_conflict = "port " + std::to_string(port) + " is held by " +
                               (owner ? owner->describe() : std::string("another process"));
      break;
    }
  }
}

void Supervisor::tick() {
  std::lock_guard lock(mutex_);
  const auto now = clock_.steady_now();
  for (auto& [id, inst] : instances_) {
    observe(inst);
    if (auto r = rotate_if_needed(log_path(id), options_.logs); !r) {
      spdlog::warn("supervisor: {}", r.error().message);
    }
  }
  if (!reconciled_) {
    persist();
    return;
  }
  std::vector<ObservedInstance> observed;
  observed.reserve(instances_.size());
  for (const auto& [id, inst] : instances_) observed.push_back(inst.obs);
  const auto actions = plan(desired_plan_, observed, now, options_.policy);
  for (auto& [id, inst] : instances_) {
    inst.obs.exit.reset();
    inst.obs.port_conflict.reset();
    inst.obs.probe.reset();
  }
  for (const auto& a : actions) apply(a);
  persist();
}

void Supervisor::set_state(Instance& inst, InstanceState s) {
  if (inst.obs.state != s) {
    spdlog::info("supervisor: instance {}: {} → {}", inst.obs.id, to_string(inst.obs.state),
                 to_string(s));
  }
  inst.obs.state = s;
  inst.obs.state_since = clock_.steady_now();
  inst.since = clock_.now();
  dirty_ = true;
}

void Supervisor::note(const Instance& inst, const std::string& line) const {
  const auto path = log_path(inst.obs.id);
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  const std::string text =
      "--- openstation " + wall_time_text(clock_.now()) + ": " + line + " ---\n";
  [[maybe_unused]] const auto n = ::write(fd, text.data(), text.size());
  ::close(fd);
}

void Supervisor::enter_crash(Instance& inst, const std::string& reason) {
  const auto a = crash_transition(inst.obs, clock_.steady_now(), options_.policy, reason);
  apply(a);
}

void Supervisor::launch(Instance& inst, const InstanceSpec& spec) {
  const auto hash = spec_hash(spec);
  if (hash != inst.obs.spec_hash) inst.obs.crash_times.clear();
  inst.obs.spec_hash = hash;
  inst.health_path = spec.health_path;
  inst.adopted = false;

  bool reuse = inst.ports.size() == spec.ports;
  for (auto p : inst.ports) reuse = reuse && checker_.is_free(p);
  if (!reuse) {
    auto got = allocator_.allocate(spec.id, spec.ports, inst.avoid_ports);
    if (!got) {
      inst.ports.clear();
      enter_crash(inst, got.error().message);
      return;
    }
    inst.ports = *got;
  }
  LaunchRequest req;
  for (const auto& a : spec.argv) req.argv.push_back(expand_ports(a, inst.ports));
  for (const auto& [k, v] : spec.env) req.env.emplace_back(k, expand_ports(v, inst.ports));
  req.working_dir = spec.working_dir;
  req.log_file = log_path(spec.id);
  std::string ports_text;
  for (auto p : inst.ports) ports_text += (ports_text.empty() ? "" : ",") + std::to_string(p);
  note(inst, "starting " + core::join(req.argv, " ") +
                 (ports_text.empty() ? "" : " (port " + ports_text + ")"));
  auto h = launcher_.launch(req);
  ++inst.launches;
  if (!h) {
    note(inst, "cannot start: " + h.error().message);
    if (h.error().category == core::Errc::not_found ||
        h.error().category == core::Errc::invalid_argument) {
      inst.reason = h.error().message;
      inst.failure_log.clear();
      allocator_.release(spec.id);
      inst.ports.clear();
      set_state(inst, InstanceState::failed);
    } else {
      enter_crash(inst, h.error().message);
    }
    return;
  }
  inst.proc = *h;
  inst.has_process = true;
  inst.obs.last_probe_at.reset();
  inst.obs.probe_failures = 0;
  inst.obs.kill_sent = false;
  inst.obs.stop_detail.clear();
  inst.last_probe.reset();
  set_state(inst, InstanceState::starting);
}

void Supervisor::apply(const Action& a) {
  if (a.kind == Kind::launch && !instances_.count(a.id)) {
    Instance inst;
    inst.obs.id = a.id;
    inst.since = clock_.now();
    instances_.emplace(a.id, std::move(inst));
  }
  const auto it = instances_.find(a.id);
  if (it == instances_.end()) return;
  Instance& inst = it->second;
  const auto now = clock_.steady_now();
  switch (a.kind) {
    case Kind::launch: {
      const auto spec = desired_.find(a.id);
      if (spec != desired_.end()) launch(inst, spec->second);
      return;
    }
    case Kind::probe: {
      if (inst.ports.empty()) return;
      auto r = probe_.probe(inst.ports.front(), inst.health_path);
      inst.obs.probe_failures = r.ready() ? 0 : inst.obs.probe_failures + 1;
      inst.obs.last_probe_at = now;
      inst.last_probe = r;
      inst.obs.probe = std::move(r);
      return;
    }
    case Kind::terminate: {
      note(inst, "stopping: " + a.reason);
      launcher_.signal_group(inst.proc, SIGTERM);
      inst.obs.stop_reason = a.stop_reason;
      inst.obs.stop_sent_at = now;
      inst.obs.kill_sent = false;
      inst.obs.stop_detail = a.reason;
      inst.reason = a.reason;
      set_state(inst, InstanceState::stopping);
      return;
    }
    case Kind::kill: {
      note(inst, "SIGKILL: " + a.reason);
      launcher_.signal_group(inst.proc, SIGKILL);
      inst.obs.kill_sent = true;
      inst.reason += "; " + a.reason + ", killed";
      return;
    }
    case Kind::to_running: {
      inst.obs.probe_failures = 0;
      inst.reason.clear();
      set_state(inst, InstanceState::running);
      return;
    }
    case Kind::to_unhealthy: {
      inst.reason = a.reason;
      set_state(inst, InstanceState::unhealthy);
      return;
    }
    case Kind::to_backoff:
    case Kind::to_crash_loop: {
      if (a.count_crash) {
        auto& times = inst.obs.crash_times;
        times.push_back(now);
        const auto window = options_.policy.crash_loop_window;
        times.erase(std::remove_if(times.begin(), times.end(),
                                   [&](SteadyTime t) { return now - t >= window; }),
                    times.end());
      }
      if (a.new_port) {
        inst.avoid_ports.insert(inst.ports.begin(), inst.ports.end());
        allocator_.release(a.id);
        inst.ports.clear();
      }
      inst.reason = a.reason;
      inst.failure_log = tail_lines(log_path(a.id), options_.failure_log_lines);
      inst.obs.next_start_at = a.at;
      note(inst, a.reason);
      set_state(inst,
                a.kind == Kind::to_backoff ? InstanceState::backoff : InstanceState::crash_loop);
      return;
    }
    case Kind::forget: {
      allocator_.release(a.id);
      spdlog::info("supervisor: instance {} stopped", a.id);
      note(inst, "stopped");
      instances_.erase(it);
      dirty_ = true;
      return;
    }
  }
}

void Supervisor::persist() {
  if (!dirty_) return;
  std::vector<InstanceRecord> records;
  for (const auto& [id, inst] : instances_) {
    if (!inst.has_process) continue;
    InstanceRecord r;
    r.id = id;
    r.pid = inst.proc.pid;
    r.start_time = inst.proc.start_time;
    r.ports = inst.ports;
    r.spec_hash = inst.obs.spec_hash;
    r.health_path = inst.health_path;
    r.log_file = log_path(id);
    records.push_back(std::move(r));
  }
  if (auto r = store_.save(records); !r) {
    spdlog::error("supervisor: {}", r.error().message);
    return;
  }
  dirty_ = false;
}

InstanceStatus Supervisor::to_status(const std::string& id, const Instance& inst) const {
  InstanceStatus s;
  s.id = id;
  s.state = inst.obs.state;
  s.pid = inst.has_process ? inst.proc.pid : 0;
  s.ports = inst.ports;
  s.spec_hash = inst.obs.spec_hash;
  s.adopted = inst.adopted;
  s.restarts = inst.launches > 0 ? inst.launches - 1 : 0;
  s.since = inst.since;
  s.last_exit = inst.last_exit;
  s.reason = inst.reason;
  s.last_log_lines = inst.failure_log;
  s.last_probe = inst.last_probe;
  s.log_file = log_path(id);
  return s;
}

std::vector<InstanceStatus> Supervisor::snapshot() const {
  std::lock_guard lock(mutex_);
  std::vector<InstanceStatus> out;
  for (const auto& [id, inst] : instances_) out.push_back(to_status(id, inst));
  return out;
}

std::optional<InstanceStatus> Supervisor::status(const std::string& id) const {
  std::lock_guard lock(mutex_);
  const auto it = instances_.find(id);
  if (it == instances_.end()) return std::nullopt;
  return to_status(id, it->second);
}

bool Supervisor::idle() const {
  std::lock_guard lock(mutex_);
  return instances_.empty();
}

std::filesystem::path Supervisor::log_file(const std::string& id) const {
  return log_path(id);
}

std::vector<std::string> Supervisor::tail(const std::string& id, std::size_t n) const {
  return tail_lines(log_path(id), n);
}

SupervisorRunner::SupervisorRunner(Supervisor& supervisor, std::chrono::milliseconds interval) {
  ticks_.start("supervisor", interval, [&supervisor] { supervisor.tick(); });
}

SupervisorRunner::~SupervisorRunner() {
  stop();
}

void SupervisorRunner::stop() {
  ticks_.stop();
}

}  // namespace openstation::agent
