#include "gateway/usage.hpp"

#include "gateway/json_scratch.hpp"

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace openstation::gateway {
namespace json = boost::json;

namespace {

std::int64_t int_of(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr) return 0;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->as_uint64());
  if (v->is_double()) {
    // A count beyond 64 bits is nonsense; converting it would be undefined.
    const double d = v->as_double();
    return d > -9.2e18 && d < 9.2e18 ? static_cast<std::int64_t>(d) : 0;
  }
  return 0;
}

/// Reads a usage object's counts into `u`.
void read_usage_object(const json::object& uo, Usage& u) {
  u.prompt_tokens = int_of(uo, "prompt_tokens");
  u.completion_tokens = int_of(uo, "completion_tokens");
  u.total_tokens = int_of(uo, "total_tokens");
  if (u.total_tokens == 0) u.total_tokens = u.prompt_tokens + u.completion_tokens;
  u.reported = true;
}

/// Reads "usage" of a parsed object into `u`; true when it was an object.
bool read_usage(const json::object& o, Usage& u) {
  const auto* v = o.if_contains("usage");
  if (v == nullptr || !v->is_object()) return false;
  read_usage_object(v->as_object(), u);
  return true;
}

/// What a scan of an object's members found.
enum class Scan { done, malformed, unsure };

/// Byte classes for the scan: what ends a run of ordinary bytes inside a string, and a bare value
/// (number, true, false, null).
struct ByteClasses {
  bool in_string[256] = {};
  bool ends_scalar[256] = {};
  constexpr ByteClasses() {
    for (unsigned char c : {'"', '\\'}) in_string[c] = true;
    for (unsigned char c : {',', '}', ']', ' ', '\t', '\n', '\r'}) ends_scalar[c] = true;
  }
};
constexpr ByteClasses kBytes;

/// The first index at or after `i` (and before `n`) whose byte is one of `Special...`, or `n`.
/// Sixteen bytes at a time where SSE2 is there (every x86-64), for the long runs inside strings;
/// `table` (the same set) finishes the tail.
template <char... Special>
std::size_t find_special(const unsigned char* bytes, std::size_t i, std::size_t n,
                         const bool (&table)[256]) {
#if defined(__SSE2__)
  while (i + 16 <= n) {
    const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + i));
    __m128i hit = _mm_setzero_si128();
    ((hit = _mm_or_si128(hit, _mm_cmpeq_epi8(block, _mm_set1_epi8(Special)))), ...);
    const auto mask = static_cast<unsigned>(_mm_movemask_epi8(hit));
    if (mask != 0) return i + static_cast<std::size_t>(__builtin_ctz(mask));
    i += 16;
  }
#endif
  while (i < n && !table[bytes[i]]) ++i;
  return i;
}

/// Bit k set for byte k of a 64-byte block: its quotes, backslashes, and brackets that open
/// ('{', '[') and close ('}', ']').
struct BlockMasks {
  std::uint64_t quote = 0;
  std::uint64_t backslash = 0;
  std::uint64_t open = 0;
  std::uint64_t close = 0;
};

BlockMasks masks_of(const unsigned char* p) {
  BlockMasks m;
#if defined(__SSE2__)
  // OR 0x20 maps '[' onto '{' and ']' onto '}', and nothing else onto either.
  const __m128i case_bit = _mm_set1_epi8(0x20);
  for (int k = 0; k < 4; ++k) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * k));
    const __m128i folded = _mm_or_si128(v, case_bit);
    const auto bits = [&](__m128i eq) {
      return static_cast<std::uint64_t>(static_cast<unsigned>(_mm_movemask_epi8(eq))) << (16 * k);
    };
    m.quote |= bits(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')));
    m.backslash |= bits(_mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
    m.open |= bits(_mm_cmpeq_epi8(folded, _mm_set1_epi8('{')));
    m.close |= bits(_mm_cmpeq_epi8(folded, _mm_set1_epi8('}')));
  }
#else
  for (int k = 0; k < 64; ++k) {
    const std::uint64_t bit = std::uint64_t{1} << k;
    if (p[k] == '"') m.quote |= bit;
    if (p[k] == '\\') m.backslash |= bit;
    if (p[k] == '{' || p[k] == '[') m.open |= bit;
    if (p[k] == '}' || p[k] == ']') m.close |= bit;
  }
#endif
  return m;
}

