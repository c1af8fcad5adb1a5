#include "core/fs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace openstation::core {

Result<void> write_file_atomic(const std::filesystem::path& path, std::string_view text,
                               unsigned mode) {
  const auto fail = [](std::string what) -> Result<void> {
    return io_error("fs.write_failed", std::move(what));
  };
  std::error_code ec;
  if (path.has_parent_path()) {
    std::filesystem::create_directories(path.parent_path(), ec);
    if (ec) return fail(ec.message());
  }
  const auto tmp = std::filesystem::path(path.string() + ".tmp");
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return fail(std::strerror(errno));
  ::fchmod(fd, static_cast<mode_t>(mode));  // open() applies the umask; the caller's mode wins
  std::size_t done = 0;
  while (done < text.size()) {
    const auto n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string err = std::strerror(errno);
      ::close(fd);
      std::filesystem::remove(tmp, ec);
      return fail(err);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const std::string err = std::strerror(errno);
    ::close(fd);
    return fail(err);
  }
  if (::close(fd) != 0) return fail(std::strerror(errno));
  std::filesystem::rename(tmp, path, ec);
  if (ec) return fail(ec.message());
  return {};
}

Result<std::uint64_t> open_for_read(const std::filesystem::path& path, std::ifstream& in) {
  const std::string name = path.string();
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) {
    if (!std::filesystem::exists(path)) {
      return not_found("file.not_found", name + ": no such file", name);
    }
    return io_error("file.unreadable", name + ": " + ec.message(), name);
  }
  in.open(path, std::ios::binary);
  if (!in) return io_error("file.unreadable", name + ": cannot open for reading", name);
  return static_cast<std::uint64_t>(size);
}

}  // namespace openstation::core
