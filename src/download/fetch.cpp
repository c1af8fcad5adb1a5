#include "download/fetch.hpp"

#include "core/strings.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <system_error>

namespace openstation::download {
namespace fs = std::filesystem;

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}
Sha256::~Sha256() {
  EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
}
void Sha256::update(std::string_view bytes) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), bytes.data(), bytes.size());
}
std::string Sha256::hex_digest() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), md, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

namespace {

struct FileClose {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileClose>;

core::Error io_failure(const std::string& what, const fs::path& p, int err) {
  if (err == ENOSPC || err == EDQUOT) {
    return core::Error(core::Errc::resource_exhausted, "download.disk_full",
                       "the disk is full: cannot " + what + " " + p.string() +
                           "; free space on the model store (server.model_dir) and resume");
  }
  return core::io_error("download.io",
                        "cannot " + what + " " + p.string() + ": " + std::strerror(err));
}

/// Hashes the first `n` bytes of `p` into `h`.
core::Result<void> hash_prefix(const fs::path& p, std::int64_t n, Sha256& h) {
  File f(std::fopen(p.c_str(), "rb"));
  if (!f) return io_failure("read", p, errno);
  std::string buf(1 << 20, '\0');
  while (n > 0) {
    const auto want = static_cast<std::size_t>(std::min<std::int64_t>(n, buf.size()));
    const auto got = std::fread(buf.data(), 1, want, f.get());
    if (got == 0) return io_failure("read", p, errno != 0 ? errno : EIO);
    h.update(std::string_view(buf.data(), got));
    n -= static_cast<std::int64_t>(got);
  }
  return {};
}

}  // namespace

core::Result<std::string> sha256_file(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return io_failure("read", path, ec.value());
  Sha256 h;
  if (auto r = hash_prefix(path, static_cast<std::int64_t>(size), h); !r) return r.error();
  return h.hex_digest();
}

fs::path part_path(const FileTarget& target, const HubFile& file) {
  return target.staging_dir / (file.path + ".part");
}

std::int64_t bytes_on_disk(const FileTarget& target, const HubFile& file) {
  std::error_code ec;
  const auto done = fs::file_size(target.dest_dir / file.path, ec);
  if (!ec && static_cast<std::int64_t>(done) == file.size) return file.size;
  const auto part = fs::file_size(part_path(target, file), ec);
  if (ec) return 0;
  return std::min<std::int64_t>(static_cast<std::int64_t>(part), file.size);
}

core::Result<void> fetch_file(HubClient& hub, std::string_view repo, std::string_view revision,
                              const HubFile& file, const FileTarget& target,
                              const std::function<void(std::int64_t)>& on_bytes,
                              const std::function<bool()>& keep_going) {
  const fs::path dest = target.dest_dir / file.path;
  const fs::path part = part_path(target, file);
  std::error_code ec;
  if (const auto done = fs::file_size(dest, ec);
      !ec && static_cast<std::int64_t>(done) == file.size) {
    return {};
  }
  fs::create_directories(part.parent_path(), ec);
  if (ec) return io_failure("create", part.parent_path(), ec.value());
  fs::create_directories(dest.parent_path(), ec);
  if (ec) return io_failure("create", dest.parent_path(), ec.value());

  std::int64_t have = 0;
  if (const auto s = fs::file_size(part, ec); !ec) have = static_cast<std::int64_t>(s);
  if (have > file.size) {  // longer than the file: not a prefix of it
    fs::remove(part, ec);
    have = 0;
  }
  Sha256 hash;
  if (have > 0) {
    if (auto r = hash_prefix(part, have, hash); !r) return r.error();
  }
  File out(std::fopen(part.c_str(), have > 0 ? "ab" : "wb"));
  if (!out) return io_failure("write", part, errno);
  std::setvbuf(out.get(), nullptr, _IOFBF, 1 << 20);

  std::int64_t written = have;
  std::int64_t flushed = have;
  constexpr std::int64_t kWritebackStep = 32ll << 20;
  std::optional<core::Error> write_error;
  if (written < file.size) {
    auto fetched = hub.fetch(
        repo, revision, file.path, written,
        [&](std::string_view b) {
          if (!keep_going()) return false;
          if (written + static_cast<std::int64_t>(b.size()) > file.size) {
            write_error = core::Error(core::Errc::unavailable, "download.size_mismatch",
                                      "the hub sent more than the " + core::with_commas(file.size) +
                                          " bytes it listed for " + file.path);
            return false;
          }
          if (std::fwrite(b.data(), 1, b.size(), out.get()) != b.size()) {
            write_error = io_failure("write", part, errno);
            return false;
          }
          hash.update(b);
          written += static_cast<std::int64_t>(b.size());
          // Start the disk writeback of every finished 32 MiB now, without waiting for it, so the
          // fsync before the rename has little left to do.
          if (written - flushed >= kWritebackStep) {
            if (std::fflush(out.get()) != 0) {
              write_error = io_failure("write", part, errno);
              return false;
            }
            ::sync_file_range(fileno(out.get()), flushed, written - flushed, SYNC_FILE_RANGE_WRITE);
            flushed = written;
          }
          on_bytes(static_cast<std::int64_t>(b.size()));
          return true;
        },
        keep_going);
    if (std::fflush(out.get()) != 0 && !write_error) write_error = io_failure("write", part, errno);
    if (write_error) {
      if (write_error->code == "download.size_mismatch") {
        out.reset();
        fs::remove(part, ec);
      }
      return *write_error;
    }
    if (!fetched) return fetched.error();
  }
  if (::fsync(fileno(out.get())) != 0) return io_failure("write", part, errno);
  if (std::fclose(out.release()) != 0) return io_failure("write", part, errno);
  if (written != file.size) {
    return core::Error(core::Errc::unavailable, "download.size_mismatch",
                       "the hub ended " + file.path + " after " + core::with_commas(written) +
                           " of its " + core::with_commas(file.size) + " bytes");
  }
  if (!file.sha256.empty()) {
    const auto got = hash.hex_digest();
    if (got != file.sha256) {
      fs::remove(part, ec);
      return core::Error(core::Errc::unavailable, "download.hash_mismatch",
                         "SHA-256 of " + file.path + " is " + got + ", the hub lists " +
                             file.sha256 + "; the file was discarded, a retry fetches it again");
    }
  }
  fs::rename(part, dest, ec);
  if (ec) return io_failure("move into place", dest, ec.value());
  return {};
}

}  // namespace openstation::download
