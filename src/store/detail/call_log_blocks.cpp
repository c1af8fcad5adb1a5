#include "store/detail/call_log_blocks.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <numeric>
#include <optional>
#include <ranges>
#include <span>
#include <utility>

namespace openstation::store::detail {
namespace {

constexpr std::size_t kFields = 11;  ///< per call, see encode_call_log
// Blocks are read a few at a time, more as a read goes on: a page usually needs only the newest
// block (a block holds up to a batch of calls: thousands under load).
constexpr std::int64_t kFirstRead = 2;
constexpr std::int64_t kMostPerRead = 64;

void put_number(std::string& out, auto value) {
  std::array<char, 32> buf;
  const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), value);
  out.append(buf.data(), r.ptr);
}

/// A double as a hexadecimal float ("1.ep+6" for 120): exact, and far cheaper to write than the
/// shortest decimal that reads back the same, at about the same length.
void put_number(std::string& out, double value) {
  std::array<char, 40> buf;
  const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), value, std::chars_format::hex);
  out.append(buf.data(), r.ptr);
}

void put_text(std::string& out, std::string_view s) {
  if (!s.empty() && s.front() == '=') {  // "=" alone means "as the call before"
    out += "\\=";
    s.remove_prefix(1);
  }
  for (;;) {
    const auto special = std::find_if(s.begin(), s.end(), [](char c) {
      return c == '\\' || c == '\t' || c == '\n' || c == '\r' || c == '\0';
    });
    out.append(s.begin(), special);
    if (special == s.end()) return;
    out += '\\';
    switch (*special) {
      case '\t': out += 't'; break;
      case '\n': out += 'n'; break;
      case '\r': out += 'r'; break;
      case '\0': out += '0'; break;
      default: out += '\\'; break;
    }
    s.remove_prefix(static_cast<std::size_t>(special - s.begin()) + 1);
  }
}

bool get_text(std::string_view s, std::string& out) {
  out.clear();
  for (;;) {
    const auto slash = s.find('\\');
    out.append(s.substr(0, slash));
    if (slash == std::string_view::npos) return true;
    if (slash + 1 >= s.size()) return false;
    switch (s[slash + 1]) {
      case 't': out += '\t'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case '0': out += '\0'; break;
      case '\\': out += '\\'; break;
      case '=': out += '='; break;
      default: return false;
    }
    s.remove_prefix(slash + 2);
  }
}

template <class N>
bool get_number(std::string_view s, N& out) {
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

/// A double written by put_number (hexadecimal, with its 'p' exponent) or, in blocks written
/// before that, in decimal.
bool get_number(std::string_view s, double& out) {
  const auto format =
      s.find('p') != std::string_view::npos ? std::chars_format::hex : std::chars_format::general;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out, format);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

/// One block row as read for listing or retention.
struct Block {
  std::int64_t first_id = 0;
  std::string service;
  std::string text;
};

core::Error corrupt_block(std::int64_t first_id) {
  return internal_error("corrupt call-log block " + std::to_string(first_id) +
                        " in call_log_blocks; the database was changed outside openstation");
}

core::Result<std::vector<Block>> read_blocks(Connection& c, const std::string& sql,
                                             const Params& params) {
  auto rows = c.exec(sql, params);
  if (!rows) return rows.error();
  std::vector<Block> out;
  out.reserve(rows->rows.size());
  for (auto& row : rows->rows) {
    Block b;
    if (row.size() != 3 || !decode_int(row[0], b.first_id)) {
      return internal_error("call_log_blocks returned a row without its first_id");
    }
    b.service = Table<CallLog>::text(row[1]);
    b.text = Table<CallLog>::text(row[2]);
    out.push_back(std::move(b));
  }
  return out;
}

/// Appends a block's calls, in order, to `out` (each relative to the one before it) and returns
/// the range of their times; `millis(call)` is a call's time as stored.
template <class Calls, class Millis>
std::pair<std::int64_t, std::int64_t> encode_block(std::string& out, const Calls& calls,
                                                   Millis millis) {
  std::int64_t lo = std::numeric_limits<std::int64_t>::max();
  std::int64_t hi = std::numeric_limits<std::int64_t>::min();
  const CallLog* previous = nullptr;
  std::int64_t previous_ms = 0;
  for (const CallLog& call : calls) {
    const std::int64_t ms = millis(call);
    lo = std::min(lo, ms);
    hi = std::max(hi, ms);
    encode_call_log(out, call, ms, previous, previous_ms);
    previous = &call;
    previous_ms = ms;
  }
  return {lo, hi};
}

}  // namespace

