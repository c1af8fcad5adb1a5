// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames (awaitable_frame_base
// has its own operator new/delete); the frames are allocated and freed by the same pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include "support/fake_hub.hpp"

#include "download/fetch.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <fstream>
#include <random>
#include <stdexcept>

namespace openstation::testing_support {
namespace fs = std::filesystem;
namespace json = boost::json;

FakeHub::FakeHub(fs::path root) : root_(std::move(root)) {
  fs::create_directories(root_);
  http::ServerOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.threads = 2;
  o.write_timeout = std::chrono::milliseconds(0);
  server_ = std::make_unique<http::Server>(o);
  server_->route("GET", "/api/models/{owner}/{name}/tree/{rev}",
                 [this](http::Request& req) -> http::Awaitable<http::Response> {
                   if (!authorized(req)) co_return http::Response::text(401, "unauthorized");
                   co_return listing(
                       std::string(req.param("owner")) + "/" + std::string(req.param("name")),
                       true);
                 });
  server_->route("GET", "/api/v1/models/{owner}/{name}/repo/files",
                 [this](http::Request& req) -> http::Awaitable<http::Response> {
                   if (!authorized(req)) co_return http::Response::text(401, "unauthorized");
                   co_return listing(
                       std::string(req.param("owner")) + "/" + std::string(req.param("name")),
                       false);
                 });
  server_->stream("GET", "/api/v1/models/{owner}/{name}/repo",
                  [this](http::Request& req, http::ResponseStream& stream) {
                    return serve_file(
                        req, stream,
                        std::string(req.param("owner")) + "/" + std::string(req.param("name")),
                        req.query_param("FilePath").value_or(""));
                  });
  server_->stream("GET", "/{owner}/{name}/resolve/{rev}/*",
                  [this](http::Request& req, http::ResponseStream& stream) {
                    return serve_file(
                        req, stream,
                        std::string(req.param("owner")) + "/" + std::string(req.param("name")),
                        std::string(req.param("*")));
                  });
  if (auto r = server_->start(); !r) throw std::runtime_error(r.error().message);
}

FakeHub::~FakeHub() {
  release();
  server_->stop(std::chrono::milliseconds(0));
}

std::string FakeHub::url() const {
  return "http://127.0.0.1:" + std::to_string(server_->port());
}

void FakeHub::add_file(const std::string& repo, const std::string& path, const std::string& bytes) {
  const auto p = root_ / repo / path;
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << bytes;
}

void FakeHub::add_random_file(const std::string& repo, const std::string& path, std::int64_t size,
                              std::uint32_t seed) {
  const auto p = root_ / repo / path;
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary);
  std::mt19937 gen(seed);
  std::string buf;
  while (size > 0) {
    const auto n = static_cast<std::size_t>(std::min<std::int64_t>(size, 1 << 20));
    buf.resize(n);
    for (std::size_t i = 0; i < n; i += 4) {
      const auto v = gen();
      for (std::size_t k = 0; k < 4 && i + k < n; ++k) buf[i + k] = static_cast<char>(v >> (8 * k));
    }
    out.write(buf.data(), static_cast<std::streamsize>(n));
    size -= static_cast<std::int64_t>(n);
  }
}

void FakeHub::set_fault(const std::string& path, FakeHubFault fault) {
  std::lock_guard lock(mu_);
  faults_[path] = fault;
  released_ = false;
}

void FakeHub::clear_faults() {
  std::lock_guard lock(mu_);
  faults_.clear();
}

void FakeHub::release() {
  released_ = true;
}

void FakeHub::require_token(std::string token) {
  std::lock_guard lock(mu_);
  token_ = std::move(token);
}

std::vector<std::int64_t> FakeHub::offsets(const std::string& path) const {
  std::lock_guard lock(mu_);
  auto it = offsets_.find(path);
  return it == offsets_.end() ? std::vector<std::int64_t>{} : it->second;
}

bool FakeHub::authorized(const http::Request& req) const {
  std::lock_guard lock(mu_);
  return token_.empty() || req.headers.get_or("Authorization", "") == "Bearer " + token_;
}

std::optional<FakeHubFault> FakeHub::take_fault(const std::string& path) {
  std::lock_guard lock(mu_);
  auto it = faults_.find(path);
  if (it == faults_.end()) return std::nullopt;
  FakeHubFault f = it->second;
  if (it->second.times > 0 && --it->second.times == 0) {
    // The status/cut part is used up; keep the permanent parts.
    it->second.status = 0;
    it->second.cut_after = -1;
    it->second.hold_after = -1;
    if (!it->second.wrong_bytes && it->second.trickle_delay.count() == 0) faults_.erase(it);
  }
  return f;
}

