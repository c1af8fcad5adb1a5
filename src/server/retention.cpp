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
  // In chunks, each its own short transaction: a first pass over months of logs must not hold
  // the database (and so the API and the call-log writer) for minutes.
  auto cut = [&](auto& log, std::chrono::milliseconds keep,
                 std::size_t& removed) -> core::Result<void> {
    if (keep.count() <= 0) return {};
    for (;;) {
      auto n = log.remove_before(now - keep, options_.chunk);
      if (!n) return n.error();
      removed += *n;
      if (*n == 0 || stopping_.load()) return {};
    }
  };
  if (auto r = cut(store_.call_logs(), options_.call_logs, pass.call_logs); !r) return r.error();
  if (auto r = cut(store_.events(), options_.events, pass.events); !r) return r.error();
  return pass;
}

void Retention::start() {
  if (options_.call_logs.count() <= 0 && options_.events.count() <= 0) return;
  stopping_ = false;
  passes_.start("retention", options_.interval, [this] {
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
  stopping_ = true;  // a pass in progress ends after its current chunk
  passes_.stop();
}

}  // namespace openstation::server
