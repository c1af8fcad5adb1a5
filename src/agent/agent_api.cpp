#include "agent/agent_api.hpp"

#include "agent/log_files.hpp"
#include "agent/model_inspect.hpp"
#include "agent/protocol.hpp"
#include "core/pool_thread_names.hpp"
#include "http/server.hpp"
#include "model/model_files.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <charconv>

namespace openstation::agent {
namespace {

using namespace boost::asio::experimental::awaitable_operators;

http::Response unauthorized() {
  return http::Response::error(core::Error(
      core::Errc::unauthorized, "agent.unauthorized",
      "this agent API needs the node's credential: send Authorization: Bearer <node token>"));
}

http::Response not_found(std::string_view id) {
  return http::Response::error(core::not_found(
      "agent.instance_not_found",
      "no instance \"" + std::string(id) + "\" on this node; GET /api/v1/instances lists them",
      "id"));
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
bool same_token(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

std::string instances_json(const Supervisor& supervisor) {
  boost::json::array arr;
  for (const auto& s : supervisor.snapshot()) {
    arr.emplace_back(boost::json::parse(to_json(to_report(s))));
  }
  return boost::json::serialize(boost::json::object{{"instances", std::move(arr)}});
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) {
    out += l;
    out += '\n';
  }
  return out;
}

}  // namespace

struct AgentApi::Impl {
  AgentApiOptions options;
  Supervisor& supervisor;
  std::function<std::string()> token;
  std::unique_ptr<http::Server> server;
  /// Reading model headers touches the disk: never on the I/O threads. Made with the server and
  /// joined when it stops, before its I/O contexts are destroyed (a pool thread that has just
  /// resumed a request on one still holds its executor).
  std::unique_ptr<boost::asio::thread_pool> files;

  Impl(AgentApiOptions o, Supervisor& s, std::function<std::string()> t)
      : options(std::move(o)), supervisor(s), token(std::move(t)) {}

  bool authorized(const http::Request& req) const {
    const std::string expected = token ? token() : std::string();
    if (expected.empty()) return false;
    const auto auth = req.headers.get_or("Authorization", "");
    constexpr std::string_view kBearer = "Bearer ";
    if (auth.size() <= kBearer.size() || !http::iequals(auth.substr(0, kBearer.size()), kBearer)) {
      return false;
    }
    return same_token(auth.substr(kBearer.size()), expected);
  }

  /// tail=N → N; absent → `fallback`; bad → an error response.
  std::optional<http::Response> parse_tail(const http::Request& req, std::size_t fallback,
                                           std::size_t& out) const {
    out = fallback;
    const auto v = req.query_param("tail");
    if (!v) return std::nullopt;
    std::size_t n = 0;
    const auto* end = v->data() + v->size();
    const auto [p, ec] = std::from_chars(v->data(), end, n);
    if (ec != std::errc() || p != end || n > options.max_tail) {
      return http::Response::error(core::invalid("agent.bad_query",
                                                 "tail must be a whole number from 0 to " +
                                                     std::to_string(options.max_tail) + ", not \"" +
                                                     *v + "\"",
                                                 "tail"));
    }
    out = n;
    return std::nullopt;
  }

  void install(http::Server& s) {
    s.route("GET", "/health", [](http::Request&) -> http::Awaitable<http::Response> {
      co_return http::Response::json(200, R"({"status":"ok"})");
    });
    s.route("GET", "/api/v1/instances",
            [this](http::Request& req) -> http::Awaitable<http::Response> {
              if (!authorized(req)) co_return unauthorized();
              co_return http::Response::json(200, instances_json(supervisor));
            });
    s.route("POST", std::string(kInspectModelPath),
            [this](http::Request& req) -> http::Awaitable<http::Response> {
              if (!authorized(req)) co_return unauthorized();
              co_return co_await inspect(req.body);
            });
    s.stream("GET", "/api/v1/instances/{id}/logs",
             [this](http::Request& req, http::ResponseStream& stream) -> http::Awaitable<void> {
               co_await logs(req, stream);
             });
  }

