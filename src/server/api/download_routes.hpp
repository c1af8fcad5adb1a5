#pragma once
/// /api/v1/downloads*: the model library's download queue (issue [6]) over a DownloadManager.
/// docs/api/models.md describes the routes, docs/openapi/downloads.json their schema.

#include "server/api/context.hpp"

namespace openstation::http {
class Server;
}

namespace openstation::server {

class DownloadManager;

/// GET/POST /api/v1/downloads, GET /api/v1/downloads/{id}, POST /api/v1/downloads/{id}/pause,
/// /resume, /cancel, GET /api/v1/downloads/{id}/log. `{id}` is a download id or a model name.
/// `downloads` outlives the server.
void register_download_routes(http::Server& server, ApiContext& ctx, DownloadManager& downloads);

}  // namespace openstation::server
