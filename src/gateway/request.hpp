#pragma once
/// What the gateway reads from a client's request body before routing it: the model (which
/// service), whether it streams, and whether the client asked for the usage chunk. For streamed
/// chat and text completions the gateway asks the engine for usage anyway
/// (`stream_options.include_usage`), so every request can be metered, and strips the usage chunk
/// again when the client did not ask for it (usage.hpp).
///
/// Pure functions; never throw.

#include "core/error.hpp"

#include <string>
#include <string_view>

namespace openstation::gateway {

/// The OpenAI endpoints the gateway knows the shape of; other /v1 paths pass through.
enum class Endpoint { chat_completions, completions, embeddings, other };

/// "/v1/chat/completions" → chat_completions, ...; anything else → other.
Endpoint endpoint_of(std::string_view path) noexcept;

/// A request body, inspected.
struct InspectedRequest {
  std::string model;                ///< the body's "model"
  bool stream = false;              ///< "stream": true
  bool client_wants_usage = false;  ///< the client set stream_options.include_usage itself
  std::string user;                 ///< the body's "user" when a string (a session key)
  /// When `rewritten`: the body to send upstream instead of the client's, which adds
  /// stream_options.include_usage because the gateway needs usage the client did not ask for.
  /// Empty otherwise: the client's own bytes go upstream unchanged (not copied).
  std::string upstream_body;
  bool rewritten = false;
};

/// Inspects a JSON request body. Errors (all invalid_argument, for a 400):
/// "gateway.bad_json" — empty, not JSON (with line and column), invalid UTF-8, or not an object;
/// "gateway.missing_model" (param "model") — no "model", or not a non-empty string;
/// "gateway.bad_field" (param "stream" / "stream_options") — "stream" not a boolean,
/// "stream_options" not an object.
core::Result<InspectedRequest> inspect_request(Endpoint endpoint, std::string_view body);

namespace detail {
/// True when inspect_request reads `body` with its own strict scan alone, without Boost.JSON's
/// validating parser (the outcome is the same either way; tests check that usual bodies take
/// the fast way and unusual ones are left to the parser).
bool read_by_fast_scan(std::string_view body);
}  // namespace detail

}  // namespace openstation::gateway