  /// POST /api/v1/models/inspect: the reader's summary, or its error as a 400 naming "path".
  http::Awaitable<http::Response> inspect(std::string body) {
    auto path = parse_inspect_request(body);
    if (!path) co_return http::Response::error(path.error());
    // The lambda is a named local, not a temporary inside the co_await expression: GCC 12
    // destroys such temporaries' captures twice.
    auto work = [file = *path]() -> http::Awaitable<core::Result<model::ModelInfo>> {
      co_return model::inspect_model_path(file);
    };
    auto info = co_await boost::asio::co_spawn(files->get_executor(), std::move(work),
                                               boost::asio::use_awaitable);
    if (!info) {
      auto e = info.error();
      if (e.field.empty()) e.field = "path";
      co_return http::Response::error(400, e);
    }
    co_return http::Response::json(200, model_info_to_json(*info));
  }

  http::Awaitable<void> logs(http::Request& req, http::ResponseStream& stream) {
    if (!authorized(req)) {
      co_await stream.respond(unauthorized());
      co_return;
    }
    const std::string id(req.param("id"));
    if (!supervisor.status(id)) {
      co_await stream.respond(not_found(id));
      co_return;
    }
    const auto follow_v = req.query_param("follow").value_or("0");
    const bool follow = follow_v == "1" || follow_v == "true";
    std::size_t tail = 0;
    if (auto bad = parse_tail(req, follow ? 0 : 100, tail)) {
      co_await stream.respond(*bad);
      co_return;
    }
    const auto path = supervisor.log_file(id);
    if (!follow) {
      co_await stream.respond(http::Response::text(200, join_lines(supervisor.tail(id, tail))));
      co_return;
    }
    // The follower starts at the current end before the tail is read: a line written in between
    // may appear twice, never not at all.
    LogFollower follower(path);
    const auto first = tail > 0 ? join_lines(supervisor.tail(id, tail)) : std::string();
    http::Headers headers;  // built apart: GCC cannot take a braced list inside co_await
    headers.set("Content-Type", "text/plain; charset=utf-8");
    headers.set("Cache-Control", "no-cache");
    if (!co_await stream.start(200, std::move(headers))) {
      co_return;
    }
    if (!first.empty() && !co_await stream.write(first)) co_return;
    auto ex = co_await boost::asio::this_coro::executor;
    while (!stream.disconnected()) {
      const auto data = follower.read_new();
      if (!data.empty() && !co_await stream.write(data)) break;
      boost::asio::steady_timer timer(ex, options.follow_poll);
      co_await (timer.async_wait(boost::asio::use_awaitable) || stream.wait_disconnected());
    }
  }
};

AgentApi::AgentApi(AgentApiOptions options, Supervisor& supervisor,
                   std::function<std::string()> token)
    : impl_(std::make_unique<Impl>(std::move(options), supervisor, std::move(token))) {}

AgentApi::~AgentApi() {
  stop(std::chrono::milliseconds(0));
}

core::Result<void> AgentApi::start() {
  if (impl_->server) return {};
  http::ServerOptions so;
  so.host = impl_->options.host;
  so.port = impl_->options.port;
  so.threads = 2;
  so.server_header = "openstation-agent";
  so.name = "agent";
  auto server = std::make_unique<http::Server>(so);
  if (!impl_->files) {
    impl_->files = std::make_unique<boost::asio::thread_pool>(1);
    core::name_pool_threads(*impl_->files, 1, "agent-files");
  }
  impl_->install(*server);
  if (auto r = server->start(); !r) return r.error();
  impl_->server = std::move(server);
  return {};
}

std::uint16_t AgentApi::port() const {
  return impl_->server ? impl_->server->port() : 0;
}

std::size_t AgentApi::in_flight() const {
  return impl_->server ? impl_->server->in_flight() : 0;
}

void AgentApi::stop(std::chrono::milliseconds grace) {
  if (!impl_->server) return;
  impl_->server->stop(grace);
  impl_->files->join();  // before the server's I/O contexts go: see Impl::files
  impl_->files.reset();
  impl_->server.reset();
}

}  // namespace openstation::agent
