#include "gateway/request.hpp"

#include "gateway/json_scratch.hpp"

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/error.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <string>
#include <utility>

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

/// What a request's top level holds, read by Boost.JSON's validating parser without building the
/// document: the members inspect_request looks at, with the last of duplicate names winning (as
/// in a parsed document).
class TopLevel {
 public:
  enum class Kind { absent, null, string, boolean, object, other };
  struct Member {
    Kind kind = Kind::absent;
    std::string text;   ///< a string's value
    bool flag = false;  ///< a boolean's value
  };

  bool is_object = false;
  Member model, user, stream, stream_options;
  Member include_usage;  ///< inside the last "stream_options" object

  // The handler interface of boost::json::basic_parser.
  static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);
  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }
  bool on_object_begin(boost::system::error_code&) {
    if (depth_ == 0) is_object = true;
    if (Member* m = target()) {
      set(*m, Kind::object);
      if (m == &stream_options) {
        include_usage = {};  // a later "stream_options" replaces an earlier one
        in_options_ = true;
      }
    }
    ++depth_;
    return true;
  }
  bool on_object_end(std::size_t, boost::system::error_code&) {
    --depth_;
    if (depth_ == 1) in_options_ = false;
    return true;
  }
  bool on_array_begin(boost::system::error_code&) {
    value(Kind::other);
    ++depth_;
    return true;
  }
  bool on_array_end(std::size_t, boost::system::error_code&) {
    --depth_;
    return true;
  }
  bool on_key_part(std::string_view part, std::size_t, boost::system::error_code&) {
    if (watched_depth()) part_.append(part);
    return true;
  }
  bool on_key(std::string_view key, std::size_t, boost::system::error_code&) {
    if (!watched_depth()) return true;
    if (!part_.empty()) {
      part_.append(key);
      key = part_;
    }
    current_ = member_named(key);
    part_.clear();
    return true;
  }
  bool on_string_part(std::string_view part, std::size_t, boost::system::error_code&) {
    if (current_ != nullptr && watched_depth()) part_.append(part);
    return true;
  }
  bool on_string(std::string_view text, std::size_t, boost::system::error_code&) {
    if (Member* m = target()) {
      set(*m, Kind::string);
      m->text.assign(part_);
      m->text.append(text);
    }
    part_.clear();
    return true;
  }
  bool on_number_part(std::string_view, boost::system::error_code&) { return true; }
  bool on_int64(std::int64_t, std::string_view, boost::system::error_code&) {
    return value(Kind::other);
  }
  bool on_uint64(std::uint64_t, std::string_view, boost::system::error_code&) {
    return value(Kind::other);
  }
  bool on_double(double, std::string_view, boost::system::error_code&) {
    return value(Kind::other);
  }
  bool on_bool(bool b, boost::system::error_code&) {
    if (Member* m = target()) {
      set(*m, Kind::boolean);
      m->flag = b;
    }
    return true;
  }
  bool on_null(boost::system::error_code&) { return value(Kind::null); }
  bool on_comment_part(std::string_view, boost::system::error_code&) { return true; }
  bool on_comment(std::string_view, boost::system::error_code&) { return true; }

 private:
  /// Keys, and the values that follow them, are read at the top level and directly inside the
  /// "stream_options" object.
  bool watched_depth() const { return depth_ == 1 || (depth_ == 2 && in_options_); }
  Member* member_named(std::string_view key) {
    if (depth_ == 2) return key == "include_usage" ? &include_usage : nullptr;
    if (key == "model") return &model;
    if (key == "user") return &user;
    if (key == "stream") return &stream;
    if (key == "stream_options") return &stream_options;
    return nullptr;
  }
  /// The member the next value at this level is for (consumed by it), or null.
  Member* target() {
    if (!watched_depth()) return nullptr;
    return std::exchange(current_, nullptr);
  }
  static void set(Member& m, Kind kind) {
    m.kind = kind;
    m.text.clear();
    m.flag = false;
  }
  bool value(Kind kind) {
    if (Member* m = target()) set(*m, kind);
    return true;
  }

  std::size_t depth_ = 0;
  bool in_options_ = false;
  Member* current_ = nullptr;
  std::string part_;
};

}  // namespace

core::Result<InspectedRequest> inspect_request(Endpoint endpoint, std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return bad_json("the request body is empty; send a JSON object with at least \"model\"");
  }
  // Validated and read in one pass without building the document; only a body the gateway must
  // rewrite is parsed into one.
  json::basic_parser<TopLevel> parser{json::parse_options()};
  boost::system::error_code ec;
  std::size_t used = parser.write_some(false, body.data(), body.size(), ec);
  if (!ec && used < body.size()) ec = json::error::extra_data;
  if (ec) {
    return bad_json("the request body is not valid JSON at " + position(body, used) + ": " +
                    ec.message());
  }
  const TopLevel& top = parser.handler();
  if (!top.is_object) return bad_json("the request body must be a JSON object");

  InspectedRequest out;
  using Kind = TopLevel::Kind;
  if (top.model.kind != Kind::string || top.model.text.empty()) {
    return core::invalid("gateway.missing_model",
                         top.model.kind == Kind::absent
                             ? "the request has no \"model\"; name one of the models GET "
                               "/v1/models lists"
                             : "\"model\" must be a non-empty string",
                         "model");
  }
  out.model = top.model.text;
  if (top.user.kind == Kind::string) out.user = top.user.text;

  if (top.stream.kind != Kind::absent && top.stream.kind != Kind::null) {
    if (top.stream.kind != Kind::boolean)
      return core::invalid("gateway.bad_field", "\"stream\" must be true or false", "stream");
    out.stream = top.stream.flag;
  }
  const bool has_options =
      top.stream_options.kind != Kind::absent && top.stream_options.kind != Kind::null;
  if (has_options) {
    if (top.stream_options.kind != Kind::object) {
      return core::invalid("gateway.bad_field", "\"stream_options\" must be an object",
                           "stream_options");
    }
    if (top.include_usage.kind == Kind::boolean) out.client_wants_usage = top.include_usage.flag;
  }

  const bool meterable_stream =
      out.stream && (endpoint == Endpoint::chat_completions || endpoint == Endpoint::completions);
  if (meterable_stream && !out.client_wants_usage) {
    detail::JsonScratch scratch;  // no heap for a body of a few KiB
    json::value v = scratch.parse(body, ec);
    if (ec || !v.is_object()) return bad_json("the request body is not valid JSON");  // checked
    auto& obj = v.as_object();
    json::object* options = nullptr;
    if (auto* so = obj.if_contains("stream_options"); so != nullptr && so->is_object()) {
      options = &so->as_object();
    } else {
      options = &obj["stream_options"].emplace_object();
    }
    (*options)["include_usage"] = true;
    out.upstream_body = json::serialize(v);
    out.rewritten = true;
  }
  return out;
}

}  // namespace openstation::gateway
