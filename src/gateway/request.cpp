#include "gateway/request.hpp"

#include "gateway/json_scratch.hpp"
#include "gateway/utf8.hpp"

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/error.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

enum class Kind { absent, null, string, boolean, object, other };

/// One member inspect_request looks at, as the document holds it.
struct Member {
  Kind kind = Kind::absent;
  std::string text;   ///< a string's value
  bool flag = false;  ///< a boolean's value
};

/// The members inspect_request looks at, with the last of duplicate names winning (as in a
/// parsed document).
struct Found {
  bool is_object = false;
  Member model, user, stream, stream_options;
  Member include_usage;  ///< inside the last "stream_options" object
};

/// What a request's top level holds, read by Boost.JSON's validating parser without building the
/// document. Every body the fast scan below cannot vouch for comes here.
class TopLevel : public Found {
 public:
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

/// The fast path: a strict scan of the whole body that validates it as JSON (RFC 8259: structure,
/// numbers, literals, escapes, UTF-8) and reads the members inspect_request looks at, without
/// Boost.JSON's general machinery. It vouches only for what it is sure of: anything invalid or
/// unusual (an escape in a name or in "model" or "user", a \u escape of a surrogate, deep
/// nesting, a very long number) makes it give up, and the validating parser then decides, with
/// its error message. So it never accepts what the parser refuses, and what it accepts it reads
/// as the parser does (the fuzz target checks both against a parsed document).
class FastScan {
 public:
  explicit FastScan(std::string_view text)
      : p_(reinterpret_cast<const unsigned char*>(text.data())), end_(p_ + text.size()) {}

  /// True when the body is a valid JSON document the scan could read completely into `out`.
  bool read(Found& out) {
    skip_ws();
    if (p_ == end_) return false;
    if (*p_ != '{') {
      if (!value(0)) return false;  // valid, but not an object
    } else {
      out.is_object = true;
      if (!top_members(out)) return false;
    }
    skip_ws();
    return p_ == end_;
  }

 private:
  /// Containers nested deeper than this are left to the parser (whose own limit is 32).
  static constexpr int kMaxDepth = 24;

  void skip_ws() {
    // Compact JSON (what clients send) has none: one comparison decides.
    if (p_<end_&& * p_> ' ') return;
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }
  bool eat(unsigned char c) {
    skip_ws();
    if (p_ == end_ || *p_ != c) return false;
    ++p_;
    return true;
  }

  /// At '"': skips the string, checking escapes and UTF-8. `plain`: set to the characters
  /// between the quotes when the string has no escape; with an escape the string is valid but
  /// `escaped` is set (its value is not decoded).
  bool string(std::string_view& plain, bool& escaped) {
    const unsigned char* start = ++p_;
    escaped = false;
    for (;;) {
      p_ = next_special(p_, end_);
      if (p_ == end_) return false;
      const unsigned char c = *p_;
      if (c == '"') {
        plain = std::string_view(reinterpret_cast<const char*>(start),
                                 static_cast<std::size_t>(p_ - start));
        ++p_;
        return true;
      }
      if (c == '\\') {
        escaped = true;
        if (!escape()) return false;
      } else if (c >= 0x80) {
        if (!utf8()) return false;
      } else {
        return false;  // a control character
      }
    }
  }

  /// The first byte at or after `p` that ends a run of plain string characters: '"', '\\', a
  /// control character or a non-ASCII byte. Sixteen bytes at a time where SSE2 is there.
  static const unsigned char* next_special(const unsigned char* p, const unsigned char* end) {
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      // Signed: bytes from 0x80 are negative, so one comparison finds them and controls.
      const __m128i hit =
          _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(b, quote), _mm_cmpeq_epi8(b, backslash)),
                       _mm_cmplt_epi8(b, space));
      const auto mask = static_cast<unsigned>(_mm_movemask_epi8(hit));
      if (mask != 0) return p + __builtin_ctz(mask);
      p += 16;
    }
