#pragma once
/// Downloads one hub file into a model directory so that a half-written file is never visible:
///
///     <staging>/<path>.part   bytes so far (kept across pauses, failures and restarts)
///        │ resume: Range from the .part's size; SHA-256 of the bytes already there is
///        │ recomputed, then streamed on as new bytes are written
///        ▼ size and SHA-256 (when the hub gives one) checked
///     <dest>/<path>           rename(2): atomic, staging and dest are on one file system
///
/// Error codes: the hub's (hub.*), download.hash_mismatch (the .part is deleted: its bytes are
/// wrong, a retry starts the file over), download.size_mismatch (the hub sent more or fewer
/// bytes than it listed), download.disk_full (ENOSPC while writing), download.io (any other
/// file error), hub.aborted (`keep_going` returned false: pause or cancel).

#include "core/error.hpp"
#include "download/hub.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

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

/// Bytes of `file` already on disk: its full size when the finished file is in place, else the
/// .part's size (capped at the listed size), else 0.
std::int64_t bytes_on_disk(const FileTarget& target, const HubFile& file);

/// Fetches `file` (see the diagram above). `on_bytes(n)` is called as bytes are written;
/// `keep_going()` is polled with each chunk and stops the transfer when false. A file whose
/// finished copy is already in place with the listed size is skipped.
core::Result<void> fetch_file(HubClient& hub, std::string_view repo, std::string_view revision,
                              const HubFile& file, const FileTarget& target,
                              const std::function<void(std::int64_t)>& on_bytes,
                              const std::function<bool()>& keep_going);

}  // namespace openstation::download
