#pragma once
/// The inventory as JSON (kept apart from inventory.hpp so only callers that emit JSON pay for
/// Boost.JSON).

#include "agent/inventory.hpp"

#include <boost/json/value.hpp>

namespace openstation::agent {

/// {"node": <exactly the node-file format of model::node_to_json>, "host": {...},
///  "probe": "nvml", "warnings": [...]}. The "node" member can be saved and used as a --node file.
boost::json::value inventory_to_json(const Inventory& inventory);

}  // namespace openstation::agent