/// At an opening bracket `i`: the index just past the bracket that closes it (0 when the text
/// ends first). Strings are skipped with their escapes (a backslash escapes the byte after it),
/// as skip_string does, but 64 bytes at a time: the bytes inside strings are found from the
/// block's unescaped quotes (a prefix XOR), and only the brackets outside them are visited.
std::size_t skip_nested(const unsigned char* bytes, std::size_t i, std::size_t n) {
  std::uint64_t in_string = 0;  // all ones when the previous block ended inside a string
  bool escape_next = false;     // the previous block ended with a backslash that escapes
  std::size_t depth = 0;
  unsigned char tail[64];
  for (std::size_t base = i; base < n; base += 64) {
    const unsigned char* p = bytes + base;
    if (n - base < 64) {  // the last, partial block: padded with spaces, which mean nothing
      std::memset(tail, ' ', sizeof(tail));
      std::memcpy(tail, p, n - base);
      p = tail;
    }
    const BlockMasks m = masks_of(p);
    std::uint64_t escaped = 0;
    std::uint64_t escapes = m.backslash;
    if (escape_next) {
      escaped = 1;
      escapes &= ~std::uint64_t{1};
    }
    escape_next = false;
    while (escapes != 0) {
      const int k = __builtin_ctzll(escapes);
      escapes &= escapes - 1;
      if (k == 63) {
        escape_next = true;
        break;
      }
      const std::uint64_t next = std::uint64_t{1} << (k + 1);
      escaped |= next;
      escapes &= ~next;  // an escaped backslash escapes nothing
    }
    // Inside strings: from an opening quote up to (not including) its closing one.
    std::uint64_t inside = m.quote & ~escaped;
    inside ^= inside << 1;
    inside ^= inside << 2;
    inside ^= inside << 4;
    inside ^= inside << 8;
    inside ^= inside << 16;
    inside ^= inside << 32;
    inside ^= in_string;
    in_string = (inside >> 63) != 0 ? ~std::uint64_t{0} : 0;
    std::uint64_t brackets = (m.open | m.close) & ~inside;
    while (brackets != 0) {
      const int k = __builtin_ctzll(brackets);
      brackets &= brackets - 1;
      if ((m.open >> k) & 1) {
        ++depth;
      } else if (--depth == 0) {
        return base + static_cast<std::size_t>(k) + 1;
      }
    }
  }
  return 0;
}

/// Reads the members of the JSON object that `text` holds, without building the document,
/// handing each one's name and the raw text of its value to `on_member`: strings are skipped
/// with their escapes, nested values by their depth. `malformed` when the text is not one object
/// as far as the scan looks (a valid document never is); `unsure` when a member's name has an
/// escape in it, which only a real parse can compare. A valid document's members are exactly the
/// ones a parse finds, in order; an invalid one may still show some.
template <class OnMember>
Scan scan_members(std::string_view text, OnMember&& on_member) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  bool escaped = false;
  const auto skip_ws = [&] {
    if (i < n && bytes[i] > ' ') return;  // compact JSON, the engines' usual: nothing to skip
    while (i < n && (bytes[i] == ' ' || bytes[i] == '\t' || bytes[i] == '\n' || bytes[i] == '\r'))
      ++i;
  };
  const auto skip_string = [&] {  // at the opening quote
    for (++i; i < n; ++i) {
      i = find_special<'"', '\\'>(bytes, i, n, kBytes.in_string);
      if (i >= n) break;
      if (bytes[i] == '"') {
        ++i;
        return true;
      }
      escaped = true;  // a backslash: the next byte is escaped
      ++i;
    }
    return false;
  };
  const auto skip_value = [&] {
    if (i >= n) return false;
    if (bytes[i] == '"') return skip_string();
    if (bytes[i] == '{' || bytes[i] == '[') {
      i = skip_nested(bytes, i, n);
      return i != 0;
    }
    const std::size_t start = i;
    while (i < n && !kBytes.ends_scalar[bytes[i]]) ++i;
    return i > start;
  };

  skip_ws();
  if (i >= n || bytes[i] != '{') return Scan::malformed;
  ++i;
  skip_ws();
  if (i < n && bytes[i] == '}') {
    ++i;
  } else {
    for (;;) {
      skip_ws();
      if (i >= n || bytes[i] != '"') return Scan::malformed;
      const std::size_t name_start = i + 1;
      escaped = false;
      if (!skip_string()) return Scan::malformed;
      if (escaped) return Scan::unsure;
      const std::string_view name = text.substr(name_start, i - 1 - name_start);
      skip_ws();
      if (i >= n || bytes[i] != ':') return Scan::malformed;
      ++i;
      skip_ws();
      const std::size_t value_start = i;
      if (!skip_value()) return Scan::malformed;
      on_member(name, text.substr(value_start, i - value_start));
      skip_ws();
      if (i >= n) return Scan::malformed;
      if (bytes[i] == '}') break;
      if (bytes[i] != ',') return Scan::malformed;
      ++i;
    }
    ++i;
  }
  skip_ws();
  return i == n ? Scan::done : Scan::malformed;
}

