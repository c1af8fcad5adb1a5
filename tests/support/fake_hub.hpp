#pragma once
/// A fake model hub for tests: a loopback HTTP server (the project's http::Server) that serves
/// ModelScope's and HuggingFace's file APIs over a directory the test generates, with fault
/// injection per file. It enters the product through the same settings as a real hub
/// (hub.modelscope_endpoint / hub.huggingface_endpoint = url()).
///
///     <root>/<owner>/<name>/<files...>      one directory per repository
///
///     HF   GET /api/models/{owner}/{name}/tree/{rev}     [{type, path, size, oid, lfs?}]
///          GET /{owner}/{name}/resolve/{rev}/{path...}   bytes; Range: bytes=N- or N-M → 206
///     MS   GET /api/v1/models/{owner}/{name}/repo/files   {"Code":200,"Data":{"Files":[...]}}
///          GET /api/v1/models/{owner}/{name}/repo?FilePath=...   bytes, ranges as above
///
/// Faults (set_fault, keyed by the file's path inside the repository): a status instead of the
/// file (404, 401, 500), the connection cut after N bytes of a response (the first `times`
/// requests), a slow trickle, wrong bytes (one byte flipped: the listed SHA-256 no longer
/// matches), or a hold after N bytes until release() (for pausing or stopping a download at a
/// known point without sleeps). Thread-safe.

#include "http/server.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace openstation::testing_support {

struct FakeHubFault {
  int status = 0;                ///< answer this status instead of the file (0: none)
  std::int64_t cut_after = -1;   ///< close the connection after this many bytes of a response
  int times = 1;                 ///< how many requests the cut/status applies to; -1: all
  bool wrong_bytes = false;      ///< flip the file's first served byte (always)
  std::int64_t hold_after = -1;  ///< stop after this many bytes until release() or disconnect
  std::chrono::milliseconds trickle_delay{0};  ///< pause between 4 KiB chunks
};

class FakeHub {
 public:
  /// Serves repositories under `root` (created if missing).
  explicit FakeHub(std::filesystem::path root);
  ~FakeHub();
  FakeHub(const FakeHub&) = delete;
  FakeHub& operator=(const FakeHub&) = delete;

  /// "http://127.0.0.1:<port>".
  std::string url() const;
  const std::filesystem::path& root() const { return root_; }

  /// Writes `bytes` as <root>/<repo>/<path>.
  void add_file(const std::string& repo, const std::string& path, const std::string& bytes);
  /// A deterministic pseudo-random file of `size` bytes.
  void add_random_file(const std::string& repo, const std::string& path, std::int64_t size,
                       std::uint32_t seed = 1);

  /// Applies `fault` to requests for `path` (a file's path in its repository; "*listing*" for the
  /// listings). Replaces an earlier fault for that path.
  void set_fault(const std::string& path, FakeHubFault fault);
  void clear_faults();
  /// Lets held responses continue.
  void release();
  /// Requests must carry "Authorization: Bearer <token>" (401 otherwise); empty: no check.
  void require_token(std::string token);

  /// Range start offsets of every request for `path`, in arrival order (0 for a full request).
  std::vector<std::int64_t> offsets(const std::string& path) const;
  /// Bytes sent for file contents so far (all files).
  std::int64_t bytes_sent() const { return bytes_sent_.load(); }
  /// Responses currently held at their hold point.
  int held() const { return held_.load(); }

 private:
  struct State;
  http::Awaitable<void> serve_file(http::Request& req, http::ResponseStream& stream,
                                   std::string repo, std::string path);
  http::Response listing(const std::string& repo, bool huggingface);
  bool authorized(const http::Request& req) const;
  std::optional<FakeHubFault> take_fault(const std::string& path);

  std::filesystem::path root_;
  mutable std::mutex mu_;
  std::map<std::string, FakeHubFault> faults_;
  std::map<std::string, std::vector<std::int64_t>> offsets_;
  std::string token_;
  std::atomic<bool> released_{false};
  std::atomic<std::int64_t> bytes_sent_{0};
  std::atomic<int> held_{0};
  std::unique_ptr<http::Server> server_;
};

}  // namespace openstation::testing_support
