#include "download/disk.hpp"

#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>

namespace openstation::download {

core::Result<std::int64_t> free_bytes(const std::filesystem::path& path) {
  std::filesystem::path p = path;
  std::error_code ec;
  while (!p.empty() && !std::filesystem::exists(p, ec) && p.has_parent_path() &&
         p.parent_path() != p) {
    p = p.parent_path();
  }
  struct statvfs st {};
  if (::statvfs(p.c_str(), &st) != 0) {
    return core::io_error(
        "download.io", "cannot read the free space of " + p.string() + ": " + std::strerror(errno));
  }
  return static_cast<std::int64_t>(st.f_bavail) * static_cast<std::int64_t>(st.f_frsize);
}

}  // namespace openstation::download
