#pragma once
/// OpenAI-format errors, the only error shape the gateway's clients see:
///
///     {"error": {"message": "...", "type": "invalid_request_error", "param": null, "code": "..."}}
///
/// The gateway's own refusals and the engines' error bodies (vLLM, SGLang and llama.cpp each have
/// their own) are all turned into it, so an OpenAI SDK shows a useful message whatever went wrong.

#include "core/error.hpp"
#include "http/message.hpp"

#include <string>
#include <string_view>

namespace openstation::gateway {

/// One OpenAI-format error.
struct OpenAiError {
  int status = 500;
  std::string message;
  std::string type;   ///< "invalid_request_error", "authentication_error", ...
  std::string code;   ///< "invalid_api_key", "model_not_found", ...; empty → null
  std::string param;  ///< the offending request field; empty → null

  /// The JSON body text.
  std::string body() const;
  /// A complete JSON response.
  http::Response response() const;
  /// The SSE event that ends a stream that failed after it started: `data: {"error": ...}`.
  std::string sse_event() const;
};

/// The OpenAI `type` for an HTTP status: 400/404/409/413/422 → "invalid_request_error", 401 →
/// "authentication_error", 403 → "permission_error", 429 → "rate_limit_exceeded"... 5xx →
/// "server_error" (503: "service_unavailable").
std::string_view openai_type(int status) noexcept;

/// The gateway's refusals, built from core::Error values: the status from `status` (the gateway
/// decides it, e.g. 401 for every auth error), `code` from the error's code with the project's
/// prefix mapped to OpenAI's names (auth.invalid_api_key → "invalid_api_key", ...), param from
/// the error's field.
OpenAiError from_error(int status, const core::Error& e);

/// An engine's error response (any status ≥ 400, any body) in OpenAI format: the body's own
/// message, type, param and code where it has them — {"error": {...}} (OpenAI, llama.cpp),
/// {"object": "error", "message", "type", "param", "code"} (vLLM, SGLang), {"detail": ...}
/// (FastAPI) or {"message": ...} — else the text itself (cut to 1000 bytes) or the status's
/// reason phrase. The status is kept.
OpenAiError normalise_engine_error(int status, std::string_view body);

}  // namespace openstation::gateway