#endif
    while (p < end && *p != '"' && *p != '\\' && *p >= 0x20 && *p < 0x80) ++p;
    return p;
  }

  /// At '\\': one escape. A \u escape of a surrogate is left to the parser.
  bool escape() {
    if (end_ - p_ < 2) return false;
    const unsigned char c = p_[1];
    if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' ||
        c == 't') {
      p_ += 2;
      return true;
    }
    if (c != 'u' || end_ - p_ < 6) return false;
    unsigned code = 0;
    for (int i = 2; i < 6; ++i) {
      const unsigned char h = p_[i];
      unsigned digit = 0;
      if (h >= '0' && h <= '9') {
        digit = h - '0';
      } else if ((h | 0x20) >= 'a' && (h | 0x20) <= 'f') {
        digit = (h | 0x20) - 'a' + 10;
      } else {
        return false;
      }
      code = code * 16 + digit;
    }
    if (code >= 0xD800 && code <= 0xDFFF) return false;
    p_ += 6;
    return true;
  }

  /// At a byte from 0x80: one well-formed UTF-8 sequence.
  bool utf8() {
    const std::string_view rest(reinterpret_cast<const char*>(p_),
                                static_cast<std::size_t>(end_ - p_));
    const std::size_t len = detail::utf8_sequence(rest, 0);
    p_ += len;
    return len > 0;
  }

  static bool digit(unsigned char c) {
    return c >= '0' && c <= '9';
  }

  /// A number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?; long ones are left to the parser.
  bool number() {
    const unsigned char* start = p_;
    if (*p_ == '-') ++p_;
    if (p_ == end_) return false;
    if (*p_ == '0') {
      ++p_;
    } else if (digit(*p_)) {
      while (p_ < end_ && digit(*p_)) ++p_;
    } else {
      return false;
    }
    if (p_ < end_ && *p_ == '.') {
      ++p_;
      if (p_ == end_ || !digit(*p_)) return false;
      while (p_ < end_ && digit(*p_)) ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      const unsigned char* exponent = p_;
      while (p_ < end_ && digit(*p_)) ++p_;
      if (p_ == exponent || p_ - exponent > 3) return false;
    }
    return p_ - start <= 40;
  }

  bool literal(std::string_view word) {
    if (static_cast<std::size_t>(end_ - p_) < word.size() ||
        std::memcmp(p_, word.data(), word.size()) != 0) {
      return false;
    }
    p_ += word.size();
    return true;
  }

  /// Any value at `depth` (the number of containers around it), skipped.
  bool value(int depth) {
    skip_ws();
    if (p_ == end_) return false;
    switch (*p_) {
      case '"': {
        std::string_view ignored;
        bool escaped = false;
        return string(ignored, escaped);
      }
      case '{':
      case '[': return container(depth);
      case 't': return literal("true");
      case 'f': return literal("false");
      case 'n': return literal("null");
      default: return number();
    }
  }

  /// At '{' or '[': the container and everything in it.
  bool container(int depth) {
    if (depth >= kMaxDepth) return false;
    const bool object = *p_ == '{';
    const unsigned char close = object ? '}' : ']';
    ++p_;
    skip_ws();
    if (p_ < end_ && *p_ == close) {
      ++p_;
      return true;
    }
    for (;;) {
      if (object) {
        skip_ws();
        if (p_ == end_ || *p_ != '"') return false;
        std::string_view ignored;
        bool escaped = false;
        if (!string(ignored, escaped) || !eat(':')) return false;
      }
      if (!value(depth + 1)) return false;
      skip_ws();
      if (p_ == end_) return false;
      if (*p_ == close) {
        ++p_;
        return true;
      }
      if (*p_ != ',') return false;
      ++p_;
    }
  }

  /// A member's value read into `m` (kinds as the parser's handler records them).
  bool member_value(Member& m, int depth) {
    skip_ws();
    if (p_ == end_) return false;
    m.text.clear();
    m.flag = false;
    switch (*p_) {
      case '"': {
        std::string_view text;
        bool escaped = false;
        if (!string(text, escaped) || escaped) return false;  // an escaped value: the parser
        m.kind = Kind::string;
        m.text.assign(text);
        return true;
      }
      case 't':
      case 'f':
        m.kind = Kind::boolean;
        m.flag = *p_ == 't';
        return literal(m.flag ? "true" : "false");
      case 'n': m.kind = Kind::null; return literal("null");
      case '{': m.kind = Kind::object; return container(depth);
      default: m.kind = Kind::other; return value(depth);
    }
  }

  /// At an object's '{': its members; `on_member(name)` reads each one's value (a name with an
  /// escape is left to the parser).
  template <class OnMember>
  bool members(OnMember&& on_member) {
    ++p_;
    skip_ws();
    if (p_ < end_ && *p_ == '}') {
      ++p_;
      return true;
    }
    for (;;) {
      skip_ws();
      if (p_ == end_ || *p_ != '"') return false;
      std::string_view name;
      bool escaped = false;
      if (!string(name, escaped) || escaped || !eat(':') || !on_member(name)) return false;
      skip_ws();
      if (p_ == end_) return false;
      if (*p_ == '}') {
        ++p_;
        return true;
      }
      if (*p_ != ',') return false;
      ++p_;
    }
  }

  /// At the top-level '{': its members, the watched ones read into `out`.
  bool top_members(Found& out) {
    return members([&](std::string_view name) {
      if (name == "model") return member_value(out.model, 1);
      if (name == "user") return member_value(out.user, 1);
      if (name == "stream") return member_value(out.stream, 1);
      if (name != "stream_options") return value(1);
      skip_ws();
      if (p_ == end_ || *p_ != '{') return member_value(out.stream_options, 1);
      out.stream_options = Member{Kind::object, {}, false};
      out.include_usage = {};  // a later "stream_options" replaces an earlier one
      // Its members, "include_usage" read into `out`.
      return members([&](std::string_view option) {
        return option == "include_usage" ? member_value(out.include_usage, 2) : value(2);
      });
    });
  }

  const unsigned char* p_;
  const unsigned char* end_;
};

}  // namespace

