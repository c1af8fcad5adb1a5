#pragma once
/// The server's side of node sync: what a node needs to pull a model from the server's model
/// store (docs/models.md, "Node sync").
///
///     <model_dir>/.openstation-store        the store's random id (written at server start);
///                                           a node that reads the same id at the same path
///                                           shares the storage and pulls nothing
///     <model_dir>/.manifests/<model id>.json  each file's size, mtime and SHA-256, so a model's
///                                           files are hashed once, not on every manifest call
///
/// SHA-256 comes from the model's download records (the hub's listing in the download's job.json)
/// where the hub gave one and the size still matches; otherwise the server hashes the file once
/// and keeps the digest until the file's size or mtime changes. Blocking: call on the worker
/// pool.
///
/// Error codes: "model_files.store_marker" (io_error: the marker cannot be written),
/// "model_files.not_on_server" (conflict: the model lives on a node), "model_files.not_ready"
/// (conflict), "model_files.missing" (not_found: the path is gone on the server),
/// "model_files.bad_path" (invalid_argument: a path that leaves the model), "model_files.not_found"
/// (not_found: no such file of the model), "model_files.bad_range" (the Range header cannot be
/// satisfied: the route answers 416), "model_files.io" (io_error).

#include "agent/protocol.hpp"
#include "core/error.hpp"
#include "store/store.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace openstation::server {

/// Reads the store id from <model_dir>/.openstation-store, or writes a fresh random one there.
core::Result<std::string> ensure_store_id(const std::filesystem::path& model_dir);

/// Path → SHA-256 the hubs listed for the model's downloads (from each download's job.json).
std::map<std::string, std::string> download_hashes(store::Store& s,
                                                   const std::filesystem::path& model_dir,
                                                   const std::string& model_id);

/// The manifest of `m`, a model whose files are on this server (no node_id, ready). Files are
/// listed recursively in path order (regular files; a single-file model lists its file name).
/// Not thread-safe for one model: callers serialise builds (two at once would hash twice).
core::Result<agent::ModelManifest> model_manifest(
    const store::Model& m, const std::filesystem::path& model_dir, const std::string& store_id,
    const std::map<std::string, std::string>& known_sha256);

/// Checks that `m` can be served: errors not_on_server, not_ready, missing.
core::Result<void> check_servable(const store::Model& m);

/// The file `relative` of model `m` on disk: relative, '/'-separated, no "..", "." or empty
/// segments, and (after resolving symbolic links) inside the model's path. Errors bad_path,
/// not_found.
core::Result<std::filesystem::path> model_file(const store::Model& m, std::string_view relative);

/// Bytes [first, last] of a file, both inclusive.
struct ByteRange {
  std::int64_t first = 0;
  std::int64_t last = 0;
  bool operator==(const ByteRange&) const = default;
};

/// A Range header ("bytes=N-", "bytes=N-M", "bytes=-N") for a file of `size` bytes; nullopt for
/// an empty header (the whole file). A last byte past the end is cut to the end. Error
/// "model_files.bad_range" for another unit, several ranges, malformed numbers, N > M, or a start
/// at or past the end.
core::Result<std::optional<ByteRange>> parse_byte_range(std::string_view header, std::int64_t size);

}  // namespace openstation::server
