#pragma once
/// The management API's OpenAPI document. Each route group documents its paths in a fragment,
/// docs/openapi/<group>.json: {"paths": {...}, "components": {...}, "tags": [...]} in OpenAPI 3.0
/// terms, with full paths ("/api/v1/nodes/{id}", "/health"). The build embeds every fragment
/// (src/CMakeLists.txt); merge_openapi() joins them under one header and GET /api/v1/openapi.json
/// serves the result. tests/unit/server/openapi_test.cpp fails when a registered route is missing
/// from the merged document, or a documented path has no route.

#include "core/error.hpp"

#include <boost/json/object.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace openstation::server {

/// One fragment: its file name ("nodes.json") and its JSON text.
struct OpenApiFragment {
  std::string name;
  std::string text;
};

/// The fragments of docs/openapi/ embedded at build time, sorted by file name.
std::vector<OpenApiFragment> embedded_openapi_fragments();

/// Merges fragments into one OpenAPI 3.0.3 document titled "OpenStation management API" with
/// `version` as info.version. Paths from different fragments merge by method; components merge
/// by section and name; tags concatenate (a tag named twice must be identical). A fragment's own
/// "openapi" and "info" keys are ignored. Errors (all "openapi.*", Errc::internal — a fragment
/// is part of the build): "openapi.bad_fragment" (not JSON, not an object, a key other than
/// paths/components/tags/openapi/info/x-*, a path not starting with '/'), "openapi.conflict" (an
/// operation or a differing component or tag defined twice). Messages name the fragment.
core::Result<boost::json::object> merge_openapi(const std::vector<OpenApiFragment>& fragments,
                                                std::string_view version);

/// A path with its parameter names blanked ("/api/v1/nodes/{id}" → "/api/v1/nodes/{}"), so a
/// route's pattern and a documented path compare equal whatever their parameters are called; a
/// router wildcard ("/files/*") counts as one parameter ("/files/{}").
std::string normalize_api_path(std::string_view path);

}  // namespace openstation::server
