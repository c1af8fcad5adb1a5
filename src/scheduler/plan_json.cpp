#include "scheduler/plan_json.hpp"

#include "model/estimator_json.hpp"

#include <boost/json.hpp>

namespace openstation::scheduler {
namespace {

boost::json::array strings(const std::vector<std::string>& v) {
  boost::json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

boost::json::array issues(const std::vector<PlanIssue>& v) {
  boost::json::array a;
  for (const auto& i : v) {
    boost::json::object o;
    o["code"] = i.code;
    o["message"] = i.message;
    o["node"] = i.node.empty() ? boost::json::value(nullptr) : boost::json::value(i.node);
    o["gpu"] = i.gpu ? boost::json::value(*i.gpu) : boost::json::value(nullptr);
    a.emplace_back(std::move(o));
  }
  return a;
}

}  // namespace

boost::json::object plan_to_json(const Plan& plan) {
  boost::json::object o;
  o["engine"] = std::string(core::to_string(plan.engine));
  o["engine_version"] = plan.engine_version;
  o["tp"] = plan.tp;
  o["pp"] = plan.pp;
  o["model_path"] = plan.model_path;
  o["served_name"] = plan.served_name;
  o["engine_args"] = strings(plan.engine_args);
  boost::json::array nodes;
  for (const auto& n : plan.nodes) {
    boost::json::object no;
    no["name"] = n.name;
    no["role"] = n.role;
    no["address"] = n.address;
    no["argv"] = strings(n.argv);
    boost::json::array cmds;
    for (const auto& c : n.commands) {
      cmds.emplace_back(boost::json::object{{"name", c.name}, {"argv", strings(c.argv)}});
    }
    no["commands"] = std::move(cmds);
    boost::json::object env;
    for (const auto& [k, v] : n.env) env[k] = v;
    no["env"] = std::move(env);
    boost::json::object ports;
    for (const auto& [k, v] : n.ports) ports[k] = v;
    no["ports"] = std::move(ports);
    boost::json::array gpus;
    for (int g : n.gpus) gpus.emplace_back(g);
    no["gpus"] = std::move(gpus);
    nodes.emplace_back(std::move(no));
  }
  o["nodes"] = std::move(nodes);
  boost::json::array fixes;
  for (const auto& f : plan.applied_fixes) {
    fixes.emplace_back(boost::json::object{{"code", f.code}, {"message", f.message}});
  }
  o["applied_fixes"] = std::move(fixes);
  o["warnings"] = issues(plan.warnings);
  o["errors"] = issues(plan.errors);
  o["proposals"] = strings(plan.proposals);
  o["estimate"] = plan.estimate ? boost::json::value(model::estimate_to_json(*plan.estimate))
                                : boost::json::value(nullptr);
  o["ok"] = plan.ok;
  return o;
}

}  // namespace openstation::scheduler