void encode_call_log(std::string& out, const CallLog& log, std::int64_t time_ms,
                     const CallLog* previous, std::int64_t previous_ms) {
  // A field equal to the previous call's is written as "=": calls of one service from one batch
  // mostly share user, key, instance, status and error (38 bytes a call for the benchmark's).
  const auto text_field = [&](const std::string CallLog::*member) {
    out += '\t';
    if (previous != nullptr && log.*member == previous->*member) {
      out += '=';
    } else {
      put_text(out, log.*member);
    }
  };
  const auto number_field = [&](const auto CallLog::*member) {
    out += '\t';
    if (previous != nullptr && log.*member == previous->*member) {
      out += '=';
    } else {
      put_number(out, log.*member);
    }
  };
  put_number(out, time_ms - (previous != nullptr ? previous_ms : 0));
  text_field(&CallLog::user_id);
  text_field(&CallLog::key_id);
  text_field(&CallLog::instance_id);
  number_field(&CallLog::status);
  number_field(&CallLog::duration_ms);
  number_field(&CallLog::prompt_tokens);
  number_field(&CallLog::completion_tokens);
  out += '\t';
  if (log.ttft_ms) {
    if (previous != nullptr && previous->ttft_ms == log.ttft_ms) {
      out += '=';
    } else {
      put_number(out, *log.ttft_ms);
    }
  }
  number_field(&CallLog::tokens_per_second);
  text_field(&CallLog::error);
  out += '\n';
}

bool decode_call_logs(std::string_view text, std::int64_t first_id, std::string_view service,
                      std::vector<CallLog>& out) {
  std::array<std::string_view, kFields> f;
  std::optional<std::size_t> prev;  // index in `out` of the previous call of this block
  std::int64_t ms = 0;
  while (!text.empty()) {
    const auto end = text.find('\n');
    if (end == std::string_view::npos) return false;
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end + 1);
    for (std::size_t i = 0; i < kFields; ++i) {
      const auto tab = line.find('\t');
      if ((tab == std::string_view::npos) != (i + 1 == kFields)) return false;
      f[i] = line.substr(0, tab);
      line.remove_prefix(tab == std::string_view::npos ? line.size() : tab + 1);
    }
    CallLog& log = out.emplace_back();
    const CallLog* before = prev ? &out[*prev] : nullptr;
    const auto same = [&](std::string_view field) { return before != nullptr && field == "="; };
    const auto text_field = [&](std::string_view field, std::string CallLog::*member) {
      if (field == "=") {  // as the call before; a first call has none
        if (before == nullptr) return false;
        log.*member = before->*member;
        return true;
      }
      return get_text(field, log.*member);
    };
    const auto number_field = [&](std::string_view field, auto CallLog::*member) {
      if (same(field)) {
        log.*member = before->*member;
        return true;
      }
      return get_number(field, log.*member);
    };
    log.id = first_id++;
    log.service = service;
    std::int64_t delta = 0;
    if (!get_number(f[0], delta) || !text_field(f[1], &CallLog::user_id) ||
        !text_field(f[2], &CallLog::key_id) || !text_field(f[3], &CallLog::instance_id) ||
        !number_field(f[4], &CallLog::status) || !number_field(f[5], &CallLog::duration_ms) ||
        !number_field(f[6], &CallLog::prompt_tokens) ||
        !number_field(f[7], &CallLog::completion_tokens) ||
        !number_field(f[9], &CallLog::tokens_per_second) || !text_field(f[10], &CallLog::error)) {
      return false;
    }
    ms = before != nullptr ? ms + delta : delta;
    log.time = from_millis(ms);
    if (same(f[8])) {
      if (!before->ttft_ms) return false;
      log.ttft_ms = before->ttft_ms;
    } else if (!f[8].empty()) {
      std::int64_t ttft = 0;
      if (!get_number(f[8], ttft)) return false;
      log.ttft_ms = ttft;
    }
    prev = out.size() - 1;
  }
  return true;
}

core::Result<CallLog> SqlCallLogRepo::append(CallLog entry) {
  if (entry.time == TimePoint{}) entry.time = shared_.now();
  entry.time = from_millis(to_millis(entry.time));  // what a read gives back
  std::int64_t id = 0;
  if (auto r = append_blocks({&entry, 1}, id); !r) return r.error();
  entry.id = id;
  return entry;
}

core::Result<void> SqlCallLogRepo::append_all(std::span<const CallLog> entries) {
  std::int64_t first = 0;
  return append_blocks(entries, first);
}

