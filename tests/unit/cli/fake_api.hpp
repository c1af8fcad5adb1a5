#pragma once
// A stand-in for the management API in the client CLI's tests: an http::Server on 127.0.0.1:0
// whose routes the test programs, which records every request it gets and can write the CLI's
// saved login into a per-test XDG_CONFIG_HOME.

#include "http/server.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace openstation::testing_support {

/// One request as the fake API saw it.
struct SeenRequest {
  std::string method;
  std::string target;
  std::string authorization;
  std::string content_type;
  std::string body;
};

class FakeApi {
 public:
  using Reply = std::function<http::Response(const http::Request&)>;

  explicit FakeApi(std::optional<http::TlsServerOptions> tls = std::nullopt) {
    http::ServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.tls = std::move(tls);
    server_ = std::make_unique<http::Server>(options);
  }
  ~FakeApi() { stop(); }

  /// Answers `method path` (a route pattern under /api/v1, e.g. "/nodes/{id}") with `reply`.
  void on(const std::string& method, const std::string& pattern, Reply reply) {
    server_->route(method, "/api/v1" + pattern,
                   [this, reply](http::Request& req) -> http::Awaitable<http::Response> {
                     record(req);
                     co_return reply(req);
                   });
  }
  /// Answers with a fixed status and JSON text.
  void on_json(const std::string& method, const std::string& pattern, int status,
               std::string json) {
    on(method, pattern,
       [status, json](const http::Request&) { return http::Response::json(status, json); });
  }
  /// A streaming route: writes `chunks` one by one, each flushed.
  void on_stream(const std::string& method, const std::string& pattern,
                 std::vector<std::string> chunks) {
    server_->stream(
        method, "/api/v1" + pattern,
        [this, chunks](http::Request& req, http::ResponseStream& out) -> http::Awaitable<void> {
          record(req);
          http::Headers headers;
          headers.set("Content-Type", "text/plain");
          co_await out.start(200, std::move(headers));
          for (const auto& c : chunks) co_await out.write(c);
          co_await out.finish();
        });
  }

  void start() {
    auto ok = server_->start();
    ASSERT_TRUE(ok) << ok.error().message;
  }
  void stop() {
    if (server_) server_->stop(std::chrono::milliseconds(200));
  }
  std::string url(const std::string& scheme = "http") const {
    return scheme + "://127.0.0.1:" + std::to_string(server_->port());
  }

  std::vector<SeenRequest> seen() const {
    std::lock_guard lock(mu_);
    return seen_;
  }
  /// The last request whose method and target start match; fails the test if there is none.
  SeenRequest last(const std::string& method, const std::string& target_prefix) const {
    std::lock_guard lock(mu_);
    for (auto it = seen_.rbegin(); it != seen_.rend(); ++it) {
      if (it->method == method && it->target.rfind(target_prefix, 0) == 0) return *it;
    }
    ADD_FAILURE() << "no " << method << " " << target_prefix << " request was made";
    return {};
  }

 private:
  void record(const http::Request& req) {
    std::lock_guard lock(mu_);
    seen_.push_back({req.method, req.target, std::string(req.headers.get_or("Authorization", "")),
                     std::string(req.headers.get_or("Content-Type", "")), req.body});
  }

  std::unique_ptr<http::Server> server_;
  mutable std::mutex mu_;
  std::vector<SeenRequest> seen_;
};

/// Points XDG_CONFIG_HOME at a fresh per-test directory (restored at destruction) and swaps
/// std::cin for the test's input.
class CliEnv {
 public:
  CliEnv() : dir_(unique_temp_path("os-cli")) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    if (const char* old = std::getenv("XDG_CONFIG_HOME")) old_xdg_ = old;
    ::setenv("XDG_CONFIG_HOME", dir_.c_str(), 1);
    old_cin_ = std::cin.rdbuf();
  }
  ~CliEnv() {
    std::cin.rdbuf(old_cin_);
    std::cin.clear();
    if (old_xdg_) {
      ::setenv("XDG_CONFIG_HOME", old_xdg_->c_str(), 1);
    } else {
      ::unsetenv("XDG_CONFIG_HOME");
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path credentials() const { return dir_ / "openstation" / "cli.json"; }

  /// What the next command reads from standard input.
  void stdin_text(const std::string& text) {
    input_.str(text);
    input_.clear();
    std::cin.rdbuf(input_.rdbuf());
    std::cin.clear();
  }
  /// Writes a saved login as `openstation login` would.
  void save_login(const std::string& server, const std::string& token,
                  const std::string& fingerprint = "") {
    std::filesystem::create_directories(credentials().parent_path());
    std::ofstream(credentials()) << "{\"server\":\"" << server
                                 << "\",\"username\":\"admin\",\"token\":\"" << token
                                 << "\",\"fingerprint\":\"" << fingerprint << "\"}";
  }
  std::string read_credentials() const {
    std::ifstream in(credentials());
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  std::filesystem::path dir_;
  std::optional<std::string> old_xdg_;
  std::streambuf* old_cin_ = nullptr;
  std::istringstream input_;
};

}  // namespace openstation::testing_support
