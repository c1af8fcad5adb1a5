#pragma once
/// Free space on the file system that holds a path, read with statvfs(2).

#include "core/error.hpp"

#include <cstdint>
#include <filesystem>

namespace openstation::download {

/// Bytes an unprivileged writer may still use under `path` (f_bavail × f_frsize); the nearest
/// existing parent is asked when `path` does not exist yet. Error download.io.
core::Result<std::int64_t> free_bytes(const std::filesystem::path& path);

}  // namespace openstation::download
