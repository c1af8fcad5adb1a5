#pragma once
/// Per-instance engine logs: size-capped with rotation, tail and follow.
///
/// The engine writes its stdout and stderr straight into `engine.log`, opened with O_APPEND by the
/// launcher, so the log survives an agent restart (an adopted engine keeps writing; no pipe to
/// lose). The supervisor rotates copytruncate-style on its tick: engine.log.{N-1} → .N, …,
/// engine.log copied to engine.log.1, then engine.log truncated to zero; thanks to O_APPEND the
/// engine's next write lands at the new start of the file. What the engine appends while the copy
/// runs is carried over into the truncated file; a write in the microseconds between that and the
/// truncation can be lost or reordered — the price of not owning the engine's pipe.

#include "core/error.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace openstation::agent {

/// Size cap and number of rotated files kept.
struct LogPolicy {
  std::uint64_t max_bytes = 64ull << 20;  ///< rotate once the file is larger than this
  unsigned keep = 5;                      ///< engine.log.1 … engine.log.<keep>
};

/// `base` + ".<n>" (n = 0 gives `base` itself).
std::filesystem::path rotated_path(const std::filesystem::path& base, unsigned n);

/// Rotates `path` when it is larger than `policy.max_bytes`. Returns whether it rotated.
/// Errors: "log.rotate_failed" (io_error). A missing file is not an error.
core::Result<bool> rotate_if_needed(const std::filesystem::path& path, const LogPolicy& policy);

/// The last `n` lines of the log, oldest first, reaching into engine.log.1 when the current file
/// holds fewer. Reads at most `max_bytes` from each file. A missing file gives no lines.
std::vector<std::string> tail_lines(const std::filesystem::path& path, std::size_t n,
                                    std::uint64_t max_bytes = 1u << 20);

/// Follows a log as it grows, across copytruncate rotations: each `read_new()` returns what was
/// appended since the last call. Thread-compatible.
class LogFollower {
 public:
  /// Starts at the current end of the file (or at its start when `from_start`).
  explicit LogFollower(std::filesystem::path path, bool from_start = false);
  /// New bytes since the last call (at most `max_bytes`; the rest comes next time). When the
  /// file shrank (it was rotated), first the unread rest of engine.log.1, then the new file.
  std::string read_new(std::uint64_t max_bytes = 1u << 20);

 private:
  std::filesystem::path path_;
  std::uint64_t offset_ = 0;
};

}  // namespace openstation::agent
