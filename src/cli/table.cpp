#include "cli/table.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace openstation::cli {

Table::Table(std::vector<std::string> headers)
    : headers_(std::move(headers)), align_(headers_.size(), Align::left) {}

void Table::align(std::size_t column, Align a) {
  if (column < align_.size()) align_[column] = a;
}

void Table::add(std::vector<std::string> row) {
  row.resize(headers_.size());
  rows_.push_back(std::move(row));
}

std::string Table::render() const {
  std::vector<std::size_t> width(headers_.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (std::size_t i = 0; i < row.size(); ++i) {
      width[i] = std::max(width[i], display_width(row[i]));
    }
  };
  measure(headers_);
  for (const auto& r : rows_) measure(r);
  std::string out;
  auto line = [&](const std::vector<std::string>& row) {
    std::string text;
    for (std::size_t i = 0; i < row.size(); ++i) {
      const std::string pad(width[i] - display_width(row[i]), ' ');
      if (i > 0) text += "  ";
      text += align_[i] == Align::right ? pad + row[i] : row[i] + pad;
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += text + "\n";
  };
  line(headers_);
  for (const auto& r : rows_) line(r);
  return out;
}

std::string render_fields(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::size_t width = 0;
  for (const auto& [label, value] : fields) {
    if (!value.empty()) width = std::max(width, display_width(label) + 1);
  }
  std::string out;
  for (const auto& [label, value] : fields) {
    if (value.empty()) continue;
    out += label + ":" + std::string(width - display_width(label) - 1 + 2, ' ') + value + "\n";
  }
  return out;
}

std::size_t display_width(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}

namespace {

std::string one_decimal(double v, const char* unit) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, unit);
  return buf;
}

}  // namespace

std::string human_mib(std::int64_t mib) {
  if (mib < 0) return "-";
  if (mib < 1024) return std::to_string(mib) + " MiB";
  const double gib = static_cast<double>(mib) / 1024.0;
  if (gib < 1024.0) return one_decimal(gib, "GiB");
  return one_decimal(gib / 1024.0, "TiB");
}

std::string human_bytes(std::uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + " B";
  const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes) / 1024.0;
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  return one_decimal(v, units[u]);
}

std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view t) {
  // YYYY-MM-DDTHH:MM:SS[.fff][Z|+00:00]
  auto digits = [&](std::size_t pos, std::size_t n, int& out) {
    if (pos + n > t.size()) return false;
    out = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
      if (t[i] < '0' || t[i] > '9') return false;
      out = out * 10 + (t[i] - '0');
    }
    return true;
  };
  int year = 0, mon = 0, day = 0, hour = 0, min = 0, sec = 0;
  if (!digits(0, 4, year) || t.size() < 19 || t[4] != '-' || !digits(5, 2, mon) || t[7] != '-' ||
      !digits(8, 2, day) || (t[10] != 'T' && t[10] != 't' && t[10] != ' ') ||
      !digits(11, 2, hour) || t[13] != ':' || !digits(14, 2, min) || t[16] != ':' ||
      !digits(17, 2, sec)) {
    return std::nullopt;
  }
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) {
    return std::nullopt;
  }
  std::size_t pos = 19;
  std::int64_t millis = 0;
  if (pos < t.size() && t[pos] == '.') {
    ++pos;
    int scale = 100;
    const std::size_t start = pos;
    while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') {
      millis += (t[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  int offset_minutes = 0;
  const std::string_view zone = t.substr(pos);
  if (zone == "Z" || zone == "z") {
    offset_minutes = 0;
  } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
    int oh = 0, om = 0;
    if (!digits(pos + 1, 2, oh) || !digits(pos + 4, 2, om)) return std::nullopt;
    offset_minutes = (zone[0] == '-' ? -1 : 1) * (oh * 60 + om);
  } else {
    return std::nullopt;
  }
  using namespace std::chrono;
  const auto days = sys_days(year_month_day(std::chrono::year(year),
                                            std::chrono::month(static_cast<unsigned>(mon)),
                                            std::chrono::day(static_cast<unsigned>(day))));
  const auto tp =
      time_point_cast<system_clock::duration>(days + hours(hour) + minutes(min) + seconds(sec) +
                                              milliseconds(millis) - minutes(offset_minutes));
  return tp;
}

std::string human_time(std::string_view text, std::chrono::system_clock::time_point now) {
  if (text.empty()) return "-";
  const auto tp = parse_rfc3339(text);
  if (!tp) return std::string(text);
  using namespace std::chrono;
  const auto diff = duration_cast<seconds>(now - *tp).count();
  const bool future = diff < 0;
  const std::int64_t s = future ? -diff : diff;
  std::string amount;
  if (s < 5) return "just now";
  if (s < 60) {
    amount = std::to_string(s) + "s";
  } else if (s < 3600) {
    amount = std::to_string(s / 60) + "m";
  } else if (s < 86400) {
    amount = std::to_string(s / 3600) + "h";
  } else {
    amount = std::to_string(s / 86400) + "d";
  }
  return future ? "in " + amount : amount + " ago";
}

std::string human_time(std::string_view text) {
  return human_time(text, std::chrono::system_clock::now());
}

namespace {

const boost::json::value* field(const boost::json::value& v, std::string_view key) {
  const auto* o = v.if_object();
  if (!o) return nullptr;
  auto it = o->find(key);
  return it == o->end() ? nullptr : &it->value();
}

std::string scalar(const boost::json::value& v) {
  if (const auto* s = v.if_string()) return std::string(*s);
  if (const auto* b = v.if_bool()) return *b ? "yes" : "no";
  if (const auto* i = v.if_int64()) return std::to_string(*i);
  if (const auto* u = v.if_uint64()) return std::to_string(*u);
  if (const auto* d = v.if_double()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", *d);
    return buf;
  }
  if (const auto* o = v.if_object()) {
    // Objects in a cell: their name or id, which is what lists refer to.
    for (const char* k : {"name", "username", "id"}) {
      if (auto it = o->find(k); it != o->end() && it->value().is_string()) {
        return std::string(it->value().get_string());
      }
    }
    return boost::json::serialize(v);
  }
  return "";
}

}  // namespace

std::string cell(const boost::json::value& v, std::string_view key) {
  const auto* f = field(v, key);
  if (!f || f->is_null()) return "-";
  std::string text;
  if (const auto* a = f->if_array()) {
    for (const auto& e : *a) {
      if (!text.empty()) text += ",";
      text += scalar(e);
    }
  } else {
    text = scalar(*f);
  }
  return text.empty() ? "-" : text;
}

std::string str_field(const boost::json::value& v, std::string_view key) {
  const auto* f = field(v, key);
  if (!f || !f->is_string()) return "";
  return std::string(f->get_string());
}

std::int64_t int_field(const boost::json::value& v, std::string_view key, std::int64_t fallback) {
  const auto* f = field(v, key);
  if (!f) return fallback;
  if (const auto* i = f->if_int64()) return *i;
  if (const auto* u = f->if_uint64()) return static_cast<std::int64_t>(*u);
  if (const auto* d = f->if_double()) {
    if (static_cast<double>(static_cast<std::int64_t>(*d)) == *d) {
      return static_cast<std::int64_t>(*d);
    }
  }
  return fallback;
}

bool bool_field(const boost::json::value& v, std::string_view key, bool fallback) {
  const auto* f = field(v, key);
  if (!f || !f->is_bool()) return fallback;
  return f->get_bool();
}

}  // namespace openstation::cli
