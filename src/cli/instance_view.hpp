#pragma once
/// How the client commands show instances (services show, services deploy, instances list/add).

#include "cli/table.hpp"

#include <boost/json/value.hpp>

#include <string>

namespace openstation::cli {

/// The instance table: ID, SERVICE, STATE, NODES, PORT, RESTARTS, AGE and REASON (the state
/// reason, else the pending reasons "node: message; ...").
Table instance_table(const boost::json::array& instances, bool with_service = true);

/// The reason text of an instance: its state_reason, else its pending reasons joined as
/// "node: message; node: message"; "" when it has neither.
std::string instance_reason(const boost::json::value& instance);

/// A one-line progress report: "instance ID: STATE (reason)", the reasons one per line below.
std::string instance_progress(const boost::json::value& instance);

}  // namespace openstation::cli
