#include "http/http1.hpp"

#include "http/message.hpp"

#include <charconv>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace openstation::http::wire {

namespace {

/// RFC 9110 tchar: the characters of a token (method, field name).
constexpr bool is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~': return true;
    default: return false;
  }
}

/// A field value's characters: visible ASCII, obs-text, space and tab.
constexpr bool is_value_char(unsigned char c) {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/// The two classes as tables: one load per byte in the header loops.
struct CharClasses {
  bool tchar[256] = {};
  bool value[256] = {};
  constexpr CharClasses() {
    for (int c = 0; c < 256; ++c) {
      tchar[c] = is_tchar(static_cast<unsigned char>(c));
      value[c] = is_value_char(static_cast<unsigned char>(c));
    }
  }
};
constexpr CharClasses kChars;

/// The end of the head: the offset just past CRLF CRLF, or npos.
std::size_t head_end(std::string_view in) {
  const auto p = in.find("\r\n\r\n");
  return p == std::string_view::npos ? p : p + 4;
}

std::string_view trim_ows(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

/// "HTTP/1.0" or "HTTP/1.1" → the minor version; -1 otherwise.
int parse_version(std::string_view v) {
  if (v.size() != 8 || v.substr(0, 7) != "HTTP/1.") return -1;
  if (v[7] == '0') return 0;
  if (v[7] == '1') return 1;
  return -1;
}

/// The first byte at or after `p` (before `end`) that is not a letter, digit or '-' (what header
/// names are made of; the ':' after one, or a rarer token character the caller then checks
/// byte by byte). Sixteen bytes at a time where SSE2 is there.
const unsigned char* name_stop(const unsigned char* p, const unsigned char* end) {
#if defined(__SSE2__)
  if (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // Signed comparisons: bytes from 0x80 are negative, so never letters or digits.
    const __m128i folded = _mm_or_si128(v, _mm_set1_epi8(0x20));
    const __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(folded, _mm_set1_epi8('a' - 1)),
                                         _mm_cmplt_epi8(folded, _mm_set1_epi8('z' + 1)));
    const __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
                                        _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)));
    const __m128i dash = _mm_cmpeq_epi8(v, _mm_set1_epi8('-'));
    const __m128i common = _mm_or_si128(_mm_or_si128(letter, digit), dash);
    const auto mask = static_cast<unsigned>(~_mm_movemask_epi8(common)) & 0xffffu;
    if (mask != 0) return p + __builtin_ctz(mask);
    p += 16;
  }
#endif
  return p;
}

/// The first byte at or after `p` (before `end`) that cannot be part of a field value: a control
/// character other than HTAB, or DEL (so usually the CR that ends the line). Sixteen bytes at a
/// time where SSE2 is there (values such as keys and cookies run long).
const unsigned char* value_stop(const unsigned char* p, const unsigned char* end) {
#if defined(__SSE2__)
  const __m128i unit_separator = _mm_set1_epi8(0x1f);
  const __m128i tab = _mm_set1_epi8('\t');
  const __m128i del = _mm_set1_epi8(0x7f);
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // Unsigned v <= 0x1f exactly when max(v, 0x1f) is 0x1f.
    const __m128i control = _mm_cmpeq_epi8(_mm_max_epu8(v, unit_separator), unit_separator);
    const __m128i stop =
        _mm_or_si128(_mm_andnot_si128(_mm_cmpeq_epi8(v, tab), control), _mm_cmpeq_epi8(v, del));
    const auto mask = static_cast<unsigned>(_mm_movemask_epi8(stop));
    if (mask != 0) return p + __builtin_ctz(mask);
    p += 16;
  }
#endif
  while (p < end && kChars.value[*p]) ++p;
  return p;
}

/// Why a field line whose name does not end in ':' is malformed (the slow way: errors only).
std::string bad_name_reason(std::string_view from_name) {
  const std::string_view line = from_name.substr(0, from_name.find("\r\n"));
  const auto colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return "a header line without a field name and ':'";
  }
  return "an invalid character in a header field name";
}

