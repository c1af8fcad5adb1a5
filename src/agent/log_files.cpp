#include "agent/log_files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace openstation::agent {
namespace {

std::uint64_t size_of(const std::filesystem::path& p) {
  std::error_code ec;
  const auto s = std::filesystem::file_size(p, ec);
  return ec ? 0 : s;
}

/// Bytes [from, from + len) of a file; shorter when the file is.
std::string read_range(const std::filesystem::path& p, std::uint64_t from, std::uint64_t len) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return {};
  in.seekg(static_cast<std::streamoff>(from));
  std::string out(len, '\0');
  in.read(out.data(), static_cast<std::streamsize>(len));
  out.resize(static_cast<std::size_t>(std::max<std::streamsize>(in.gcount(), 0)));
  return out;
}

void split_lines(const std::string& text, std::vector<std::string>& out) {
  std::size_t start = 0;
  while (start < text.size()) {
    auto nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(start, nl - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(std::move(line));
    start = nl + 1;
  }
}

/// All lines of the last `max_bytes` of a file (the first, partial one dropped when cut).
std::vector<std::string> last_lines(const std::filesystem::path& p, std::uint64_t max_bytes) {
  const auto size = size_of(p);
  const auto from = size > max_bytes ? size - max_bytes : 0;
  std::string text = read_range(p, from, size - from);
  if (from > 0) {
    const auto nl = text.find('\n');
    text.erase(0, nl == std::string::npos ? text.size() : nl + 1);
  }
  std::vector<std::string> lines;
  split_lines(text, lines);
  return lines;
}

core::Error rotate_error(const std::filesystem::path& p, const std::string& what) {
  return core::io_error("log.rotate_failed",
                        "cannot rotate the log " + p.string() + ": " + what +
                            " (check free disk space and permissions of the log directory)");
}

}  // namespace

std::filesystem::path rotated_path(const std::filesystem::path& base, unsigned n) {
  if (n == 0) return base;
  return std::filesystem::path(base.string() + "." + std::to_string(n));
}

core::Result<bool> rotate_if_needed(const std::filesystem::path& path, const LogPolicy& policy) {
  const auto size = size_of(path);
  if (size <= policy.max_bytes) return false;
  std::error_code ec;
  if (policy.keep == 0) {
    std::filesystem::resize_file(path, 0, ec);
    if (ec) return rotate_error(path, ec.message());
    return true;
  }
  std::filesystem::remove(rotated_path(path, policy.keep), ec);
  for (unsigned n = policy.keep - 1; n >= 1; --n) {
    const auto from = rotated_path(path, n);
    if (std::filesystem::exists(from, ec)) {
      std::filesystem::rename(from, rotated_path(path, n + 1), ec);
      if (ec) return rotate_error(path, ec.message());
    }
  }
  // Copy what is there now, then truncate; the writer's O_APPEND moves it to the new end.
  const auto tmp = std::filesystem::path(rotated_path(path, 1).string() + ".tmp");
  std::filesystem::copy_file(path, tmp, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) return rotate_error(path, ec.message());
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return rotate_error(path, std::strerror(errno));
  const auto copied = size_of(tmp);
  // Bytes appended during the copy stay in the current file: only what was copied is dropped.
  const auto now = size_of(path);
  std::string rest;
  if (now > copied) rest = read_range(path, copied, now - copied);
  const bool ok = ::ftruncate(fd, 0) == 0;
  if (ok && !rest.empty()) {
    [[maybe_unused]] const auto w = ::write(fd, rest.data(), rest.size());
  }
  ::close(fd);
  if (!ok) return rotate_error(path, std::strerror(errno));
  std::filesystem::rename(tmp, rotated_path(path, 1), ec);
  if (ec) return rotate_error(path, ec.message());
  return true;
}

std::vector<std::string> tail_lines(const std::filesystem::path& path, std::size_t n,
                                    std::uint64_t max_bytes) {
  if (n == 0) return {};
  auto lines = last_lines(path, max_bytes);
  if (lines.size() < n) {
    auto older = last_lines(rotated_path(path, 1), max_bytes);
    older.insert(older.end(), lines.begin(), lines.end());
    lines = std::move(older);
  }
  if (lines.size() > n) lines.erase(lines.begin(), lines.end() - static_cast<std::ptrdiff_t>(n));
  return lines;
}

LogFollower::LogFollower(std::filesystem::path path, bool from_start)
    : path_(std::move(path)), offset_(from_start ? 0 : size_of(path_)) {}

std::string LogFollower::read_new(std::uint64_t max_bytes) {
  std::string out;
  auto size = size_of(path_);
  if (size < offset_) {
    // Rotated: the rest of what we had not read was copied to .1.
    const auto older = rotated_path(path_, 1);
    const auto osize = size_of(older);
    if (osize > offset_) out = read_range(older, offset_, std::min(osize - offset_, max_bytes));
    offset_ = 0;
  }
  if (out.size() < max_bytes && size > offset_) {
    const auto chunk = read_range(path_, offset_, std::min(size - offset_, max_bytes - out.size()));
    offset_ += chunk.size();
    out += chunk;
  }
  return out;
}

}  // namespace openstation::agent
