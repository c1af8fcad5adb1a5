#pragma once
/// Server-sent events (text/event-stream): formatting events and parsing them incrementally from
/// bytes as they arrive. Pure code, no I/O.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace openstation::http {

/// One event. `data` may span several lines (sent as several `data:` lines). A comment line
/// (": keep-alive") is reported on its own with only `comment` set.
struct SseEvent {
  std::string event;                   ///< "event:" field; empty = the default "message"
  std::string data;                    ///< "data:" lines joined with '\n'
  std::string id;                      ///< "id:" field
  std::optional<long long> retry;      ///< "retry:" in milliseconds
  std::optional<std::string> comment;  ///< set for a comment line, then nothing else is

  bool is_comment() const { return comment.has_value(); }
  bool operator==(const SseEvent&) const = default;
};

/// The wire form of an event: optional "event:", "id:", "retry:" lines, one "data:" line per line
/// of data, then a blank line. "data: x\n\n" for a plain event.
std::string format_sse(const SseEvent& e);
/// Appends format_sse(e) to `out` (a relay gathering several events for one write).
void append_sse(std::string& out, const SseEvent& e);
/// Shorthand for format_sse({.data = data}).
std::string format_sse_data(std::string_view data);
/// A comment line ": text\n\n" (used as a keep-alive).
std::string format_sse_comment(std::string_view text);

/// An event as it came, when it is one "data: " line followed by a blank line, with no CR: its
/// data, and its bytes, which are exactly format_sse() of it. Views into the parser's buffer,
/// valid until the parser is next fed or reset.
struct SseWire {
  std::string_view data;   ///< the line's value
  std::string_view bytes;  ///< "data: " + data + "\n\n"
};

/// What SseParser::next(SseEvent&, SseWire&) found.
enum class SseNext {
  none,   ///< more bytes are needed
  event,  ///< an event or comment, parsed into the SseEvent
  wire,   ///< a plain event, left where it is: the SseWire has it
};

/// Incremental parser: feed() bytes in any split, then take complete events with next().
/// Lines end in "\n", "\r\n" or "\r". Fields other than event/data/id/retry are ignored, as the
/// SSE specification says; a block without data lines and without event dispatches nothing.
class SseParser {
 public:
  /// Appends bytes; refuses (returns false) once more than `max_buffer` bytes are pending
  /// without a complete line or event.
  bool feed(std::string_view bytes);
  /// The next complete event or comment, in order; nullopt when more bytes are needed.
  std::optional<SseEvent> next();
  /// next() into `out`, reusing its strings' storage (a relay parses every event into the same
  /// object, with no allocation once its strings have grown): true when `out` now holds the
  /// next event or comment (all its fields replaced); false when more bytes are needed, and
  /// then `out` is unchanged.
  bool next(SseEvent& out);
  /// next(out), except that a plain event (SseWire) is not parsed into `out`: a relay forwards
  /// its bytes as they came, with no copy of its data and no formatting (the usual event of an
  /// engine's stream). Anything else is parsed into `out` as next(out) does.
  SseNext next(SseEvent& out, SseWire& wire);
  /// The buffer feed() appends to, for a decoder that writes the bytes into it itself rather
  /// than through a copy: append to it, then call accepted(). Ends the views of earlier SseWires.
  std::string& input();
  /// After bytes were appended to input(): false when more than `max_buffer` bytes are pending
  /// without a complete line or event (as feed()'s refusal).
  bool accepted() const { return pending_bytes() <= max_buffer_; }
  /// Bytes received but not yet part of a complete event.
  std::size_t pending_bytes() const { return buffer_.size() - pos_; }
  /// Back to the state of a new parser (same `max_buffer`), keeping the buffer's storage.
  void reset();

  explicit SseParser(std::size_t max_buffer = 1u << 20) : max_buffer_(max_buffer) {}

 private:
  std::optional<std::string_view> take_line();

  std::string buffer_;
  std::size_t pos_ = 0;
  std::size_t max_buffer_;
  SseEvent current_;
  bool has_data_ = false;
  bool has_fields_ = false;
  bool skip_lf_ = false;
};

}  // namespace openstation::http
