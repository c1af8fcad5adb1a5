#include "cli/instance_view.hpp"

#include <boost/json.hpp>

#include <cstdio>

namespace openstation::cli {

namespace {

std::string pending_reasons(const boost::json::value& instance, std::string_view sep) {
  const auto* o = instance.if_object();
  const auto* reasons = o ? o->if_contains("pending_reasons") : nullptr;
  if (!reasons || !reasons->is_array()) return "";
  std::string out;
  for (const auto& r : reasons->get_array()) {
    const std::string node = str_field(r, "node");
    const std::string message = str_field(r, "message");
    if (message.empty()) continue;
    if (!out.empty()) out += sep;
    out += node.empty() ? message : node + ": " + message;
  }
  return out;
}

/// The state, with the model pull's percentage while preparing ("preparing 35.2%").
std::string state_cell(const boost::json::value& instance) {
  std::string state = cell(instance, "state");
  const auto* o = instance.if_object();
  const auto* p = o ? o->if_contains("progress") : nullptr;
  if (p == nullptr || !p->is_object()) return state;
  const auto* pct = p->as_object().if_contains("percent");
  if (pct == nullptr || !pct->is_number()) return state;
  char buf[32];
  std::snprintf(buf, sizeof buf, " %.1f%%", pct->to_number<double>());
  return state + buf;
}

}  // namespace

std::string instance_reason(const boost::json::value& instance) {
  const std::string reason = str_field(instance, "state_reason");
  if (!reason.empty()) return reason;
  return pending_reasons(instance, "; ");
}

Table instance_table(const boost::json::array& instances, bool with_service) {
  std::vector<std::string> headers = {"ID",   "SERVICE",  "STATE", "NODES",
                                      "PORT", "RESTARTS", "AGE",   "REASON"};
  if (!with_service) headers.erase(headers.begin() + 1);
  Table t(headers);
  const std::size_t shift = with_service ? 0 : 1;
  t.align(4 - shift, Table::Align::right);
  t.align(5 - shift, Table::Align::right);
  for (const auto& i : instances) {
    std::vector<std::string> row = {cell(i, "id"),
                                    cell(i, "service"),
                                    state_cell(i),
                                    cell(i, "nodes"),
                                    cell(i, "port"),
                                    cell(i, "restarts"),
                                    human_time(str_field(i, "created_at")),
                                    instance_reason(i)};
    if (!with_service) row.erase(row.begin() + 1);
    t.add(std::move(row));
  }
  return t;
}

std::string instance_progress(const boost::json::value& instance) {
  std::string line = "instance " + cell(instance, "id") + ": " + state_cell(instance);
  // The per-node reasons say more than the summary in state_reason; show one or the other.
  const std::string pending = pending_reasons(instance, "\n  ");
  const std::string reason = str_field(instance, "state_reason");
  if (pending.empty() && !reason.empty()) line += " (" + reason + ")";
  line += "\n";
  if (!pending.empty()) line += "  " + pending + "\n";
  return line;
}

}  // namespace openstation::cli
