// os-loadgen: the load generator of bench/gateway (bench tooling, never shipped).
//
//   os-loadgen rate URL --rate R --duration S [--connections C] [--warmup S] [common]
//       Open loop: request i is due at t0 + i/R, on connection i % C (keep-alive). Its latency
//       counts from when it was due, not from when it was sent, so a server that falls behind
//       is charged for the queue it causes (no coordinated omission). wrk cannot do this.
//   os-loadgen sse URL --streams C --duration S [common]
//       C concurrent streams, each restarted when it ends, for S seconds. Every event that carries
//       the stand-in engine's emit stamp ("os_emit_ns", CLOCK_MONOTONIC, FAKE_ENGINE_STAMP_EVENTS)
//       gives one sample: arrival time minus emit time.
//   os-loadgen hold URL --streams N --ready-file F --release-file G [--timeout S] [common]
//       Opens N streams (at most --parallel connecting at once), waits for each one's first event,
//       writes F ("open <n> failed <m>"), holds them until G exists, then closes them all.
//   common: --key K (Authorization: Bearer K), --body FILE (the JSON POSTed), --label L
//
// Each mode prints one JSON object on stdout. Latencies are kept in a log-linear histogram
// (HdrHistogram's layout: 2^7 linear sub-buckets per power of two, < 1 % error).
// Plain HTTP/1.1 over loopback only; responses are parsed just enough (status, Content-Length,
// chunked) to keep a connection in step.

// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames (awaitable_frame_base
// has its own operator new/delete); the frames are allocated and freed by the same pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <time.h>

namespace openstation::bench {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "os-loadgen: %s\n", msg.c_str());
  std::exit(2);
}

/// CLOCK_MONOTONIC in nanoseconds: the clock the stand-in engine stamps events with.
std::int64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

/// Log-linear histogram of microsecond values: values below 2^7 exact, then 128 sub-buckets per
/// power of two.
class Histogram {
 public:
  void record(std::int64_t us) {
    if (us < 0) us = 0;
    ++counts_[index(static_cast<std::uint64_t>(us))];
    ++total_;
    max_ = std::max(max_, us);
  }
  std::int64_t count() const { return total_; }
  std::int64_t max() const { return max_; }
  /// The value at quantile q (0..1): the upper edge of the bucket holding it.
  std::int64_t quantile(double q) const {
    if (total_ == 0) return 0;
    const auto rank = static_cast<std::int64_t>(q * static_cast<double>(total_ - 1)) + 1;
    std::int64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min<std::int64_t>(upper(i), max_);
    }
    return max_;
  }

 private:
  static constexpr int kSubBits = 7;
  static constexpr std::uint64_t kSub = 1u << kSubBits;
  static std::size_t index(std::uint64_t v) {
    if (v < kSub) return static_cast<std::size_t>(v);
    const int msb = 63 - __builtin_clzll(v);
    const int shift = msb - kSubBits;
    return static_cast<std::size_t>((static_cast<std::uint64_t>(shift + 1) << kSubBits) +
                                    ((v >> shift) - kSub));
  }
  static std::int64_t upper(std::size_t i) {
    if (i < kSub) return static_cast<std::int64_t>(i);
    const std::uint64_t shift = (i >> kSubBits) - 1;
    const std::uint64_t sub = (i & (kSub - 1)) + kSub;
    return static_cast<std::int64_t>(((sub + 1) << shift) - 1);
  }
  std::array<std::int64_t, (64 - kSubBits + 1) << kSubBits> counts_{};
  std::int64_t total_ = 0;
  std::int64_t max_ = 0;
};

struct Options {
  std::string mode;
  std::string host = "127.0.0.1";
  std::string port = "80";
  std::string path = "/";
  std::string key;
  std::string body =
      R"({"model":"bench","messages":[{"role":"user","content":"hi"}],"max_tokens":1})";
  std::string label;
  double rate = 1000;
  double duration = 10;
  double warmup = 1;
  double timeout = 120;
  int connections = 16;
  int streams = 16;
  int parallel = 128;
  std::string ready_file;
  std::string release_file;
};

