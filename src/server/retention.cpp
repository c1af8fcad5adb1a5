#include "server/retention.hpp"

#include <spdlog/spdlog.h>

namespace openstation::server {

Retention::Retention(store::Store& store, const core::Clock& clock, Options options)
    : store_(store), clock_(clock), options_(options) {}

Retention::~Retention() {
  stop();
}

core::Result<Retention::Pass> Retention::run_once() {
  Pass pass;
  const auto now = clock_.now();
  if (options_.call_logs.count() > 0) {
    auto n = store_.call_logs().remove_before(now - options_.call_logs);
    if (!n) return n.error();
    pass.call_logs = *n;
  }
  if (options_.events.count() > 0) {
    auto n = store_.events().remove_before(now - options_.events);
    if (!n) return n.error();
    pass.events = *n;
  }
  return pass;
}

void Retention::start() {
  if (options_.call_logs.count() <= 0 && options_.events.count() <= 0) return;
  passes_.start(options_.interval, [this] {
    auto pass = run_once();
    if (!pass) {
      spdlog::warn("retention: deleting old call logs and events failed, will retry: {}",
                   pass.error().message);
      return;
    }
    if (pass->call_logs > 0 || pass->events > 0) {
      spdlog::info("retention: deleted {} call logs and {} events past their retention",
                   pass->call_logs, pass->events);
    }
  });
}

void Retention::stop() {
  passes_.stop();
}

}  // namespace openstation::server
