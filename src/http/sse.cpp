#include "http/sse.hpp"

#include <charconv>
#include <cstring>

namespace openstation::http {

namespace {

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  out.append(value);
  out.push_back('\n');
}

}  // namespace

std::string format_sse(const SseEvent& e) {
  std::string out;
  out.reserve(e.data.size() + 16);
  append_sse(out, e);
  return out;
}

void append_sse(std::string& out, const SseEvent& e) {
  if (e.comment) {
    out.push_back(':');
    if (!e.comment->empty()) {
      out.push_back(' ');
      out.append(*e.comment);
    }
    out.append("\n\n");
    return;
  }
  if (!e.event.empty()) append_field(out, "event", e.event);
  if (!e.id.empty()) append_field(out, "id", e.id);
  if (e.retry) append_field(out, "retry", std::to_string(*e.retry));
  std::string_view rest = e.data;
  for (;;) {
    const auto nl = rest.find('\n');
    append_field(out, "data", rest.substr(0, nl));
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  out.push_back('\n');
}

std::string format_sse_data(std::string_view data) {
  SseEvent e;
  e.data = std::string(data);
  return format_sse(e);
}

std::string format_sse_comment(std::string_view text) {
  SseEvent e;
  e.comment = std::string(text);
  return format_sse(e);
}

void SseParser::reset() {
  buffer_.clear();
  pos_ = 0;
  current_ = SseEvent{};
  has_data_ = false;
  has_fields_ = false;
  skip_lf_ = false;
}

std::string& SseParser::input() {
  if (pos_ > 0 && pos_ >= buffer_.size() / 2) {
    buffer_.erase(0, pos_);
    pos_ = 0;
  }
  return buffer_;
}

bool SseParser::feed(std::string_view bytes) {
  std::string& in = input();
  if (in.size() - pos_ + bytes.size() > max_buffer_) return false;
  in.append(bytes);
  return true;
}

std::optional<std::string_view> SseParser::take_line() {
  if (skip_lf_ && pos_ < buffer_.size()) {
    if (buffer_[pos_] == '\n') ++pos_;
    skip_lf_ = false;
  }
  // The first CR or LF: two memchr calls (std::string::find_first_of tests every byte against
  // the set, a call per byte, which made a long data line the relay's biggest cost).
  const char* rest = buffer_.data() + pos_;
  const std::size_t rest_size = buffer_.size() - pos_;
  const auto* lf = static_cast<const char*>(std::memchr(rest, '\n', rest_size));
  const std::size_t before_lf = lf == nullptr ? rest_size : static_cast<std::size_t>(lf - rest);
  const auto* cr = static_cast<const char*>(std::memchr(rest, '\r', before_lf));
  if (cr == nullptr && lf == nullptr) return std::nullopt;
  const std::size_t end = pos_ + static_cast<std::size_t>((cr != nullptr ? cr : lf) - rest);
  std::string_view line(buffer_.data() + pos_, end - pos_);
  if (buffer_[end] == '\r') {
    if (end + 1 < buffer_.size()) {
      pos_ = end + 1 + (buffer_[end + 1] == '\n' ? 1 : 0);
    } else {
      pos_ = end + 1;
      skip_lf_ = true;  // a "\n" may follow in the next feed
    }
  } else {
    pos_ = end + 1;
  }
  return line;
}

std::optional<SseEvent> SseParser::next() {
  SseEvent e;
  if (!next(e)) return std::nullopt;
  return e;
}

SseNext SseParser::next(SseEvent& out, SseWire& wire) {
  // Between events (no field of one read yet, no CR whose LF may follow), an event that is one
  // "data: " line and the blank line is taken as it stands: its bytes are what append_sse()
  // would make of it. Blank lines there dispatch nothing (the one after a comment), so they go.
  constexpr std::string_view prefix = "data: ";
  if (pos_ == buffer_.size()) return SseNext::none;  // nothing to read (after each event, usually)
  if (!has_fields_ && !skip_lf_) {
    while (pos_ < buffer_.size() && buffer_[pos_] == '\n') ++pos_;
    const std::string_view rest = std::string_view(buffer_).substr(pos_);
    if (rest.starts_with(prefix)) {
      const auto* value = rest.data() + prefix.size();
      const std::size_t room = rest.size() - prefix.size();
      const auto* lf = static_cast<const char*>(std::memchr(value, '\n', room));
      if (lf != nullptr && lf + 1 < rest.data() + rest.size() && lf[1] == '\n') {
        const auto size = static_cast<std::size_t>(lf - value);
        if (std::memchr(value, '\r', size) == nullptr) {
          wire.data = std::string_view(value, size);
          wire.bytes = rest.substr(0, prefix.size() + size + 2);
          pos_ += wire.bytes.size();
          return SseNext::wire;
        }
      }
    }
  }
  return next(out) ? SseNext::event : SseNext::none;
}

namespace {

/// Empties `e`'s fields, keeping its strings' storage.
void clear_keeping_storage(SseEvent& e) {
  e.event.clear();
  e.data.clear();
  e.id.clear();
  e.retry.reset();
  e.comment.reset();
}

}  // namespace

bool SseParser::next(SseEvent& out) {
  while (auto line = take_line()) {
    if (line->empty()) {
      if (has_data_ || !current_.event.empty()) {
        // The finished event goes to `out`, and `out`'s old strings become the next event's:
        // the two sets of storage alternate.
        std::swap(out, current_);
        clear_keeping_storage(current_);
        has_data_ = false;
        has_fields_ = false;
        return true;
      }
      clear_keeping_storage(current_);
      has_fields_ = false;
      continue;
    }
    if ((*line)[0] == ':') {
      std::string_view text = line->substr(1);
      if (!text.empty() && text[0] == ' ') text.remove_prefix(1);
      clear_keeping_storage(out);
      out.comment.emplace(text);
      return true;
    }
    const auto colon = line->find(':');
    std::string_view name = line->substr(0, colon);
    std::string_view value;
    if (colon != std::string_view::npos) {
      value = line->substr(colon + 1);
      if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
    }
    has_fields_ = true;
    if (name == "data") {
      if (has_data_) current_.data.push_back('\n');
      current_.data.append(value);
      has_data_ = true;
    } else if (name == "event") {
      current_.event.assign(value);
    } else if (name == "id") {
      if (value.find('\0') == std::string_view::npos) current_.id.assign(value);
    } else if (name == "retry") {
      long long ms = 0;
      const auto* first = value.data();
      const auto* last = value.data() + value.size();
      auto [p, ec] = std::from_chars(first, last, ms);
      if (ec == std::errc() && p == last) current_.retry = ms;
    }
  }
  return false;
}

}  // namespace openstation::http
