#pragma once
/// Private helpers shared by the node and model route groups: looking a node up by id or name,
/// the API's node object (with the GPUs, CPU, memory and disk of its last inventory), and the
/// node's inventory as the planner's NodeSpec. Store functions block: call them on the worker
/// pool.

#include "core/error.hpp"
#include "http/message.hpp"
#include "model/node.hpp"
#include "store/store.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::server::api_detail {

/// The node whose id or name is `id_or_name`. Error "node.not_found" (404, field `field`), with a
/// did-you-mean among the node names.
core::Result<store::Node> find_node(store::Store& s, std::string_view id_or_name,
                                    std::string_view field = "id");

/// The node a request's "Authorization: Bearer <node token>" belongs to (the agent protocol's
/// authentication). Error "node.bad_token" (401) for a missing, malformed or unknown token.
core::Result<store::Node> node_of_token(store::Store& s, const http::Request& req);

/// The stored inventory as JSON, or nullopt when the node has sent none (or it is unreadable).
std::optional<boost::json::value> node_inventory(const store::Node& n);

/// The API's node object: {"id", "name", "address", "agent_port", "status", "status_reason",
/// "labels", "last_heartbeat_at", "created_at", "updated_at", "type", "gpus": [...], "cpu",
/// "memory", "disk", "os"}. System labels (openstation.io/...) are left out of "labels".
boost::json::object node_json(const store::Node& n);

/// The planner's view of the node: the inventory's "node" member, named and addressed as the
/// store says. Error "node.no_inventory" (409) when the agent has not reported one yet.
core::Result<model::NodeSpec> node_spec(const store::Node& n);

}  // namespace openstation::server::api_detail
