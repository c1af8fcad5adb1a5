#pragma once
/// JSON form of an Estimate, shared by `openstation estimate --json` and the REST API.

#include "model/estimator.hpp"

#include <boost/json/object.hpp>

namespace openstation::model {

/// Every field of the Estimate under its snake_case name; `fits` is null when there was no node
/// (no verdict), problems are [{code, message}].
boost::json::object estimate_to_json(const Estimate& e);

}  // namespace openstation::model