core::Result<void> SqlCallLogRepo::append_blocks(std::span<const CallLog> entries,
                                                 std::int64_t& first_id) {
  if (entries.empty()) return {};
  // The calls of one service, in append order, make one block. The scratch space is the
  // calling thread's: a writer appending batch after batch reuses it.
  thread_local std::vector<std::size_t> order;
  thread_local std::vector<std::string_view> users;
  thread_local std::string text;
  thread_local std::string user_list;
  thread_local Params params(7);
  order.resize(entries.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  const auto by_service = [&](std::size_t a, std::size_t b) {
    return entries[a].service < entries[b].service;
  };
  // A batch of one service (or already grouped) needs no sort.
  if (!std::is_sorted(order.begin(), order.end(), by_service)) {
    std::stable_sort(order.begin(), order.end(), by_service);
  }
  const std::int64_t now_ms = to_millis(shared_.now());
  const auto n = static_cast<std::int64_t>(entries.size());
  return row_table_.run<void>([&](Connection& c) -> core::Result<void> {
    if (auto r = c.begin(); !r) return r;
    const auto fail = [&](core::Error e) -> core::Result<void> {
      (void)c.rollback();
      return e;
    };
    // The UPDATE also queues concurrent appenders (a row lock on PostgreSQL; SQLite has one
    // writer), so two batches never get the same ids.
    auto next = c.exec("UPDATE call_log_ids SET next_id = next_id + ? RETURNING next_id", {n});
    if (!next) return fail(next.error());
    std::int64_t end = 0;
    if (next->rows.empty() || next->rows[0].empty() || !decode_int(next->rows[0][0], end)) {
      return fail(
          internal_error("call_log_ids has no row; the database was changed outside "
                         "openstation"));
    }
    std::int64_t id = end - n;
    first_id = id;
    for (std::size_t i = 0; i < order.size();) {
      const CallLog& head = entries[order[i]];
      users.clear();
      std::size_t j = i;
      for (; j < order.size() && entries[order[j]].service == head.service; ++j) {
        // A user's calls often come in a row: only a change of user is kept for the sort.
        const std::string_view user = entries[order[j]].user_id;
        if (users.empty() || users.back() != user) users.push_back(user);
      }
      text.clear();
      const auto [lo, hi] = encode_block(
          text,
          std::span(order).subspan(i, j - i) |
              std::views::transform([&](std::size_t k) -> const CallLog& { return entries[k]; }),
          [&](const CallLog& log) {
            return log.time == TimePoint{} ? now_ms : to_millis(log.time);
          });
      const auto count = static_cast<std::int64_t>(j - i);
      std::sort(users.begin(), users.end());
      users.erase(std::unique(users.begin(), users.end()), users.end());
      user_list.assign(1, '\t');
      for (const auto user : users) {
        put_text(user_list, user);
        user_list += '\t';
      }
      params[0] = id;
      params[1] = count;
      encode_into(head.service, params[2]);
      encode_into(user_list, params[3]);
      params[4] = lo;
      params[5] = hi;
      encode_into(text, params[6]);
      auto rows = c.exec(
          "INSERT INTO call_log_blocks (first_id, n, service, users, time_first, time_last, "
          "calls) VALUES (?, ?, ?, ?, ?, ?, ?)",
          params);
      if (!rows) return fail(rows.error());
      id += count;
      i = j;
    }
    return c.commit();
  });
}

core::Result<Page<CallLog>> SqlCallLogRepo::list(const CallLogFilter& filter,
                                                 const PageRequest& page) {
  std::int64_t below = std::numeric_limits<std::int64_t>::max();
  if (!page.cursor.empty() && !decode_int(Value(page.cursor), below)) {
    return core::invalid("store.invalid",
                         "the cursor \"" + page.cursor + "\" is not one this list returned",
                         "cursor");
  }
  const std::size_t want = page.limit > 0 ? page.limit + 1 : 0;  // one more: is there a next?
  const auto matches = [&](const CallLog& l) {
    return l.id < below && (!filter.user_id || l.user_id == *filter.user_id) &&
           (!filter.key_id || l.key_id == *filter.key_id) &&
           (!filter.since || l.time >= *filter.since) && (!filter.until || l.time < *filter.until);
  };
  Page<CallLog> out;
  auto blocks = row_table_.run<void>([&](Connection& c) -> core::Result<void> {
    std::string sql = "SELECT first_id, service, calls FROM call_log_blocks WHERE first_id < ?";
    Params params{below};
    if (filter.service) {
      sql += " AND service = ?";
      params.emplace_back(*filter.service);
    }
    if (filter.user_id) {
      // Only the blocks that hold a call of this user (exactly: the calls are checked below).
      std::string term = "\t";
      put_text(term, *filter.user_id);
      term += '\t';
      sql += " AND users LIKE ? ESCAPE '\\'";
      params.emplace_back("%" + like_escape(term) + "%");
    }
    if (filter.since) {
      sql += " AND time_last >= ?";
      params.emplace_back(to_millis(*filter.since));
    }
    if (filter.until) {
      sql += " AND time_first < ?";
      params.emplace_back(to_millis(*filter.until));
    }
    sql += " ORDER BY first_id DESC LIMIT ?";
    std::int64_t chunk = kFirstRead;
    params.emplace_back(chunk);
    std::vector<CallLog> calls;
    for (;;) {
      auto read = read_blocks(c, sql, params);
      if (!read) return read.error();
      for (const auto& b : *read) {
        calls.clear();
        if (!decode_call_logs(b.text, b.first_id, b.service, calls)) {
          return corrupt_block(b.first_id);
        }
        for (auto it = calls.rbegin(); it != calls.rend(); ++it) {
          if (!matches(*it)) continue;
          out.items.push_back(std::move(*it));
          if (want > 0 && out.items.size() == want) return {};
        }
      }
      if (read->size() < static_cast<std::size_t>(chunk)) return {};
      params[0] = read->back().first_id;
      chunk = std::min(chunk * 4, kMostPerRead);
      params.back() = chunk;
    }
  });
  if (!blocks) return blocks.error();
  if (want == 0 || out.items.size() < want) {
    // The calls from before the blocks: all their ids are below the blocks'.
    PageRequest rest{.limit = want == 0 ? 0 : want - out.items.size(),
                     .cursor = page.cursor.empty() ? "" : std::to_string(below)};
    auto older = rows_.list(filter, rest);
    if (!older) return older.error();
    for (auto& l : older->items) out.items.push_back(std::move(l));
  }
  if (want > 0 && out.items.size() == want) {
    out.items.pop_back();
    out.next_cursor = std::to_string(out.items.back().id);
  }
  return out;
}

core::Result<std::size_t> SqlCallLogRepo::remove_before(TimePoint before, std::size_t at_most) {
  // The older table first: its calls were appended before every block's.
  auto removed = rows_.remove_before(before, at_most);
  if (!removed) return removed;
  std::size_t done = *removed;
  if (at_most > 0 && done >= at_most) return done;
  auto r = row_table_.run<void>([&](Connection& c) -> core::Result<void> {
    auto left = c.exec("SELECT 1 FROM " + row_table_.table() + " LIMIT 1");
    if (!left) return left.error();
    if (!left->rows.empty()) return {};  // the cut is in the older table
    if (auto b = c.begin(); !b) return b;
    const auto fail = [&](core::Error e) -> core::Result<void> {
      (void)c.rollback();
      return e;
    };
    std::vector<CallLog> calls;
    std::string rest;
    std::int64_t after = std::numeric_limits<std::int64_t>::min();
    std::int64_t chunk = kFirstRead;
    for (;;) {
      auto read = read_blocks(c,
                              "SELECT first_id, service, calls FROM call_log_blocks "
                              "WHERE first_id > ? ORDER BY first_id LIMIT ?",
                              {after, chunk});
      if (!read) return fail(read.error());
      for (const auto& b : *read) {
        calls.clear();
        if (!decode_call_logs(b.text, b.first_id, b.service, calls)) {
          return fail(corrupt_block(b.first_id));
        }
        // The calls before the first one at or after the cut, and no more than allowed.
        std::size_t k = 0;
        while (k < calls.size() && calls[k].time < before) ++k;
        if (at_most > 0) k = std::min(k, at_most - done);
        if (k == calls.size()) {
          auto del = c.exec("DELETE FROM call_log_blocks WHERE first_id = ?", {b.first_id});
          if (!del) return fail(del.error());
          done += k;
          if (at_most > 0 && done >= at_most) return c.commit();
          continue;
        }
        if (k > 0) {
          // The rest stays as a block of its own ids; `users` may still name a user whose calls
          // were all cut (it only narrows which blocks a user's list reads).
          rest.clear();
          const auto [lo, hi] =
              encode_block(rest, std::span(calls).subspan(k),
                           [](const CallLog& call) { return to_millis(call.time); });
          auto upd = c.exec(
              "UPDATE call_log_blocks SET first_id = ?, n = ?, time_first = ?, time_last = ?, "
              "calls = ? WHERE first_id = ?",
              {calls[k].id, static_cast<std::int64_t>(calls.size() - k), lo, hi, rest, b.first_id});
          if (!upd) return fail(upd.error());
          done += k;
        }
        return c.commit();  // this block holds the cut
      }
      if (read->size() < static_cast<std::size_t>(chunk)) return c.commit();
      after = read->back().first_id;
      chunk = std::min(chunk * 4, kMostPerRead);
    }
  });
  if (!r) return r.error();
  return done;
}

}  // namespace openstation::store::detail
