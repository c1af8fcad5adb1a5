#include "gateway/request.hpp"

#include "gateway/json_scratch.hpp"

#include <boost/json/object.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace openstation::gateway {
namespace json = boost::json;

Endpoint endpoint_of(std::string_view path) noexcept {
  if (path == "/v1/chat/completions") return Endpoint::chat_completions;
  if (path == "/v1/completions") return Endpoint::completions;
  if (path == "/v1/embeddings") return Endpoint::embeddings;
  return Endpoint::other;
}

namespace {

core::Error bad_json(std::string message) {
  return core::invalid("gateway.bad_json", std::move(message));
}

/// Line and column (1-based) of byte offset `pos` in `text`.
std::string position(std::string_view text, std::size_t pos) {
  std::size_t line = 1;
  std::size_t col = 1;
  for (std::size_t i = 0; i < pos && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return "line " + std::to_string(line) + " column " + std::to_string(col);
}

}  // namespace

core::Result<InspectedRequest> inspect_request(Endpoint endpoint, std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return bad_json("the request body is empty; send a JSON object with at least \"model\"");
  }
  detail::JsonScratch scratch;  // no heap for a body of a few KiB
  boost::system::error_code ec;
  std::size_t used = 0;
  json::value v = scratch.parse(body, ec, &used);
  if (ec) {
    return bad_json("the request body is not valid JSON at " + position(body, used) + ": " +
                    ec.message());
  }
  auto* obj = v.if_object();
  if (obj == nullptr) return bad_json("the request body must be a JSON object");

  InspectedRequest out;
  const auto* model = obj->if_contains("model");
  if (model == nullptr || !model->is_string() || model->as_string().empty()) {
    return core::invalid("gateway.missing_model",
                         model == nullptr ? "the request has no \"model\"; name one of the models "
                                            "GET /v1/models lists"
                                          : "\"model\" must be a non-empty string",
                         "model");
  }
  out.model = std::string(model->as_string());
  if (const auto* user = obj->if_contains("user"); user != nullptr && user->is_string()) {
    out.user = std::string(user->as_string());
  }

  if (const auto* s = obj->if_contains("stream"); s != nullptr && !s->is_null()) {
    if (!s->is_bool())
      return core::invalid("gateway.bad_field", "\"stream\" must be true or false", "stream");
    out.stream = s->as_bool();
  }
  json::object* options = nullptr;
  if (auto* so = obj->if_contains("stream_options"); so != nullptr && !so->is_null()) {
    if (!so->is_object()) {
      return core::invalid("gateway.bad_field", "\"stream_options\" must be an object",
                           "stream_options");
    }
    options = &so->as_object();
    if (const auto* u = options->if_contains("include_usage"); u != nullptr && u->is_bool())
      out.client_wants_usage = u->as_bool();
  }

  const bool meterable_stream =
      out.stream && (endpoint == Endpoint::chat_completions || endpoint == Endpoint::completions);
  if (meterable_stream && !out.client_wants_usage) {
    if (options == nullptr) options = &(*obj)["stream_options"].emplace_object();
    (*options)["include_usage"] = true;
    out.upstream_body = json::serialize(v);
    out.rewritten = true;
  }
  return out;
}

}  // namespace openstation::gateway
