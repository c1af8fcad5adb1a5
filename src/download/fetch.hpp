#pragma once
/// Downloads one hub file into a model directory so that a half-written file is never visible:
///
///     <staging>/<path>.part   bytes so far (kept across pauses, failures and restarts)
///        │ resume: Range from the .part's size; SHA-256 of the bytes already there is
///        │ recomputed, then streamed on as new bytes are written
///        ▼ size and SHA-256 (when the hub gives one) checked
///     <dest>/<path>           rename(2): atomic, staging and dest are on one file system
///
/// Large files (FetchOptions::segment_threshold and up, on a hub that allows concurrent
/// fetches, when one stream proves slow: FetchOptions::segment_probe) come as
/// FetchOptions::segments parallel range requests instead, each written with pwrite at its
/// offset into the same .part:
///
///     <staging>/<path>.part            segments' bytes at their offsets (holes where not yet)
///     <staging>/<path>.part.segments   the layout and, per segment, how many bytes from its start
///        │                             are on disk: written atomically and only after an fdatasync
///        │                             of the .part, so it never claims a byte a crash could lose
///        │ resume: each segment from its claimed count; a sidecar that cannot be read, or that
///        │ does not fit the file or the .part, discards both and starts the file over; a .part
///        │ without a sidecar is a single stream's prefix and seeds the segments with it
///        ▼ SHA-256 computed in order as the contiguous prefix grows (read back from the page
///          cache), so little is left to hash when the last segment ends; fsync; checks; rename
///
/// Either way the disk writeback of finished bytes is started during the transfer
/// (sync_file_range), so the fsync before the rename has little left to do.
///
/// Error codes: the hub's (hub.*), download.hash_mismatch (the .part is deleted: its bytes are
/// wrong, a retry starts the file over), download.size_mismatch (the hub sent more or fewer
/// bytes than it listed), download.disk_full (ENOSPC while writing), download.io (any other
/// file error), hub.aborted (`keep_going` returned false: pause or cancel).

#include "core/error.hpp"
#include "download/hub.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::download {

/// Incremental SHA-256 (OpenSSL EVP).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view bytes);
  /// Lower-case hex of the digest; the object cannot be updated afterwards.
  std::string hex_digest();

 private:
  void* ctx_;
};

/// SHA-256 of a whole file, lower-case hex. Error download.io.
core::Result<std::string> sha256_file(const std::filesystem::path& path);

/// Where one file goes.
struct FileTarget {
  std::filesystem::path staging_dir;  ///< holds <path>.part
  std::filesystem::path dest_dir;     ///< holds <path> once verified
};

/// The staging path of `file` ("<staging>/<path>.part").
std::filesystem::path part_path(const FileTarget& target, const HubFile& file);

/// The sidecar of a segmented download ("<staging>/<path>.part.segments").
std::filesystem::path segments_path(const FileTarget& target, const HubFile& file);

/// Bytes of `file` already on disk: its full size when the finished file is in place, else what
/// the segments' sidecar claims (0 when it cannot be read), else the .part's size (capped at the
/// listed size), else 0.
std::int64_t bytes_on_disk(const FileTarget& target, const HubFile& file);

/// How fetch_file moves one file.
struct FetchOptions {
  /// Files of at least this many bytes are fetched as parallel range requests, when the hub
  /// allows concurrent fetches (HubClient::concurrent_fetches); smaller ones as one stream.
  std::int64_t segment_threshold = 64ll << 20;
  /// Segments (and connections) of such a file; 1 or less: always one stream. The default comes
  /// from bench/download (docs/performance-download.md): 3.5x one stream from a hub that paces
  /// each connection, within the noise of one stream on loopback.
  int segments = 4;
  /// Whether parallel ranges pay is found out, not assumed: a file that could be segmented starts
  /// as one stream, and if after `segment_probe` it moves slower than `segment_below_rate` bytes
  /// a second (a hub or mirror that caps each connection), the stream stops and the rest comes
  /// as segments, seeded with the stream's bytes. A fast stream (a local mirror, loopback: where
  /// the disk or the CPU is the limit and more connections only cost more) stays one stream.
  /// 0 ms: segments from the start.
  std::chrono::milliseconds segment_probe{1000};
  std::int64_t segment_below_rate = 200ll << 20;
  /// Seconds between checkpoints of a segmented download (fdatasync, then the sidecar): what a
  /// crash may cost. A stop, a cut or any other error checkpoints at once.
  std::chrono::milliseconds checkpoint_interval{5000};
  /// One stream of 16 MiB or more goes through the O_DIRECT writer thread (see fetch.cpp's
  /// StreamWriter); false: through the page cache with sync_file_range, as segments do.
  bool direct_io = true;
  /// true: the file is on the disk when fetch_file returns (fdatasync along the way, fsync before
  /// the rename). false: the bytes may still be in the page cache when the verified file is
  /// renamed into place; the caller makes them durable later with flush_files, and after a
  /// restart that may have lost them re-checks them with verify_in_place (DownloadManager does
  /// both: a model is ready as soon as its files are verified, as with a plain download, and is
  /// on the disk a moment later). Checkpoints of a segmented download sync either way: a
  /// sidecar never claims a byte a crash could lose.
  bool sync = true;
};

/// Fetches `file` (see the diagram above) with the default FetchOptions. `on_bytes(n)` is
/// called as bytes are written; `keep_going()` is polled with each chunk and stops the transfer
/// when false. With segments both are called from the segments' threads, never two at once (a
/// mutex orders them); without, from the calling thread. A file whose finished copy is already
/// in place with the listed size is skipped. Blocks until done.
core::Result<void> fetch_file(HubClient& hub, std::string_view repo, std::string_view revision,
                              const HubFile& file, const FileTarget& target,
                              const std::function<void(std::int64_t)>& on_bytes,
                              const std::function<bool()>& keep_going);

/// The same with explicit options.
core::Result<void> fetch_file(HubClient& hub, std::string_view repo, std::string_view revision,
                              const HubFile& file, const FileTarget& target,
                              const std::function<void(std::int64_t)>& on_bytes,
                              const std::function<bool()>& keep_going, const FetchOptions& options);

/// fsync of each file of `files` under `dir` and of the directories that hold them: what
/// FetchOptions::sync = false left to do. Error download.io.
core::Result<void> flush_files(const std::filesystem::path& dir, const std::vector<HubFile>& files);

/// Checks a finished file in place (`<dest>/<path>`) against the listed size and SHA-256 (when
/// the hub gives one), for files a crash may have damaged before they reached the disk. A file
/// that does not match is deleted (a later fetch_file fetches it again) and the error says why:
/// download.size_mismatch or download.hash_mismatch; download.io when it cannot be read. A
/// missing file is not an error (nothing to check).
core::Result<void> verify_in_place(const FileTarget& target, const HubFile& file);

}  // namespace openstation::download