Options parse(int argc, char** argv) {
  if (argc < 3) {
    die("usage: os-loadgen rate|sse|hold URL [options] (see the comment at the top of "
        "bench/gateway/loadgen.cpp)");
  }
  Options o;
  o.mode = argv[1];
  std::string url = argv[2];
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) die("only http:// URLs: " + url);
  url = url.substr(scheme.size());
  const auto slash = url.find('/');
  const std::string authority = url.substr(0, slash);
  o.path = slash == std::string::npos ? "/" : url.substr(slash);
  const auto colon = authority.rfind(':');
  o.host = authority.substr(0, colon);
  if (colon != std::string::npos) o.port = authority.substr(colon + 1);
  for (int i = 3; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) die("missing value for " + a);
    const std::string v = argv[++i];
    try {
      if (a == "--key") {
        o.key = v;
      } else if (a == "--body") {
        std::ifstream in(v);
        if (!in) die("cannot read " + v);
        std::stringstream ss;
        ss << in.rdbuf();
        o.body = ss.str();
        while (!o.body.empty() && (o.body.back() == '\n' || o.body.back() == '\r'))
          o.body.pop_back();
      } else if (a == "--label") {
        o.label = v;
      } else if (a == "--rate") {
        o.rate = std::stod(v);
      } else if (a == "--duration") {
        o.duration = std::stod(v);
      } else if (a == "--warmup") {
        o.warmup = std::stod(v);
      } else if (a == "--timeout") {
        o.timeout = std::stod(v);
      } else if (a == "--connections") {
        o.connections = std::stoi(v);
      } else if (a == "--streams") {
        o.streams = std::stoi(v);
      } else if (a == "--parallel") {
        o.parallel = std::stoi(v);
      } else if (a == "--ready-file") {
        o.ready_file = v;
      } else if (a == "--release-file") {
        o.release_file = v;
      } else {
        die("unknown option " + a);
      }
    } catch (const std::exception&) {
      die("bad value for " + a + ": " + v);
    }
  }
  if (o.rate <= 0 || o.duration <= 0 || o.connections < 1 || o.streams < 1 || o.parallel < 1)
    die("--rate, --duration, --connections, --streams and --parallel must be positive");
  return o;
}

std::string request_text(const Options& o) {
  std::string r =
      "POST " + o.path + " HTTP/1.1\r\nHost: " + o.host + ":" + o.port +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(o.body.size()) +
      "\r\n";
  if (!o.key.empty()) r += "Authorization: Bearer " + o.key + "\r\n";
  r += "\r\n" + o.body;
  return r;
}

/// One HTTP/1.1 client connection that reads a response incrementally. `on_body` sees the
/// decoded body bytes as they arrive (chunk framing removed).
class Conn {
 public:
  explicit Conn(asio::any_io_executor ex) : socket_(ex) {}

  asio::awaitable<bool> connect(const tcp::endpoint& ep) {
    auto [ec] = co_await socket_.async_connect(ep, kNoThrow);
    if (ec) co_return false;
    socket_.set_option(tcp::no_delay(true), ec);
    buf_.clear();
    co_return true;
  }
  bool is_open() const { return socket_.is_open(); }
  void close() {
    boost::system::error_code ec;
    socket_.close(ec);
  }