/// Parses the field lines of a head into `head.fields`: `lines` runs from the first field line
/// to the head's end, its blank line included (head_end found it). One pass over the bytes,
/// each checked once against its class.
bool parse_fields(std::string_view lines, Head& head, std::string& error) {
  const auto* const begin = reinterpret_cast<const unsigned char*>(lines.data());
  const auto* const end = begin + lines.size();
  const auto* p = begin;
  const auto view = [](const unsigned char* from, const unsigned char* to) {
    return std::string_view(reinterpret_cast<const char*>(from),
                            static_cast<std::size_t>(to - from));
  };
  while (p < end) {
    if (*p == '\r' && p + 1 < end && p[1] == '\n') break;  // the blank line: the head's end
    if (*p == ' ' || *p == '\t') {
      error = "obsolete line folding in a header field";
      return false;
    }
    const auto* const name_begin = p;
    p = name_stop(p, end);
    while (p < end && kChars.tchar[*p]) ++p;
    if (p == end || *p != ':' || p == name_begin) {
      error = bad_name_reason(view(name_begin, end));
      return false;
    }
    const std::string_view name = view(name_begin, p);
    ++p;
    while (p < end && (*p == ' ' || *p == '\t')) ++p;
    const auto* const value_begin = p;
    p = value_stop(p, end);
    if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
      error = "a control character in the value of header '" + std::string(name) + "'";
      return false;
    }
    const auto* value_end = p;
    while (value_end > value_begin && (value_end[-1] == ' ' || value_end[-1] == '\t')) --value_end;
    head.fields.emplace_back(name, view(value_begin, value_end));
    p += 2;
  }
  return true;
}