/// A usage object's counts read by the scan: true when every count is a plain integer (or not a
/// number, which counts as 0, as int_of does); false when one needs a real parse (a fraction,
/// an exponent, beyond 64 bits) or the object is not one.
bool scan_usage_object(std::string_view text, Usage& u) {
  bool plain = true;
  const auto count = [&](std::string_view value, std::int64_t& out) {
    out = 0;
    const bool negative = value.front() == '-';
    if (negative) value.remove_prefix(1);
    if (value.empty() || value.front() < '0' || value.front() > '9') {
      if (negative) plain = false;  // not a number the scan reads
      return;                       // a string, null, ...: no count
    }
    // Up to 18 digits cannot overflow; anything longer, or not digits, goes to the parser.
    if (value.size() > 18) {
      plain = false;
      return;
    }
    std::int64_t n = 0;
    for (const char d : value) {
      if (d < '0' || d > '9') {
        plain = false;
        return;
      }
      n = n * 10 + (d - '0');
    }
    out = negative ? -n : n;
  };
  const Scan scan = scan_members(text, [&](std::string_view name, std::string_view value) {
    if (name == "prompt_tokens") {
      count(value, u.prompt_tokens);
    } else if (name == "completion_tokens") {
      count(value, u.completion_tokens);
    } else if (name == "total_tokens") {
      count(value, u.total_tokens);
    }
  });
  if (scan != Scan::done || !plain) return false;
  if (u.total_tokens == 0) u.total_tokens = u.prompt_tokens + u.completion_tokens;
  u.reported = true;
  return true;
}

/// Reads the counts of a usage object's text: by the scan when they are plain integers, by a
/// parse otherwise. False (and `u` unreported) when the text is not a valid object.
bool read_usage_text(std::string_view text, Usage& u) {
  if (scan_usage_object(text, u)) return true;
  u = Usage{};
  boost::system::error_code ec;
  detail::JsonScratch scratch;
  const json::value v = scratch.parse(text, ec);
  if (ec || !v.is_object()) return false;
  read_usage_object(v.as_object(), u);
  return true;
}

}  // namespace

Usage usage_of_response(std::string_view body) {
  Usage u;
  // A response is a few hundred bytes up to megabytes (embeddings): the scan finds the top-level
  // "usage" without building the document, and reads its counts when they are plain integers.
  std::string_view usage;
  const Scan scan = scan_members(body, [&](std::string_view name, std::string_view value) {
    if (name == "usage") usage = value;  // the last one, as a parse keeps
  });
  if (scan == Scan::malformed) return u;
  if (scan == Scan::done) {
    if (usage.starts_with('{')) read_usage_text(usage, u);
    return u;
  }
  boost::system::error_code ec;  // a member name with an escape: only a parse can read it
  detail::JsonScratch scratch;
  const json::value v = scratch.parse(body, ec);
  if (!ec && v.is_object()) read_usage(v.as_object(), u);
  return u;
}