  asio::awaitable<bool> send(const std::string& text) {
    auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(text), kNoThrow);
    co_return !ec;
  }

  /// Reads one response. Returns its status, or 0 when the connection failed; `keep_alive`
  /// tells whether the connection may carry another request.
  template <class OnBody>
  asio::awaitable<int> read_response(OnBody&& on_body, bool& keep_alive) {
    std::size_t head_end = 0;
    while ((head_end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!co_await fill()) co_return 0;
    }
    const std::string head = buf_.substr(0, head_end);
    buf_.erase(0, head_end + 4);
    if (head.size() < 12) co_return 0;
    const int status = std::atoi(head.c_str() + 9);
    std::string lower = head;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    keep_alive = lower.find("connection: close") == std::string::npos;
    if (lower.find("transfer-encoding: chunked") != std::string::npos) {
      for (;;) {
        std::size_t eol = 0;
        while ((eol = buf_.find("\r\n")) == std::string::npos) {
          if (!co_await fill()) co_return 0;
        }
        const std::size_t size = std::strtoull(buf_.c_str(), nullptr, 16);
        buf_.erase(0, eol + 2);
        while (buf_.size() < size + 2) {
          if (!co_await fill()) co_return 0;
        }
        if (size == 0) {
          buf_.erase(0, 2);
          co_return status;
        }
        on_body(std::string_view(buf_).substr(0, size));
        buf_.erase(0, size + 2);
      }
    }
    std::size_t length = 0;
    if (auto p = lower.find("content-length:"); p != std::string::npos) {
      length = std::strtoull(lower.c_str() + p + 15, nullptr, 10);
    } else {
      keep_alive = false;  // read to close
      length = static_cast<std::size_t>(-1);
    }
    while (buf_.size() < length) {
      if (!co_await fill()) {
        if (length == static_cast<std::size_t>(-1)) break;
        co_return 0;
      }
    }
    const std::size_t n = std::min(length, buf_.size());
    on_body(std::string_view(buf_).substr(0, n));
    buf_.erase(0, n);
    co_return status;
  }

 private:
  asio::awaitable<bool> fill() {
    std::array<char, 16384> chunk;
    auto [ec, n] = co_await socket_.async_read_some(asio::buffer(chunk), kNoThrow);
    if (ec || n == 0) co_return false;
    buf_.append(chunk.data(), n);
    co_return true;
  }

  tcp::socket socket_;
  std::string buf_;
};

tcp::endpoint resolve(asio::io_context& io, const Options& o) {
  tcp::resolver r(io);
  boost::system::error_code ec;
  auto results = r.resolve(o.host, o.port, ec);
  if (ec || results.empty()) die("cannot resolve " + o.host + ":" + o.port);
  return *results.begin();
}

std::string json_str(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

void print_latency(const char* prefix, const Histogram& h, std::string& out) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                ",\"%s_p50_us\":%lld,\"%s_p90_us\":%lld,\"%s_p99_us\":%lld,\"%s_max_us\":%lld",
                prefix, static_cast<long long>(h.quantile(0.50)), prefix,
                static_cast<long long>(h.quantile(0.90)), prefix,
                static_cast<long long>(h.quantile(0.99)), prefix, static_cast<long long>(h.max()));
  out += buf;
}

// --- rate ----------------------------------------------------------------------------------------

struct RateState {
  Histogram latency;
  std::int64_t ok = 0;
  std::int64_t non_2xx = 0;
  std::int64_t failed = 0;
  std::int64_t reconnects = 0;
  std::map<int, std::int64_t> statuses;
};

asio::awaitable<void> rate_worker(const Options& o, tcp::endpoint ep, int index,
                                  Clock::time_point t0, std::int64_t total, std::int64_t warm,
                                  RateState& st) {
  auto ex = co_await asio::this_coro::executor;
  Conn conn(ex);
  asio::steady_timer timer(ex);
  const std::string req = request_text(o);
  const double period_ns = 1e9 / o.rate;
  for (std::int64_t i = index; i < total; i += o.connections) {
    const auto due = t0 + std::chrono::nanoseconds(
                              static_cast<std::int64_t>(static_cast<double>(i) * period_ns));
    if (Clock::now() < due) {
      timer.expires_at(due);
      co_await timer.async_wait(kNoThrow);
    }
    if (!conn.is_open()) {
      if (!co_await conn.connect(ep)) {
        if (i >= warm) ++st.failed;
        continue;
      }
      ++st.reconnects;
    }
    bool keep_alive = true;
    int status = 0;
    if (co_await conn.send(req))
      status = co_await conn.read_response([](std::string_view) {}, keep_alive);
    const auto done = Clock::now();
    if (status == 0 || !keep_alive) conn.close();
    if (i < warm) continue;
    if (status == 0) {
      ++st.failed;
      continue;
    }
    ++st.statuses[status];
    (status >= 200 && status < 300 ? st.ok : st.non_2xx) += 1;
    st.latency.record(std::chrono::duration_cast<std::chrono::microseconds>(done - due).count());
  }
}