/// Whether a comma-separated field value lists `token` (case-insensitive).
bool lists_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const auto comma = value.find(',');
    if (iequals(trim_ows(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

bool parse_length(std::string_view v, std::uint64_t& out) {
  if (v.empty() || v.size() > 19) return false;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
  }
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  return ec == std::errc() && p == v.data() + v.size();
}

/// Transfer-Encoding and Content-Length into a framing; `fallback` when neither is present.
bool body_framing(const Head& head, Framing::Kind fallback, Framing& out, std::string& error) {
  std::optional<std::string_view> te;
  std::optional<std::uint64_t> length;
  for (const auto& [k, v] : head.fields) {
    if (iequals(k, "Transfer-Encoding")) {
      if (te) {
        error = "more than one Transfer-Encoding header";
        return false;
      }
      te = v;
    } else if (iequals(k, "Content-Length")) {
      // "Content-Length: 5, 5" and repeated equal fields are tolerated; different ones are not.
      std::string_view rest = v;
      while (true) {
        const auto comma = rest.find(',');
        std::uint64_t n = 0;
        if (!parse_length(trim_ows(rest.substr(0, comma)), n)) {
          error = "Content-Length '" + std::string(v) + "' is not a number";
          return false;
        }
        if (length && *length != n) {
          error = "conflicting Content-Length values";
          return false;
        }
        length = n;
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
    }
  }
  if (te) {
    if (length) {
      error = "both Transfer-Encoding and Content-Length";
      return false;
    }
    if (!iequals(trim_ows(*te), "chunked")) {
      error = "unsupported Transfer-Encoding '" + std::string(*te) + "' (only chunked)";
      return false;
    }
    out.kind = Framing::chunked;
    return true;
  }
  if (length) {
    out.kind = *length == 0 ? Framing::none : Framing::sized;
    out.length = *length;
    return true;
  }
  out.kind = fallback;
  return true;
}

}  // namespace

std::optional<std::string_view> Head::get(std::string_view name) const {
  for (const auto& [k, v] : fields) {
    if (iequals(k, name)) return v;
  }
  return std::nullopt;
}

Parse parse_request_head(std::string_view in, Head& head, std::string& error) {
  head.clear();
  // Tolerate empty lines before a request (RFC 9112 §2.2).
  std::size_t skip = 0;
  while (skip + 1 < in.size() && in[skip] == '\r' && in[skip + 1] == '\n') skip += 2;
  const std::string_view rest = in.substr(skip);
  const auto end = head_end(rest);
  if (end == std::string_view::npos) {
    // Refuse early what can never become a request line.
    for (std::size_t i = 0; i < rest.size() && rest[i] != ' '; ++i) {
      if (!is_tchar(static_cast<unsigned char>(rest[i]))) {
        error = "the request line does not start with a method";
        return Parse::error;
      }
    }
    return Parse::incomplete;
  }
  const auto eol = rest.find("\r\n");
  const std::string_view line = rest.substr(0, eol);
  const auto sp1 = line.find(' ');
  const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos || sp1 == 0 ||
      sp2 == sp1 + 1) {
    error = "the request line is not 'METHOD target HTTP/1.1'";
    return Parse::error;
  }
  head.method = line.substr(0, sp1);
  head.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  for (unsigned char c : head.method) {
    if (!is_tchar(c)) {
      error = "an invalid character in the method";
      return Parse::error;
    }
  }
  for (unsigned char c : head.target) {
    if (c <= 0x20 || c == 0x7f) {
      error = "an invalid character in the request target";
      return Parse::error;
    }
  }
  head.minor = parse_version(line.substr(sp2 + 1));
  if (head.minor < 0) {
    error = "unsupported HTTP version '" + std::string(line.substr(sp2 + 1)) +
            "' (HTTP/1.0 and HTTP/1.1 are spoken here)";
    return Parse::error;
  }
  if (!parse_fields(rest.substr(eol + 2, end - eol - 2), head, error)) return Parse::error;
  head.size = skip + end;
  return Parse::complete;
}

Parse parse_response_head(std::string_view in, Head& head, std::string& error) {
  head.clear();
  const auto end = head_end(in);
  if (end == std::string_view::npos) {
    if (in.size() >= 5 && in.substr(0, 5) != "HTTP/") {
      error = "the response does not start with 'HTTP/'";
      return Parse::error;
    }
    return Parse::incomplete;
  }
  const auto eol = in.find("\r\n");
  const std::string_view line = in.substr(0, eol);
  // HTTP/1.1 200 OK  (the reason phrase may be empty or absent)
  if (line.size() < 12 || line[8] != ' ' || (line.size() > 12 && line[12] != ' ')) {
    error = "a malformed status line";
    return Parse::error;
  }
  head.minor = parse_version(line.substr(0, 8));
  if (head.minor < 0) {
    error = "unsupported HTTP version in the status line";
    return Parse::error;
  }
  int status = 0;
  for (char c : line.substr(9, 3)) {
    if (c < '0' || c > '9') {
      error = "a status code that is not three digits";
      return Parse::error;
    }
    status = status * 10 + (c - '0');
  }
  if (status < 100) {
    error = "a status code below 100";
    return Parse::error;
  }
  head.status = status;
  if (!parse_fields(in.substr(eol + 2, end - eol - 2), head, error)) return Parse::error;
  head.size = end;
  return Parse::complete;
}

bool request_framing(const Head& head, Framing& out, std::string& error) {
  out = {};
  return body_framing(head, Framing::none, out, error);
}

bool response_framing(const Head& head, std::string_view request_method, Framing& out,
                      std::string& error) {
  out = {};
  if (request_method == "HEAD" || (head.status >= 100 && head.status < 200) || head.status == 204 ||
      head.status == 304) {
    out.kind = Framing::none;
    return true;
  }
  return body_framing(head, Framing::until_close, out, error);
}

bool keep_alive(const Head& head) {
  bool close = false;
  bool keep = false;
  for (const auto& [k, v] : head.fields) {
    if (!iequals(k, "Connection")) continue;
    if (lists_token(v, "close")) close = true;
    if (lists_token(v, "keep-alive")) keep = true;
  }
  if (close) return false;
  return head.minor >= 1 || keep;
}

std::size_t ChunkedDecoder::take_whole_chunk(std::string_view in, std::string& out) {
  constexpr std::size_t kMaxDigits = 15;  // as the byte loop allows
  std::uint64_t size = 0;
  std::size_t k = 0;
  for (; k < in.size() && k < kMaxDigits; ++k) {
    const int digit = hex_digit(in[k]);
    if (digit < 0) break;
    size = size * 16 + static_cast<unsigned>(digit);
  }
  if (k == 0 || size == 0 || in.size() - k < 4 || in[k] != '\r' || in[k + 1] != '\n') return 0;
  const std::size_t data_at = k + 2;
  if (in.size() - data_at - 2 < size) return 0;  // not all here
  const auto end = data_at + static_cast<std::size_t>(size);
  if (in[end] != '\r' || in[end + 1] != '\n') return 0;
  out.append(in.data() + data_at, static_cast<std::size_t>(size));
  decoded_ += size;
  return end + 2;
}

std::optional<std::size_t> ChunkedDecoder::feed(std::string_view in, std::string& out,
                                                std::string& error) {
  std::size_t i = 0;
  while (i < in.size() && state_ != State::done) {
    const char c = in[i];
    switch (state_) {
      case State::size: {
        if (size_digits_ == 0) {
          if (const std::size_t whole = take_whole_chunk(in.substr(i), out); whole > 0) {
            i += whole;
            break;
          }
        }
        const int digit = hex_digit(c);
        if (digit >= 0) {
          if (++size_digits_ > 15) {
            error = "a chunk size too large";
            return std::nullopt;
          }
          remaining_ = remaining_ * 16 + static_cast<unsigned>(digit);
          ++i;
          break;
        }
        if (size_digits_ == 0) {
          error = "a chunk without a hexadecimal size";
          return std::nullopt;
        }
        if (c == ';' || c == ' ' || c == '\t') {
          state_ = State::size_ext;
          ++i;
          break;
        }
        if (c == '\r') {
          state_ = State::size_lf;
          ++i;
          break;
        }
        error = "an invalid character after a chunk size";
        return std::nullopt;
      }
      case State::size_ext:
        if (c == '\r') state_ = State::size_lf;
        ++i;
        break;
      case State::size_lf:
        if (c != '\n') {
          error = "a chunk size line not ended by CRLF";
          return std::nullopt;
        }
        ++i;
        size_digits_ = 0;
        if (remaining_ == 0) {
          state_ = State::trailer;
          trailer_empty_ = true;
        } else {
          state_ = State::data;
        }
        break;
      case State::data: {
        const std::size_t take =
            static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, in.size() - i));
        out.append(in.data() + i, take);
        i += take;
        remaining_ -= take;
        decoded_ += take;
        if (remaining_ == 0) state_ = State::data_cr;
        break;
      }
      case State::data_cr:
        if (c != '\r') {
          error = "chunk data longer than its size";
          return std::nullopt;
        }
        state_ = State::data_lf;
        ++i;
        break;
      case State::data_lf:
        if (c != '\n') {
          error = "chunk data not ended by CRLF";
          return std::nullopt;
        }
        state_ = State::size;
        ++i;
        break;
      case State::trailer:
        // Trailer fields are read and dropped; an empty line ends the body.
        if (c == '\r') {
          state_ = State::trailer_lf;
        } else {
          trailer_empty_ = false;
        }
        ++i;
        break;
      case State::trailer_lf:
        if (c != '\n') {
          error = "a trailer line not ended by CRLF";
          return std::nullopt;
        }
        ++i;
        if (trailer_empty_) {
          state_ = State::done;
        } else {
          state_ = State::trailer;
          trailer_empty_ = true;
        }
        break;
      case State::done: break;
    }
  }
  return i;
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out.reserve(out.size() + name.size() + value.size() + 4);
  out.append(name).append(": ", 2).append(value).append("\r\n", 2);
}

void append_chunk_size(std::string& out, std::size_t n) {
  char buf[24];
  auto [p, ec] = std::to_chars(buf, buf + sizeof(buf), n, 16);
  (void)ec;
  out.append(buf, p);
  out.append("\r\n");
}

}  // namespace openstation::http::wire