namespace {

/// What on_data needs from a chunk's top level.
struct Chunk {
  bool is_error = false;    ///< an "error" member, or "object": "error"
  bool has_usage = false;   ///< "usage" is an object (its counts are in `usage`)
  bool no_choices = false;  ///< "choices" is absent or an empty array
  Usage usage;
};

/// True for the text of an empty array ("[]", "[ ]").
bool is_empty_array(std::string_view value) {
  if (!value.starts_with('[')) return false;
  value.remove_prefix(1);
  const auto k = value.find_first_not_of(" \t\r\n");
  return k != std::string_view::npos && value[k] == ']';
}

/// Reads a chunk from its parsed document; false when it is not a JSON object.
bool read_chunk_parsed(std::string_view data, Chunk& c) {
  boost::system::error_code ec;
  detail::JsonScratch scratch;
  const json::value v = scratch.parse(data, ec);
  if (ec || !v.is_object()) return false;
  const auto& o = v.as_object();
  c.is_error = o.contains("error") || (o.contains("object") && o.at("object") == "error");
  c.has_usage = read_usage(o, c.usage);
  const auto* choices = o.if_contains("choices");
  c.no_choices = choices == nullptr || (choices->is_array() && choices->as_array().empty());
  return true;
}

/// Reads a chunk with the member scan: engines that stream usage put "usage": null in every
/// chunk, so a chunk that mentions usage is the common case and must not cost a parse. Falls back
/// to the parse for what the scan cannot decide. False when it is not a JSON object.
bool read_chunk(std::string_view data, Chunk& c) {
  std::string_view usage, choices, object;
  bool has_error = false;
  const Scan scan = scan_members(data, [&](std::string_view name, std::string_view value) {
    if (name == "usage") {
      usage = value;
    } else if (name == "choices") {
      choices = value;
    } else if (name == "object") {
      object = value;
    } else if (name == "error") {
      has_error = true;
    }
  });
  if (scan == Scan::malformed) return false;
  const bool object_escaped = object.starts_with('"') && object.find('\\') != object.npos;
  if (scan == Scan::unsure || object_escaped) return read_chunk_parsed(data, c);
  c.is_error = has_error || object == "\"error\"";
  if (usage.starts_with('{')) {
    if (!read_usage_text(usage, c.usage)) return false;  // the document is not valid either
    c.has_usage = true;
  }
  c.no_choices = choices.empty() || is_empty_array(choices);
  return true;
}

/// At `j` of `data`: false when what starts there could make a chunk more than content: "error"
/// (a member, or the value of "object"), `\u` (an escape that could spell a name), or "usage"
/// other than a name whose value is null (`"usage":null`).
bool plain_at(std::string_view data, std::size_t j) {
  const std::string_view rest = data.substr(j);
  if (rest.starts_with("\\u") || rest.starts_with("error")) return false;
  if (rest.starts_with("usage"))
    return j > 0 && data[j - 1] == '"' && rest.starts_with("usage\":null");
  return true;
}

/// True when the chunk, whatever else it holds, can have no top-level "usage" object and no
/// error: no "error" in it anywhere, no `\u`, and every "usage" a name with the value null (the
/// engines' content chunks: vLLM leaves usage out, others write "usage":null). A scan would find
/// an ordinary content chunk, or a malformed one, which counts the same. One pass, sixteen bytes
/// at a time where SSE2 is there: a byte that may start one of the three words ('u' with 'e'
/// four bytes on, 'e' with 'r', '\\' with 'u' next) is looked at by plain_at().
bool plainly_content(std::string_view data) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(data.data());
  const std::size_t n = data.size();
  std::size_t i = 0;
#if defined(__SSE2__)
  const auto load = [&](std::size_t at) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + at));
  };
  const auto is = [](__m128i v, char c) { return _mm_cmpeq_epi8(v, _mm_set1_epi8(c)); };
  // The candidates among the sixteen bytes from `at` (each block reads 20).
  const auto hits = [&](std::size_t at) {
    const __m128i v0 = load(at);
    const __m128i v1 = load(at + 1);
    const __m128i v4 = load(at + 4);
    const __m128i hit = _mm_or_si128(_mm_or_si128(_mm_and_si128(is(v0, 'u'), is(v4, 'e')),
                                                  _mm_and_si128(is(v0, 'e'), is(v4, 'r'))),
                                     _mm_and_si128(is(v0, '\\'), is(v1, 'u')));
    return static_cast<unsigned>(_mm_movemask_epi8(hit));
  };
  const auto all_plain = [&](std::size_t at, unsigned mask) {
    for (; mask != 0; mask &= mask - 1) {
      if (!plain_at(data, at + static_cast<std::size_t>(__builtin_ctz(mask)))) return false;
    }
    return true;
  };
  if (n >= 20) {
    for (; i + 20 <= n; i += 16) {
      if (!all_plain(i, hits(i))) return false;
    }
    // The rest but the last four bytes, in one more block that overlaps the last one: its
    // bytes before `i` were looked at already. A word of five bytes cannot start in the last
    // four, so only a "\u" is left for the loop below.
    const std::size_t last = n - 20;
    if (!all_plain(last, hits(last) & (~0u << (i - last)))) return false;
    for (i = n - 4; i + 1 < n; ++i) {
      if (bytes[i] == '\\' && bytes[i + 1] == 'u') return false;
    }
    return true;
  }
#endif
  for (; i < n; ++i) {
    if ((bytes[i] == 'u' || bytes[i] == 'e' || bytes[i] == '\\') && !plain_at(data, i))
      return false;
  }
  return true;
}

}  // namespace

StreamMeter::Verdict StreamMeter::on_data(std::string_view data) {
  if (data == "[DONE]") {
    done_ = true;
    return Verdict::forward;
  }
  if (plainly_content(data)) {
    ++content_events_;
    return Verdict::forward;
  }
  Chunk c;
  if (!read_chunk(data, c)) {
    ++content_events_;
    return Verdict::forward;
  }
  if (c.is_error) {
    saw_error_ = true;
    return Verdict::forward;
  }
  if (c.has_usage) usage_ = c.usage;
  if (c.has_usage && c.no_choices) return keep_usage_chunk_ ? Verdict::forward : Verdict::drop;
  ++content_events_;
  return Verdict::forward;
}

}  // namespace openstation::gateway