int run_rate(const Options& o) {
  asio::io_context io(1);
  const auto ep = resolve(io, o);
  RateState st;
  const auto warm = static_cast<std::int64_t>(o.rate * o.warmup);
  const auto total = warm + static_cast<std::int64_t>(o.rate * o.duration);
  const auto t0 = Clock::now() + std::chrono::milliseconds(50);
  for (int c = 0; c < o.connections; ++c)
    asio::co_spawn(io, rate_worker(o, ep, c, t0, total, warm, st), asio::detached);
  io.run();
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count() - o.warmup;
  std::string out = "{\"mode\":\"rate\",\"label\":" + json_str(o.label);
  char buf[256];
  std::snprintf(buf, sizeof buf,
                ",\"target_rps\":%.1f,\"achieved_rps\":%.1f,\"ok\":%lld,\"non_2xx\":%lld,"
                "\"failed\":%lld,\"connects\":%lld",
                o.rate, static_cast<double>(st.ok + st.non_2xx) / std::max(elapsed, 1e-9),
                static_cast<long long>(st.ok), static_cast<long long>(st.non_2xx),
                static_cast<long long>(st.failed), static_cast<long long>(st.reconnects));
  out += buf;
  print_latency("latency", st.latency, out);
  out += ",\"statuses\":{";
  bool first = true;
  for (const auto& [status, n] : st.statuses) {
    if (!first) out += ",";
    first = false;
    out += "\"" + std::to_string(status) + "\":" + std::to_string(n);
  }
  out += "}}";
  std::printf("%s\n", out.c_str());
  return st.ok > 0 && st.non_2xx == 0 && st.failed == 0 ? 0 : 1;
}

// --- sse -----------------------------------------------------------------------------------------

/// Scans SSE body bytes for the engine's emit stamps; a stamp split across reads is carried over.
class StampScanner {
 public:
  template <class OnStamp>
  void feed(std::string_view data, OnStamp&& on_stamp) {
    pending_.append(data);
    static constexpr std::string_view kKey = "\"os_emit_ns\":";
    std::size_t pos = 0;
    for (;;) {
      const auto k = pending_.find(kKey, pos);
      if (k == std::string::npos) break;
      std::size_t v = k + kKey.size();
      std::size_t e = v;
      while (e < pending_.size() && pending_[e] >= '0' && pending_[e] <= '9') ++e;
      if (e == pending_.size()) {  // the number may go on in the next read
        pos = k;
        pending_.erase(0, pos);
        return;
      }
      on_stamp(std::strtoll(pending_.c_str() + v, nullptr, 10));
      pos = e;
    }
    // Keep a tail that could be the start of a split key.
    const std::size_t keep = std::min(pending_.size(), kKey.size());
    pending_.erase(0, pending_.size() - keep);
  }

 private:
  std::string pending_;
};

struct SseState {
  Histogram event_latency;
  Histogram first_event;  ///< request sent → first byte of body
  std::int64_t streams = 0;
  std::int64_t failed = 0;
  std::int64_t events = 0;
};

asio::awaitable<void> sse_worker(const Options& o, tcp::endpoint ep, Clock::time_point end,
                                 SseState& st) {
  auto ex = co_await asio::this_coro::executor;
  const std::string req = request_text(o);
  Conn conn(ex);
  while (Clock::now() < end) {
    if (!conn.is_open() && !co_await conn.connect(ep)) {
      ++st.failed;
      asio::steady_timer t(ex, std::chrono::milliseconds(10));
      co_await t.async_wait(kNoThrow);
      continue;
    }
    StampScanner scan;
    bool first = true;
    const auto sent = Clock::now();
    bool keep_alive = true;
    int status = 0;
    if (co_await conn.send(req)) {
      status = co_await conn.read_response(
          [&](std::string_view data) {
            const auto now_ns = mono_ns();
            if (first) {
              st.first_event.record(
                  std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - sent)
                      .count());
              first = false;
            }
            scan.feed(data, [&](std::int64_t stamp) {
              ++st.events;
              st.event_latency.record((now_ns - stamp) / 1000);
            });
          },
          keep_alive);
    }
    if (status == 0 || !keep_alive) conn.close();
    if (status >= 200 && status < 300) {
      ++st.streams;
    } else {
      ++st.failed;
    }
  }
  conn.close();
}

