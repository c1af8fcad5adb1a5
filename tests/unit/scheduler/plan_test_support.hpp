#pragma once
// Helpers shared by the scheduler tests: example inventories, catalog models, plan lookups.

#include "model/catalog.hpp"
#include "model/node.hpp"
#include "scheduler/plan.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace openstation::scheduler::test {

inline const std::string kExamples = std::string(OPENSTATION_SOURCE_DIR) + "/examples/";

/// A node from examples/nodes/.
inline model::NodeSpec example_node(const std::string& file) {
  auto n = model::load_node_file(kExamples + "nodes/" + file);
  EXPECT_TRUE(n.has_value()) << file << ": " << (n ? "" : n.error().message);
  return n ? *n : model::NodeSpec{};
}

/// The nodes of a cluster from examples/clusters/.
inline std::vector<model::NodeSpec> example_cluster(const std::string& file) {
  auto c = model::load_cluster_file(kExamples + "clusters/" + file);
  EXPECT_TRUE(c.has_value()) << file << ": " << (c ? "" : c.error().message);
  return c ? c->nodes : std::vector<model::NodeSpec>{};
}

/// A built-in catalog model.
inline model::ModelInfo catalog_model(const std::string& id) {
  auto card = model::Catalog::builtin().find(id);
  EXPECT_TRUE(card.has_value()) << id;
  return card ? card->to_model_info() : model::ModelInfo{};
}

inline const PlanIssue* find_issue(const std::vector<PlanIssue>& v, const std::string& code) {
  auto it = std::find_if(v.begin(), v.end(), [&](const PlanIssue& i) { return i.code == code; });
  return it == v.end() ? nullptr : &*it;
}

inline const AppliedFix* find_fix(const Plan& p, const std::string& code) {
  auto it = std::find_if(p.applied_fixes.begin(), p.applied_fixes.end(),
                         [&](const AppliedFix& f) { return f.code == code; });
  return it == p.applied_fixes.end() ? nullptr : &*it;
}

/// True if `needle` appears in `argv` as consecutive tokens.
inline bool has_seq(const std::vector<std::string>& argv, const std::vector<std::string>& needle) {
  return std::search(argv.begin(), argv.end(), needle.begin(), needle.end()) != argv.end();
}

inline bool has_token(const std::vector<std::string>& argv, const std::string& t) {
  return std::find(argv.begin(), argv.end(), t) != argv.end();
}

inline std::string codes(const Plan& p) {
  std::string s;
  for (const auto& e : p.errors) s += "E:" + e.code + " " + e.message + "\n";
  for (const auto& w : p.warnings) s += "W:" + w.code + " " + w.message + "\n";
  for (const auto& f : p.applied_fixes) s += "F:" + f.code + " " + f.message + "\n";
  return s;
}

/// Runs make_plan, failing the test on a bad-input error.
inline Plan plan_of(const PlanRequest& req) {
  auto p = make_plan(req);
  EXPECT_TRUE(p.has_value()) << (p ? "" : p.error().code + ": " + p.error().message);
  return p ? *p : Plan{};
}

inline PlanRequest request(const std::string& model_id, std::vector<model::NodeSpec> nodes,
                           std::string args = {}) {
  PlanRequest r;
  r.model = catalog_model(model_id);
  r.nodes = std::move(nodes);
  r.extra_args = std::move(args);
  return r;
}

}  // namespace openstation::scheduler::test
