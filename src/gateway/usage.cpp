#include "gateway/usage.hpp"

#include "gateway/json_scratch.hpp"

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace openstation::gateway {
namespace json = boost::json;

namespace {

std::int64_t int_of(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr) return 0;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->as_uint64());
  if (v->is_double()) return static_cast<std::int64_t>(v->as_double());
  return 0;
}

/// Reads "usage" of a parsed object into `u`; true when it was an object.
bool read_usage(const json::object& o, Usage& u) {
  const auto* v = o.if_contains("usage");
  if (v == nullptr || !v->is_object()) return false;
  const auto& uo = v->as_object();
  u.prompt_tokens = int_of(uo, "prompt_tokens");
  u.completion_tokens = int_of(uo, "completion_tokens");
  u.total_tokens = int_of(uo, "total_tokens");
  if (u.total_tokens == 0) u.total_tokens = u.prompt_tokens + u.completion_tokens;
  u.reported = true;
  return true;
}

}  // namespace

Usage usage_of_response(std::string_view body) {
  Usage u;
  if (body.find("\"usage\"") == std::string_view::npos) return u;
  boost::system::error_code ec;
  detail::JsonScratch scratch;
  const json::value v = scratch.parse(body, ec);
  if (!ec && v.is_object()) read_usage(v.as_object(), u);
  return u;
}

StreamMeter::Verdict StreamMeter::on_data(std::string_view data) {
  if (data == "[DONE]") {
    done_ = true;
    return Verdict::forward;
  }
  const bool mentions_usage = data.find("\"usage\"") != std::string_view::npos;
  const bool mentions_error =
      data.starts_with("{\"error\"") || data.find("\"object\":\"error\"") != std::string_view::npos;
  if (!mentions_usage && !mentions_error) {
    ++content_events_;
    return Verdict::forward;
  }
  boost::system::error_code ec;
  detail::JsonScratch scratch;
  const json::value v = scratch.parse(data, ec);
  if (ec || !v.is_object()) {
    ++content_events_;
    return Verdict::forward;
  }
  const auto& o = v.as_object();
  if (o.contains("error") || (o.contains("object") && o.at("object") == "error")) {
    saw_error_ = true;
    return Verdict::forward;
  }
  const bool has_usage = read_usage(o, usage_);
  const auto* choices = o.if_contains("choices");
  const bool no_choices =
      choices == nullptr || (choices->is_array() && choices->as_array().empty());
  if (has_usage && no_choices) return keep_usage_chunk_ ? Verdict::forward : Verdict::drop;
  ++content_events_;
  return Verdict::forward;
}

}  // namespace openstation::gateway