bool detail::read_by_fast_scan(std::string_view body) {
  Found found;
  return FastScan(body).read(found);
}

namespace {

/// `body`, a valid JSON object with no "stream_options", with `"stream_options":
/// {"include_usage":true}` as its first member and the client's bytes otherwise as sent: no
/// document built and written anew.
std::string with_usage_option(std::string_view body) {
  constexpr std::string_view member = R"("stream_options":{"include_usage":true})";
  const std::size_t open = body.find('{') + 1;  // only whitespace can come before the object
  const std::size_t first = body.find_first_not_of(" \t\r\n", open);
  std::string out;
  out.reserve(body.size() + member.size() + 1);
  out.append(body.substr(0, open)).append(member);
  if (first != std::string_view::npos && body[first] != '}') out.push_back(',');
  out.append(body.substr(open));
  return out;
}

}  // namespace

core::Result<InspectedRequest> inspect_request(Endpoint endpoint, std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return bad_json("the request body is empty; send a JSON object with at least \"model\"");
  }
  // Validated and read in one pass without building the document (the fast scan, or the
  // validating parser for what it gives up on); only a body the gateway must rewrite is parsed
  // into one.
  Found fast;
  std::optional<json::basic_parser<TopLevel>> parser;
  boost::system::error_code ec;
  const Found* found = &fast;
  if (!FastScan(body).read(fast)) {
    parser.emplace(json::parse_options());
    std::size_t used = parser->write_some(false, body.data(), body.size(), ec);
    if (!ec && used < body.size()) ec = json::error::extra_data;
    if (ec) {
      return bad_json("the request body is not valid JSON at " + position(body, used) + ": " +
                      ec.message());
    }
    found = &parser->handler();
  }
  const Found& top = *found;
  if (!top.is_object) return bad_json("the request body must be a JSON object");

  InspectedRequest out;
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
    out.rewritten = true;
    if (top.stream_options.kind == Kind::absent) {
      out.upstream_body = with_usage_option(body);  // the usual stream: no options of its own
      return out;
    }
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
  }
  return out;
}

}  // namespace openstation::gateway