http::Response FakeHub::listing(const std::string& repo, bool huggingface) {
  if (auto f = take_fault("*listing*"); f && f->status != 0) {
    return http::Response::text(f->status, "fault");
  }
  const fs::path dir = root_ / repo;
  if (!fs::is_directory(dir)) {
    return huggingface ? http::Response::json(404, R"({"error":"Repository not found"})")
                       : http::Response::json(404, R"({"Code":10010205001,"Message":"not found"})");
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  json::array out;
  for (const auto& p : files) {
    const std::string rel = fs::relative(p, dir).generic_string();
    const auto size = static_cast<std::int64_t>(fs::file_size(p));
    const std::string sha = download::sha256_file(p).value();
    if (huggingface) {
      json::object o{{"type", "file"}, {"oid", sha.substr(0, 40)}, {"size", size}, {"path", rel}};
      // Like the real hub: only LFS files (weights, large files) carry a SHA-256.
      if (size >= 1024) o["lfs"] = json::object{{"oid", sha}, {"size", size}, {"pointerSize", 130}};
      out.push_back(std::move(o));
    } else {
      out.push_back(json::object{{"Name", p.filename().string()},
                                 {"Path", rel},
                                 {"Type", "blob"},
                                 {"Size", size},
                                 {"Sha256", sha},
                                 {"Revision", "master"}});
    }
  }
  if (huggingface) return http::Response::json(200, json::serialize(out));
  return http::Response::json(
      200, json::serialize(json::object{{"Code", 200},
                                        {"Data", json::object{{"Files", std::move(out)}}},
                                        {"Message", "success"},
                                        {"Success", true}}));
}

http::Awaitable<void> FakeHub::serve_file(http::Request& req, http::ResponseStream& stream,
                                          std::string repo, std::string path) {
  if (!authorized(req)) {
    co_await stream.respond(http::Response::text(401, "unauthorized"));
    co_return;
  }
  std::int64_t from = 0;
  std::int64_t last = -1;  // inclusive end of "bytes=N-M"; -1: to the end
  if (auto range = req.headers.get("Range")) {
    const std::string r(*range);
    if (r.rfind("bytes=", 0) == 0) {
      from = std::stoll(r.substr(6));
      const auto dash = r.find('-', 6);
      if (dash != std::string::npos && dash + 1 < r.size()) last = std::stoll(r.substr(dash + 1));
    }
  }
  {
    std::lock_guard lock(mu_);
    offsets_[path].push_back(from);
  }
  auto fault = take_fault(path);
  if (fault && fault->status != 0) {
    co_await stream.respond(http::Response::text(fault->status, "fault"));
    co_return;
  }
  const fs::path file = root_ / repo / path;
  std::error_code ec;
  const auto size = static_cast<std::int64_t>(fs::file_size(file, ec));
  if (ec || path.empty() || path.find("..") != std::string::npos) {
    co_await stream.respond(http::Response::text(404, "no such file"));
    co_return;
  }
  if (from > size || (last >= 0 && last < from)) {
    co_await stream.respond(http::Response::text(416, "range not satisfiable"));
    co_return;
  }
  const std::int64_t stop = last >= 0 ? std::min(last + 1, size) : size;
  http::Headers h{{"Content-Type", "application/octet-stream"}, {"Accept-Ranges", "bytes"}};
  const bool ranged = req.headers.has("Range");
  if (ranged) {
    h.set("Content-Range", "bytes " + std::to_string(from) + "-" + std::to_string(stop - 1) + "/" +
                               std::to_string(size));
  }
  if (!co_await stream.start(ranged ? 206 : 200, std::move(h))) co_return;
  std::ifstream in(file, std::ios::binary);
  in.seekg(from);
  const std::size_t chunk = fault && fault->trickle_delay.count() > 0 ? 4096 : 256 * 1024;
  std::string buf(chunk, '\0');
  std::int64_t sent = 0;
  std::int64_t pos = from;
  auto timer = boost::asio::steady_timer(co_await boost::asio::this_coro::executor);
  while (pos < stop) {
    auto n = static_cast<std::int64_t>(std::min<std::int64_t>(stop - pos, chunk));
    if (fault && fault->cut_after >= 0) n = std::min(n, fault->cut_after - sent);
    if (fault && fault->hold_after >= 0 && sent < fault->hold_after) {
      n = std::min(n, fault->hold_after - sent);
    }
    if (fault && fault->hold_after >= 0 && sent == fault->hold_after) {
      ++held_;
      while (!released_ && !stream.disconnected()) {
        timer.expires_after(std::chrono::milliseconds(5));
        co_await timer.async_wait(boost::asio::use_awaitable);
      }
      --held_;
      if (stream.disconnected()) co_return;
      fault->hold_after = -1;
      continue;
    }
    if (fault && fault->cut_after >= 0 && sent >= fault->cut_after) {
      throw std::runtime_error("fake hub: connection cut");  // the server closes the connection
    }
    in.read(buf.data(), n);
    if (fault && fault->wrong_bytes && pos == 0) buf[0] = static_cast<char>(buf[0] ^ 0x5a);
    if (!co_await stream.write(std::string_view(buf.data(), static_cast<std::size_t>(n)))) {
      co_return;
    }
    bytes_sent_ += n;
    sent += n;
    pos += n;
    if (fault && fault->trickle_delay.count() > 0) {
      timer.expires_after(fault->trickle_delay);
      co_await timer.async_wait(boost::asio::use_awaitable);
    }
  }
  if (fault && fault->cut_after >= 0 && sent >= fault->cut_after && pos < stop) {
    throw std::runtime_error("fake hub: connection cut");
  }
}

}  // namespace openstation::testing_support
