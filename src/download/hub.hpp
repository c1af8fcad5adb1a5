#pragma once
/// Clients for the model hubs (ModelScope and HuggingFace): list a repository's files with their
/// sizes and SHA-256 digests, and stream one file from a byte offset with an HTTP range request.
/// Both speak libcurl; endpoints (mirrors), the proxy and the access tokens come from
/// config::HubConfig, so a test's fake hub enters through the same settings a deployment uses.
///
///     HuggingFace  GET {endpoint}/api/models/{repo}/tree/{revision}?recursive=true
///                  GET {endpoint}/{repo}/resolve/{revision}/{path}        (redirects followed)
///     ModelScope   GET {endpoint}/api/v1/models/{repo}/repo/files?Revision={rev}&Recursive=true
///                  GET {endpoint}/api/v1/models/{repo}/repo?Revision={rev}&FilePath={path}
///
/// Error codes: hub.not_found (404: no such repository, revision or file), hub.unauthorized
/// (401/403: a gated or private repository; set hub.hf_token / hub.ms_token), hub.unavailable
/// (the connection failed, was cut, stalled, or the hub answered 5xx), hub.bad_response (a
/// listing that is not the hub's JSON), hub.aborted (the caller's sink asked to stop).
/// Thread rules: a client may be used from one thread at a time, except that fetch() and
/// fetch_range() may run on several threads at once where concurrent_fetches() says so; calls
/// block.

#include "config/config.hpp"
#include "core/error.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::download {

/// Which hub.
enum class HubKind { modelscope, huggingface };

/// "modelscope" / "huggingface".
std::string_view to_string(HubKind k) noexcept;
/// The inverse; error "hub.unknown_source" naming the accepted names.
core::Result<HubKind> parse_hub_kind(std::string_view s);

/// One file of a repository.
struct HubFile {
  std::string path;  ///< relative, '/'-separated ("model-00001-of-00002.safetensors")
  std::int64_t size = 0;
  std::string sha256;  ///< lower-case hex; empty when the hub gives none (small git files on HF)

  friend bool operator==(const HubFile&, const HubFile&) = default;
};

/// How to reach a hub.
struct HubOptions {
  std::string endpoint;  ///< "https://huggingface.co", a mirror, or a test's loopback URL
  std::string token;     ///< sent as "Authorization: Bearer ..." when set
  std::string proxy;     ///< libcurl proxy URL; empty: none (libcurl still honours *_proxy env)
  std::chrono::seconds connect_timeout{30};
  /// A transfer slower than `low_speed_bytes` per second for `low_speed_time` is abandoned as
  /// stalled (hub.unavailable), so a dead connection never hangs the queue.
  long low_speed_bytes = 1024;
  std::chrono::seconds low_speed_time{60};
};

/// Receives one file's bytes in order. Return false to stop the transfer (hub.aborted).
using ChunkSink = std::function<bool(std::string_view bytes)>;

/// A hub. Implementations: make_hub_client().
class HubClient {
 public:
  virtual ~HubClient() = default;
  virtual HubKind kind() const = 0;
  /// Every file (not directory) of `repo` at `revision`, in the hub's order.
  virtual core::Result<std::vector<HubFile>> list_files(std::string_view repo,
                                                        std::string_view revision) = 0;
  /// Streams `path` from byte `offset` to its end into `sink`, with a Range request when
  /// offset > 0 (a hub that ignores the range has the skipped prefix dropped here, so the sink
  /// always sees the bytes from `offset`).
  /// `keep_going` is also polled while no bytes arrive (about once a second), so a stalled or
  /// held transfer stops promptly (hub.aborted) when it turns false.
  virtual core::Result<void> fetch(std::string_view repo, std::string_view revision,
                                   std::string_view path, std::int64_t offset,
                                   const ChunkSink& sink,
                                   const std::function<bool()>& keep_going) = 0;
  /// Streams bytes [offset, end) of `path` into `sink` (a bounded Range request, so a parallel
  /// segment costs the hub no more than its bytes). Errors as fetch(); the transfer ends without
  /// error once `end` is reached. This default reads fetch(offset) and stops at `end`.
  virtual core::Result<void> fetch_range(std::string_view repo, std::string_view revision,
                                         std::string_view path, std::int64_t offset,
                                         std::int64_t end, const ChunkSink& sink,
                                         const std::function<bool()>& keep_going);
  /// Whether fetch() and fetch_range() may be called from several threads at once (one
  /// connection each): what parallel range requests need. The libcurl client: true.
  virtual bool concurrent_fetches() const { return false; }
};

/// A libcurl client for `kind` with `options`.
std::unique_ptr<HubClient> make_hub_client(HubKind kind, HubOptions options);

/// The options config::HubConfig gives for `kind` (endpoint, proxy and that hub's token).
HubOptions hub_options(const config::HubConfig& config, HubKind kind);

/// The default revision of each hub: "master" (ModelScope), "main" (HuggingFace).
std::string_view default_revision(HubKind kind) noexcept;

/// Checks a repository id: "owner/name", each part 1–96 of letters, digits, '-', '_', '.'
/// (not "." or ".."). Error "hub.bad_repo".
core::Result<void> check_repo(std::string_view repo);

/// Parses HuggingFace's tree listing (a JSON array of {type, path, size, lfs: {oid, size}}).
/// Error hub.bad_response.
core::Result<std::vector<HubFile>> parse_hf_tree(std::string_view json);
/// Parses ModelScope's file listing ({"Code", "Data": {"Files": [{Path, Type, Size, Sha256}]}}).
/// Error hub.bad_response.
core::Result<std::vector<HubFile>> parse_ms_files(std::string_view json);

/// Checks a listed file path: relative, no "..", no empty or "." segments, no backslash or NUL.
/// Error "hub.bad_path" (a hub's listing must never write outside the model's directory).
core::Result<void> check_file_path(std::string_view path);

}  // namespace openstation::download
