#pragma once
/// File-system helpers shared by every module that persists state.

#include "core/error.hpp"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace openstation::core {

/// Writes `text` to `path` atomically: parent directories created, a temp file beside it written,
/// fsync'ed and renamed over `path`, with permission bits `mode`. Readers see the old file or the
/// new one, never a mix. On failure returns the system's reason as plain text (the caller wraps it
/// in its own error code); `path` is left as it was.
Result<void> write_file_atomic(const std::filesystem::path& path, std::string_view text,
                               unsigned mode = 0644);

/// Opens `path` for binary reading into `in` and returns its size. Errors name the path:
/// "file.not_found" (not_found) or "file.unreadable" (io_error).
Result<std::uint64_t> open_for_read(const std::filesystem::path& path, std::ifstream& in);

}  // namespace openstation::core
