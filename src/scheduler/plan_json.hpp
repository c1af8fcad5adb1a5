#pragma once
/// JSON form of a Plan, shared by `openstation plan --json` and the REST API.

#include "scheduler/plan.hpp"

#include <boost/json/object.hpp>

namespace openstation::scheduler {

/// {engine, engine_version, tp, pp, model_path, served_name, engine_args [], nodes [{name, role,
/// address, argv [], commands [{name, argv []}], env {}, ports {}, gpus []}], applied_fixes [{code,
/// message}], warnings / errors [{code, message, node, gpu}], proposals [], estimate {...} | null,
/// ok}.
boost::json::object plan_to_json(const Plan& plan);

}  // namespace openstation::scheduler