int run_sse(const Options& o) {
  asio::io_context io(1);
  const auto ep = resolve(io, o);
  SseState st;
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(o.duration));
  for (int c = 0; c < o.streams; ++c)
    asio::co_spawn(io, sse_worker(o, ep, end, st), asio::detached);
  io.run();
  std::string out = "{\"mode\":\"sse\",\"label\":" + json_str(o.label);
  char buf[256];
  std::snprintf(buf, sizeof buf, ",\"streams\":%lld,\"failed\":%lld,\"events\":%lld",
                static_cast<long long>(st.streams), static_cast<long long>(st.failed),
                static_cast<long long>(st.events));
  out += buf;
  print_latency("event", st.event_latency, out);
  print_latency("first_byte", st.first_event, out);
  out += "}";
  std::printf("%s\n", out.c_str());
  return st.events > 0 ? 0 : 1;
}

// --- hold ----------------------------------------------------------------------------------------

struct HoldState {
  int connecting = 0;
  std::int64_t open = 0;
  std::int64_t failed = 0;
  std::int64_t settled = 0;  ///< open + failed
  bool release = false;
  std::vector<std::unique_ptr<Conn>> conns;
};

asio::awaitable<void> hold_one(const Options& o, tcp::endpoint ep, HoldState& st, Conn& conn) {
  const std::string req = request_text(o);
  bool settled = false;
  auto settle = [&](bool ok) {
    if (settled) return;
    settled = true;
    --st.connecting;
    ++st.settled;
    (ok ? st.open : st.failed) += 1;
  };
  if (!co_await conn.connect(ep) || !co_await conn.send(req)) {
    settle(false);
    co_return;
  }
  bool keep_alive = true;
  const int status =
      co_await conn.read_response([&](std::string_view) { settle(true); }, keep_alive);
  // The stream ended (or broke) on its own; it only counts if it had opened.
  settle(status >= 200 && status < 300);
}

asio::awaitable<void> hold_main(const Options& o, tcp::endpoint ep, HoldState& st) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex);
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(o.timeout));
  for (int i = 0; i < o.streams; ++i) {
    while (st.connecting >= o.parallel && Clock::now() < deadline) {
      timer.expires_after(std::chrono::milliseconds(1));
      co_await timer.async_wait(kNoThrow);
    }
    ++st.connecting;
    st.conns.push_back(std::make_unique<Conn>(ex));
    asio::co_spawn(ex, hold_one(o, ep, st, *st.conns.back()), asio::detached);
  }
  while (st.settled < o.streams && Clock::now() < deadline) {
    timer.expires_after(std::chrono::milliseconds(5));
    co_await timer.async_wait(kNoThrow);
  }
  if (!o.ready_file.empty()) {
    std::ofstream f(o.ready_file + ".tmp");
    f << "open " << st.open << " failed " << (o.streams - st.open) << "\n";
    f.close();
    std::filesystem::rename(o.ready_file + ".tmp", o.ready_file);
  }
  while (!o.release_file.empty() && !std::filesystem::exists(o.release_file) &&
         Clock::now() < deadline) {
    timer.expires_after(std::chrono::milliseconds(50));
    co_await timer.async_wait(kNoThrow);
  }
  for (auto& c : st.conns) c->close();
}

int run_hold(const Options& o) {
  asio::io_context io(1);
  const auto ep = resolve(io, o);
  HoldState st;
  asio::co_spawn(io, hold_main(o, ep, st), asio::detached);
  io.run();
  std::printf("{\"mode\":\"hold\",\"label\":%s,\"requested\":%d,\"open\":%lld,\"failed\":%lld}\n",
              json_str(o.label).c_str(), o.streams, static_cast<long long>(st.open),
              static_cast<long long>(o.streams - st.open));
  return st.open == o.streams ? 0 : 1;
}

}  // namespace
}  // namespace openstation::bench

int main(int argc, char** argv) {
  const auto o = openstation::bench::parse(argc, argv);
  if (o.mode == "rate") return openstation::bench::run_rate(o);
  if (o.mode == "sse") return openstation::bench::run_sse(o);
  if (o.mode == "hold") return openstation::bench::run_hold(o);
  openstation::bench::die("unknown mode " + o.mode + " (rate, sse, hold)");
}
