#pragma once
/// The route groups of the management API. Each registers its routes on the management server;
/// the server process (server/app.hpp) calls them all in this order. docs/openapi/<group>.json
/// documents each group's paths (merged and served at /api/v1/openapi.json).

#include "server/api/context.hpp"
#include "server/assignments.hpp"

namespace openstation::http {
class Server;
}

namespace openstation::server {

class AgentLink;  // server/agent_link.hpp: calls to the nodes' agent APIs

/// Something that wants the reconciler to run soon (a node went not-ready, a heartbeat reported
/// a failed instance, a service changed). Thread-safe, non-blocking.
class ReconcileTrigger {
 public:
  virtual ~ReconcileTrigger() = default;
  virtual void trigger() = 0;
};

/// /api/v1/auth/* (login, logout, me, password change), /api/v1/users*, /api/v1/keys*,
/// /api/v1/settings*, /api/v1/events.
void register_auth_routes(http::Server& server, ApiContext& ctx);
void register_user_routes(http::Server& server, ApiContext& ctx);
void register_key_routes(http::Server& server, ApiContext& ctx);
void register_setting_routes(http::Server& server, ApiContext& ctx);
void register_event_routes(http::Server& server, ApiContext& ctx);

/// /api/v1/nodes*, /api/v1/join-tokens*, and the agent protocol (/api/v1/agent/*: register,
/// heartbeat, assignments long-poll). Heartbeats write the observed instance states into the
/// store and trigger the reconciler when one changed. `agents` learns each node's credential
/// from its register and heartbeats (the store keeps only its hash), so the server can call the
/// node's agent API.
void register_node_routes(http::Server& server, ApiContext& ctx, AssignmentNotifier& assignments,
                          ReconcileTrigger& reconcile, AgentLink& agents);
/// /api/v1/catalog*, /api/v1/models* (import a local path, validated by the node's agent),
/// /api/v1/plan (dry run), /api/v1/instances/{id}/logs (tail and follow, through the agent).
/// The same `agents` as register_node_routes.
void register_model_routes(http::Server& server, ApiContext& ctx, AgentLink& agents);

/// /api/v1/agent/models/{id}/manifest and /api/v1/agent/models/{id}/files/* (node sync: a
/// model's files on the server's model store, with range requests; node token). Writes the
/// store's marker (<model dir>/.openstation-store) when it is not there yet.
void register_model_file_routes(http::Server& server, ApiContext& ctx);

/// /api/v1/services* (deploy, list, show, scale, delete) and /api/v1/instances* (add on chosen
/// nodes, remove with drain, check).
void register_service_routes(http::Server& server, ApiContext& ctx, AssignmentNotifier& assignments,
                             ReconcileTrigger& reconcile);

/// /api/v1/gateway/snapshot (the key snapshot and route table, long-polled by gateway replicas),
/// /api/v1/gateway/call-logs (replicas' call log batches) and /api/v1/services/{id}/call-logs.
/// `wake` (a notifier of its own, keyed "gateway") ends a replica's long poll early; call
/// notify_gateway_feed after keys change.
void register_gateway_routes(http::Server& server, ApiContext& ctx, AssignmentNotifier& wake);
/// Wakes the replicas' long polls (the key snapshot may have changed). Thread-safe.
void notify_gateway_feed(AssignmentNotifier& wake);

/// GET /api/v1/openapi.json (no auth) and GET /health.
void register_meta_routes(http::Server& server, ApiContext& ctx);

}  // namespace openstation::server
