#include "download/fetch.hpp"

#include "core/fs.hpp"
#include "core/strings.hpp"
#include "core/thread_name.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <system_error>
#include <thread>
#include <vector>

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

/// Reads [hashed, until) of `fd` back (from the page cache, behind the writes) into `buf` and
/// hashes it in order, advancing `hashed`: 0, or the errno of a failed read.
int hash_back(int fd, std::int64_t& hashed, std::int64_t until, Sha256& hash, std::string& buf) {
  while (hashed < until) {
    const auto want = static_cast<std::size_t>(
        std::min<std::int64_t>(until - hashed, static_cast<std::int64_t>(buf.size())));
    const auto got = ::pread(fd, buf.data(), want, hashed);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return got < 0 ? errno : EIO;
    hash.update(std::string_view(buf.data(), static_cast<std::size_t>(got)));
    hashed += got;
  }
  return 0;
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

fs::path segments_path(const FileTarget& target, const HubFile& file) {
  return target.staging_dir / (file.path + ".part.segments");
}

namespace {

/// Starts the disk writeback of every finished 32 MiB without waiting for it.
constexpr std::int64_t kWritebackStep = 32ll << 20;

/// An open file descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  /// Closes now; the close(2) error, if any.
  int close() {
    const int r = ::close(fd_);
    fd_ = -1;
    return r == 0 ? 0 : errno;
  }

 private:
  int fd_;
};

/// Writes all of `b` at `offset` (pwrite), or returns errno.
int pwrite_all(int fd, std::string_view b, std::int64_t offset) {
  while (!b.empty()) {
    const auto n = ::pwrite(fd, b.data(), b.size(), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : EIO;
    b.remove_prefix(static_cast<std::size_t>(n));
    offset += n;
  }
  return 0;
}

/// One stream of at least this many bytes is written with O_DIRECT by a writer thread.
constexpr std::int64_t kDirectMin = 16ll << 20;

/// fsync of a directory, so a file created or renamed in it survives a crash.
void sync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

core::Error hash_mismatch(const HubFile& file, const std::string& got) {
  return core::Error(core::Errc::unavailable, "download.hash_mismatch",
                     "SHA-256 of " + file.path + " is " + got + ", the hub lists " + file.sha256 +
                         "; the file was discarded, a retry fetches it again");
}

/// A segmented download's layout and progress: segment i is [begin[i], end[i]) of the file and
/// has its first done[i] bytes on disk.
struct Layout {
  std::vector<std::int64_t> begin;
  std::vector<std::int64_t> end;
  std::vector<std::int64_t> done;

  std::size_t count() const { return begin.size(); }
  std::int64_t total_done() const {
    std::int64_t t = 0;
    for (const auto d : done) t += d;
    return t;
  }

  /// `k` segments of nearly equal size, seeded with a single stream's prefix of `have` bytes.
  static Layout split(std::int64_t size, int k, std::int64_t have) {
    Layout l;
    for (int i = 0; i < k; ++i) {
      const std::int64_t b = size * i / k;
      const std::int64_t e = size * (i + 1) / k;
      l.begin.push_back(b);
      l.end.push_back(e);
      l.done.push_back(std::clamp<std::int64_t>(have - b, 0, e - b));
    }
    return l;
  }

  std::string to_text(const HubFile& file) const {
    std::string out = "openstation-segments 1\nsize " + std::to_string(file.size) + "\nsha256 " +
                      (file.sha256.empty() ? "-" : file.sha256) + "\n";
    for (std::size_t i = 0; i < count(); ++i) {
      out += std::to_string(begin[i]) + " " + std::to_string(end[i]) + " " +
             std::to_string(done[i]) + "\n";
    }
    return out;
  }

  /// Parses a sidecar written for `file`; nullopt on any doubt (another file, another listing,
  /// segments that do not tile the file, counts out of range).
  static std::optional<Layout> parse(const std::string& text, const HubFile& file) {
    std::istringstream in(text);
    std::string magic;
    std::string key;
    int version = 0;
    std::int64_t size = -1;
    std::string sha;
    if (!(in >> magic >> version) || magic != "openstation-segments" || version != 1) return {};
    if (!(in >> key >> size) || key != "size" || size != file.size) return {};
    if (!(in >> key >> sha) || key != "sha256" || sha != (file.sha256.empty() ? "-" : file.sha256))
      return {};
    Layout l;
    std::int64_t b = 0;
    std::int64_t e = 0;
    std::int64_t d = 0;
    while (in >> b >> e >> d) {
      const std::int64_t expect = l.end.empty() ? 0 : l.end.back();
      if (b != expect || e <= b || e > size || d < 0 || d > e - b) return {};
      l.begin.push_back(b);
      l.end.push_back(e);
      l.done.push_back(d);
      if (l.count() > 1024) return {};
    }
    if (!in.eof() || l.count() == 0 || l.end.back() != size) return {};
    return l;
  }
};

std::optional<Layout> read_layout(const fs::path& sidecar, const HubFile& file) {
  std::ifstream in(sidecar, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return Layout::parse(ss.str(), file);
}

core::Result<void> write_layout(const fs::path& sidecar, const Layout& l, const HubFile& file) {
  if (auto w = core::write_file_atomic(sidecar, l.to_text(file)); !w) {
    return core::io_error("download.io",
                          "cannot write " + sidecar.string() + ": " + w.error().message);
  }
  return {};
}

/// Where fetch_stream puts the bytes: write takes each chunk in order (0 or an errno), finish
/// waits until everything taken is written and hashed (0 or the first errno).
class ChunkWriter {
 public:
  virtual ~ChunkWriter() = default;
  virtual int write(std::string_view b) = 0;
  virtual int finish() = 0;
};

/// FetchOptions::sync = false: the receiving thread writes each chunk straight into the page
/// cache (as a plain download does: one copy, from a buffer still in the CPU's cache), and a
/// hasher thread reads the bytes back behind it (from the page cache) and hashes them in order,
/// so the hash costs the receiving thread nothing. Nothing is synced here (flush_files does it).
class ReadBackWriter final : public ChunkWriter {
 public:
  static constexpr std::size_t kReadBytes = 1u << 20;

  ReadBackWriter(int fd, int read_fd, std::int64_t offset, Sha256& hash)
      : fd_(fd),
        read_fd_(read_fd),
        offset_(offset),
        written_(offset),
        hashed_(offset),
        hash_(hash) {
    hasher_ = core::named_thread("fetch-hash", [this] { hash_loop(); });
  }
  ~ReadBackWriter() override { ReadBackWriter::finish(); }
  ReadBackWriter(const ReadBackWriter&) = delete;
  ReadBackWriter& operator=(const ReadBackWriter&) = delete;

  int write(std::string_view b) override {
    if (const int e = error_.load(); e != 0) return e;
    if (const int e = pwrite_all(fd_, b, offset_); e != 0) return e;
    offset_ += static_cast<std::int64_t>(b.size());
    written_.store(offset_);
    if (waiting_.load()) {
      std::lock_guard lock(mu_);
      cv_.notify_one();
    }
    return 0;
  }

  int finish() override {
    if (hasher_.joinable()) {
      {
        std::lock_guard lock(mu_);
        closing_ = true;
      }
      cv_.notify_one();
      hasher_.join();
    }
    return error_.load();
  }

 private:
  void hash_loop() {
    std::string buf(kReadBytes, '\0');
    for (;;) {
      const std::int64_t ready = written_.load();
      if (hashed_ >= ready) {
        std::unique_lock lock(mu_);
        waiting_.store(true);
        cv_.wait(lock, [&] { return closing_ || written_.load() > hashed_; });
        waiting_.store(false);
        if (written_.load() <= hashed_) return;  // closing, all hashed
        continue;
      }
      if (const int e = hash_back(read_fd_, hashed_, ready, hash_, buf); e != 0) {
        error_ = e;
        return;
      }
    }
  }

  int fd_;
  int read_fd_;
  std::int64_t offset_;                // the receiving thread's: where the next byte goes
  std::atomic<std::int64_t> written_;  // published by the receiving thread (seq_cst with waiting_)
  std::int64_t hashed_;                // the hasher's
  Sha256& hash_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> waiting_{false};
  bool closing_ = false;
  std::atomic<int> error_{0};
  std::thread hasher_;
};

/// Writes one stream of bytes into a file from `offset` on and hashes them in order, with the
/// durability work overlapped with the transfer. With a direct descriptor (O_DIRECT) the bytes
/// are gathered into aligned buffers; a writer thread writes each straight to the device while a
/// hasher thread hashes it and the next buffer fills: nothing is left dirty in the page cache, so
/// the fsync before the rename only flushes the device and the metadata, and neither the hash nor
/// the write holds up the receiving thread. The unaligned head (on resume) and tail go through
/// the page cache. Without one (a file system that refuses O_DIRECT, e.g. tmpfs), writes go
/// through the page cache with the writeback of every 32 MiB started at once (sync_file_range)
/// and hashing inline.
class StreamWriter final : public ChunkWriter {
 public:
  static constexpr std::int64_t kAlign = 4096;
  static constexpr std::size_t kBufferBytes = 8u << 20;
  static constexpr int kBuffers = 4;
  static constexpr std::int64_t kSyncStep = 64ll << 20;

  StreamWriter(int fd, int direct_fd, std::int64_t offset, Sha256& hash)
      : fd_(fd), direct_fd_(direct_fd), offset_(offset), flushed_(offset), hash_(hash) {
    if (direct_fd_ >= 0) {
      for (int i = 0; i < kBuffers; ++i) {
        void* p = nullptr;
        if (::posix_memalign(&p, kAlign, kBufferBytes) != 0) break;
        slots_.push_back(Slot{static_cast<char*>(p)});
      }
      if (slots_.size() < 2) {
        for (auto& slot : slots_) std::free(slot.data);
        slots_.clear();
        direct_fd_ = -1;
      }
    }
    if (direct_fd_ >= 0) {
      for (std::size_t i = 0; i < slots_.size(); ++i) free_.push_back(i);
      hasher_ = core::named_thread("fetch-hash", [this] { drain(true); });
      writer_ = core::named_thread("fetch-write", [this] { drain(false); });
      syncer_ = core::named_thread("fetch-sync", [this] { sync_loop(); });
    }
  }
  ~StreamWriter() override {
    StreamWriter::finish();
    for (auto& slot : slots_) std::free(slot.data);
  }
  StreamWriter(const StreamWriter&) = delete;
  StreamWriter& operator=(const StreamWriter&) = delete;

  /// Takes `b` (copied, or written before returning). 0, or the errno of a failed write (this
  /// one or an earlier one on the writer thread).
  int write(std::string_view b) override {
    if (direct_fd_ < 0) return write_buffered(b);
    if (const int e = error_.load(); e != 0) return e;
    // Until the offset is aligned the bytes go through the page cache (a resumed .part); only
    // before the first buffer, so the hash stays in order.
    if (cur_ < 0 && !started_ && offset_ % kAlign != 0) {
      const auto head = static_cast<std::size_t>(
          std::min<std::int64_t>(kAlign - offset_ % kAlign, static_cast<std::int64_t>(b.size())));
      if (const int e = pwrite_all(fd_, b.substr(0, head), offset_); e != 0) return e;
      hash_.update(b.substr(0, head));
      offset_ += static_cast<std::int64_t>(head);
      b.remove_prefix(head);
    }
    while (!b.empty()) {
      if (cur_ < 0) {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return !free_.empty() || error_.load() != 0; });
        if (const int e = error_.load(); e != 0) return e;
        cur_ = static_cast<int>(free_.front());
        free_.pop_front();
        slots_[cur_].offset = offset_;
        slots_[cur_].size = 0;
        started_ = true;
      }
      Slot& slot = slots_[cur_];
      const auto n = std::min(b.size(), kBufferBytes - slot.size);
      std::memcpy(slot.data + slot.size, b.data(), n);
      slot.size += n;
      offset_ += static_cast<std::int64_t>(n);
      b.remove_prefix(n);
      if (slot.size == kBufferBytes) submit();
    }
    return 0;
  }

  /// Writes out and hashes everything taken so far and stops the threads. 0 or the first errno.
  int finish() override {
    if (direct_fd_ >= 0 && writer_.joinable()) {
      if (cur_ >= 0 && slots_[cur_].size > 0) {
        submit();
      } else if (cur_ >= 0) {
        std::lock_guard lock(mu_);
        free_.push_back(static_cast<std::size_t>(cur_));
        cur_ = -1;
      }
      {
        std::lock_guard lock(mu_);
        closing_ = true;
      }
      cv_.notify_all();
      hasher_.join();
      writer_.join();
      syncer_.join();
    }
    return error_.load();
  }

 private:
  struct Slot {
    char* data = nullptr;
    std::size_t size = 0;
    std::int64_t offset = 0;
    int pending = 0;  // of the hasher and the writer, how many still use it
  };

  int write_buffered(std::string_view b) {
    if (const int e = pwrite_all(fd_, b, offset_); e != 0) return e;
    hash_.update(b);
    offset_ += static_cast<std::int64_t>(b.size());
    if (offset_ - flushed_ >= kWritebackStep) {
      ::sync_file_range(fd_, flushed_, offset_ - flushed_, SYNC_FILE_RANGE_WRITE);
      flushed_ = offset_;
    }
    return 0;
  }

  void submit() {
    {
      std::lock_guard lock(mu_);
      slots_[cur_].pending = 2;
      to_hash_.push_back(static_cast<std::size_t>(cur_));
      to_write_.push_back(static_cast<std::size_t>(cur_));
    }
    cur_ = -1;
    cv_.notify_all();
  }

  /// The syncer thread: an fdatasync whenever the writer asks (the caller's fsync does the last).
  void sync_loop() {
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return sync_wanted_ || closing_; });
      if (!sync_wanted_) return;
      sync_wanted_ = false;
      lock.unlock();
      if (::fdatasync(fd_) != 0) error_ = errno;
      lock.lock();
    }
  }

  /// The hasher or the writer thread: each buffer in order.
  void drain(bool hasher) {
    auto& queue = hasher ? to_hash_ : to_write_;
    while (true) {
      std::size_t i = 0;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return !queue.empty() || closing_; });
        if (queue.empty()) return;
        i = queue.front();
        queue.pop_front();
      }
      const Slot& b = slots_[i];
      if (hasher) {
        hash_.update(std::string_view(b.data, b.size));
      } else if (error_.load() == 0) {
        const auto aligned = b.size / kAlign * kAlign;
        int e = 0;
        if (aligned > 0) {
          e = pwrite_all(direct_fd_, std::string_view(b.data, aligned), b.offset);
          // A file system may take O_DIRECT at open and refuse it per write: fall back.
          if (e == EINVAL) e = pwrite_all(fd_, std::string_view(b.data, aligned), b.offset);
        }
        if (e == 0 && aligned < b.size) {
          e = pwrite_all(fd_, std::string_view(b.data + aligned, b.size - aligned),
                         b.offset + static_cast<std::int64_t>(aligned));
        }
        if (e != 0) error_ = e;
        // Have the syncer flush the device's cache now and then, so the fsync before the rename
        // is short; the writer goes on meanwhile.
        if (e == 0 && (unsynced_ += static_cast<std::int64_t>(b.size)) >= kSyncStep) {
          unsynced_ = 0;
          std::lock_guard lock(mu_);
          sync_wanted_ = true;
        }
      }
      {
        std::lock_guard lock(mu_);
        if (--slots_[i].pending == 0) free_.push_back(i);
      }
      cv_.notify_all();
    }
  }

  int fd_;
  int direct_fd_;
  std::int64_t offset_;        // where the next taken byte goes
  std::int64_t flushed_;       // page-cache mode: writeback started up to here
  std::int64_t unsynced_ = 0;  // direct mode: bytes written since the last sync request
  bool sync_wanted_ = false;
  Sha256& hash_;
  std::vector<Slot> slots_;
  int cur_ = -1;  // the slot being filled
  bool started_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::size_t> free_;
  std::deque<std::size_t> to_hash_;
  std::deque<std::size_t> to_write_;
  bool closing_ = false;
  std::atomic<int> error_{0};
  std::thread hasher_;
  std::thread writer_;
  std::thread syncer_;
};

/// The one-stream path: append to the .part from its size, hash as the bytes pass.
core::Result<void> fetch_stream(HubClient& hub, std::string_view repo, std::string_view revision,
                                const HubFile& file, const fs::path& part, const fs::path& dest,
                                const std::function<void(std::int64_t)>& on_bytes,
                                const std::function<bool()>& keep_going,
                                const FetchOptions& options) {
  std::error_code ec;
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
  Fd out(::open(part.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (have > 0 ? 0 : O_TRUNC), 0644));
  if (out.get() < 0) return io_failure("write", part, errno);

  std::int64_t written = have;
  std::optional<core::Error> write_error;
  if (written < file.size) {
    // Large enough to be worth a writer thread: straight to the device (see StreamWriter).
    // Without sync the page cache takes the bytes faster than a device would (as for any plain
    // download), and a reader thread hashes them behind the writes (see ReadBackWriter).
    const bool large = file.size - have >= kDirectMin;
    const bool read_back = large && !options.sync;
    Fd reader(read_back ? ::open(part.c_str(), O_RDONLY | O_CLOEXEC) : -1);
    if (read_back && reader.get() < 0) return io_failure("read", part, errno);
    Fd direct(options.direct_io && options.sync && large
                  ? ::open(part.c_str(), O_WRONLY | O_CLOEXEC | O_DIRECT)
                  : -1);
    // Declared after the descriptors it uses: destroyed (its threads joined) before they close.
    std::unique_ptr<ChunkWriter> writer;
    if (read_back) {
      writer = std::make_unique<ReadBackWriter>(out.get(), reader.get(), have, hash);
    } else {
      writer = std::make_unique<StreamWriter>(out.get(), direct.get(), have, hash);
    }
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
          if (const int err = writer->write(b); err != 0) {
            write_error = io_failure("write", part, err);
            return false;
          }
          written += static_cast<std::int64_t>(b.size());
          on_bytes(static_cast<std::int64_t>(b.size()));
          return true;
        },
        keep_going);
    // Everything taken is written before anything else happens: the .part's size is the resume
    // point.
    if (const int err = writer->finish(); err != 0 && !write_error) {
      write_error = io_failure("write", part, err);
    }
    if (write_error) {
      if (write_error->code == "download.size_mismatch") {
        out.close();
        fs::remove(part, ec);
      }
      return *write_error;
    }
    if (!fetched) return fetched.error();
  }
  if (options.sync && ::fsync(out.get()) != 0) return io_failure("write", part, errno);
  if (const int err = out.close(); err != 0) return io_failure("write", part, err);
  if (written != file.size) {
    return core::Error(core::Errc::unavailable, "download.size_mismatch",
                       "the hub ended " + file.path + " after " + core::with_commas(written) +
                           " of its " + core::with_commas(file.size) + " bytes");
  }
  if (!file.sha256.empty()) {
    const auto got = hash.hex_digest();
    if (got != file.sha256) {
      fs::remove(part, ec);
      return hash_mismatch(file, got);
    }
  }
  fs::rename(part, dest, ec);
  if (ec) return io_failure("move into place", dest, ec.value());
  return {};
}

/// The segmented path (see fetch.hpp).
core::Result<void> fetch_segments(HubClient& hub, std::string_view repo, std::string_view revision,
                                  const HubFile& file, const fs::path& part, const fs::path& dest,
                                  const std::function<void(std::int64_t)>& on_bytes,
                                  const std::function<bool()>& keep_going,
                                  const FetchOptions& options) {
  const fs::path sidecar = fs::path(part.string() + ".segments");
  std::error_code ec;
  std::int64_t part_size = -1;
  if (const auto s = fs::file_size(part, ec); !ec) part_size = static_cast<std::int64_t>(s);

  std::optional<Layout> layout;
  if (fs::exists(sidecar, ec)) {
    layout = read_layout(sidecar, file);
    if (layout) {
      // Every claimed byte must lie inside the .part.
      for (std::size_t i = 0; i < layout->count() && layout; ++i) {
        if (layout->done[i] > 0 && layout->begin[i] + layout->done[i] > part_size) layout.reset();
      }
    }
    if (!layout) {  // in doubt: the .part's bytes cannot be placed, start the file over
      fs::remove(part, ec);
      fs::remove(sidecar, ec);
      part_size = -1;
    }
  }
  if (!layout) {
    // A .part without a sidecar is a single stream's prefix (longer than the file: not one).
    std::int64_t have = part_size > file.size ? 0 : std::max<std::int64_t>(part_size, 0);
    if (part_size > file.size) fs::remove(part, ec);
    const int k = static_cast<int>(
        std::clamp<std::int64_t>(options.segments, 1, std::max<std::int64_t>(file.size, 1)));
    layout = Layout::split(file.size, k, have);
    // The sidecar must be on disk before the first byte lands past the prefix: without it a
    // .part with holes would pass for a prefix.
    if (auto w = write_layout(sidecar, *layout, file); !w) return w.error();
    sync_dir(sidecar.parent_path());
  }

  Fd fd(::open(part.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (fd.get() < 0) return io_failure("write", part, errno);

  const std::size_t n = layout->count();
  auto done = std::make_unique<std::atomic<std::int64_t>[]>(n);
  for (std::size_t i = 0; i < n; ++i) done[i] = layout->done[i];
  const auto snapshot = [&] {
    Layout l = *layout;
    for (std::size_t i = 0; i < n; ++i) l.done[i] = done[i].load();
    return l;
  };
  // fdatasync first, then the sidecar: it claims only bytes the sync covered.
  const auto checkpoint = [&]() -> core::Result<void> {
    const Layout l = snapshot();
    if (::fdatasync(fd.get()) != 0) return io_failure("write", part, errno);
    return write_layout(sidecar, l, file);
  };

  std::mutex callback_mu;  // on_bytes and keep_going: one caller at a time
  std::mutex mu;           // error, progress_cv
  std::condition_variable progress_cv;
  std::optional<core::Error> error;
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> next{0};
  std::atomic<int> running{0};
  const auto fail = [&](core::Error e) {
    std::lock_guard lock(mu);
    if (!error) error = std::move(e);
    stop = true;
    progress_cv.notify_all();
  };
  const auto still_going = [&] {
    if (stop.load()) return false;
    std::lock_guard lock(callback_mu);
    return keep_going();
  };

  const auto worker = [&] {
    for (std::size_t i = next++; i < n && !stop.load(); i = next++) {
      const std::int64_t len = layout->end[i] - layout->begin[i];
      if (done[i].load() >= len) continue;
      std::int64_t flushed = layout->begin[i] + done[i].load();
      std::int64_t since_notify = 0;
      auto r = hub.fetch_range(
          repo, revision, file.path, layout->begin[i] + done[i].load(), layout->end[i],
          [&](std::string_view b) {
            if (!still_going()) return false;
            const std::int64_t at = layout->begin[i] + done[i].load();
            if (at + static_cast<std::int64_t>(b.size()) > layout->end[i]) {
              b = b.substr(0, static_cast<std::size_t>(layout->end[i] - at));
            }
            const auto size = static_cast<std::int64_t>(b.size());
            if (const int err = pwrite_all(fd.get(), b, at); err != 0) {
              fail(io_failure("write", part, err));
              return false;
            }
            done[i] += size;
            if (options.sync && at + size - flushed >= kWritebackStep) {
              ::sync_file_range(fd.get(), flushed, at + size - flushed, SYNC_FILE_RANGE_WRITE);
              flushed = at + size;
            }
            if ((since_notify += size) >= (4 << 20)) {
              since_notify = 0;
              progress_cv.notify_one();
            }
            std::lock_guard lock(callback_mu);
            on_bytes(size);
            return true;
          },
          still_going);
      if (!r) {
        // A stop asked for by another segment's failure is not this segment's error.
        if (!(r.error().code == "hub.aborted" && stop.load())) fail(r.error());
        break;
      }
      if (done[i].load() != len) {
        fail(core::Error(core::Errc::unavailable, "download.size_mismatch",
                         "the hub ended " + file.path + " at byte " +
                             core::with_commas(layout->begin[i] + done[i].load()) + " instead of " +
                             core::with_commas(layout->end[i])));
        break;
      }
      progress_cv.notify_one();
    }
    --running;
    progress_cv.notify_all();
  };

  const int threads = hub.concurrent_fetches() ? static_cast<int>(n) : 1;
  running = threads;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.push_back(core::named_thread("fetch-part", worker));

  // Meanwhile: hash the contiguous prefix as it grows, and checkpoint now and then.
  Sha256 hash;
  const bool hashing = !file.sha256.empty();
  std::int64_t hashed = 0;
  std::string buf(4 << 20, '\0');
  std::optional<core::Error> read_error;
  const auto hash_available = [&] {
    std::size_t s = 0;
    while (hashing && !read_error && hashed < file.size) {
      while (s + 1 < n && layout->end[s] <= hashed) ++s;
      const std::int64_t avail = layout->begin[s] + done[s].load();
      if (avail <= hashed) return;
      if (const int e = hash_back(fd.get(), hashed, avail, hash, buf); e != 0) {
        read_error = io_failure("read", part, e);
        return;
      }
    }
  };
  auto last_checkpoint = std::chrono::steady_clock::now();
  while (running.load() > 0) {
    hash_available();
    {
      std::unique_lock lock(mu);
      progress_cv.wait_for(lock, std::chrono::milliseconds(50));
    }
    if (std::chrono::steady_clock::now() - last_checkpoint >= options.checkpoint_interval) {
      if (auto c = checkpoint(); !c) fail(c.error());
      last_checkpoint = std::chrono::steady_clock::now();
    }
  }
  for (auto& t : pool) t.join();

  if (error || read_error || stop.load() || snapshot().total_done() != file.size) {
    // Keep what arrived for a resume: sync it, then say so in the sidecar.
    auto c = checkpoint();
    if (error) return *error;
    if (read_error) return *read_error;
    if (!c) return c.error();
    return core::Error(core::Errc::conflict, "hub.aborted",
                       "the transfer of " + file.path + " was stopped");
  }
  hash_available();
  if (read_error) return *read_error;
  if (options.sync && ::fsync(fd.get()) != 0) return io_failure("write", part, errno);
  if (const int err = fd.close(); err != 0) return io_failure("write", part, err);
  if (hashing) {
    const auto got = hash.hex_digest();
    if (got != file.sha256) {
      fs::remove(part, ec);  // the .part first: a sidecar without it only restarts the file
      fs::remove(sidecar, ec);
      return hash_mismatch(file, got);
    }
  }
  fs::rename(part, dest, ec);
  if (ec) return io_failure("move into place", dest, ec.value());
  fs::remove(sidecar, ec);  // after the rename: the .part never lives without its sidecar
  return {};
}

}  // namespace

std::int64_t bytes_on_disk(const FileTarget& target, const HubFile& file) {
  std::error_code ec;
  const auto done = fs::file_size(target.dest_dir / file.path, ec);
  if (!ec && static_cast<std::int64_t>(done) == file.size) return file.size;
  const auto sidecar = segments_path(target, file);
  if (fs::exists(sidecar, ec)) {
    const auto layout = read_layout(sidecar, file);
    return layout ? layout->total_done() : 0;
  }
  const auto part = fs::file_size(part_path(target, file), ec);
  if (ec) return 0;
  return std::min<std::int64_t>(static_cast<std::int64_t>(part), file.size);
}

core::Result<void> fetch_file(HubClient& hub, std::string_view repo, std::string_view revision,
                              const HubFile& file, const FileTarget& target,
                              const std::function<void(std::int64_t)>& on_bytes,
                              const std::function<bool()>& keep_going) {
  return fetch_file(hub, repo, revision, file, target, on_bytes, keep_going, FetchOptions{});
}

core::Result<void> fetch_file(HubClient& hub, std::string_view repo, std::string_view revision,
                              const HubFile& file, const FileTarget& target,
                              const std::function<void(std::int64_t)>& on_bytes,
                              const std::function<bool()>& keep_going,
                              const FetchOptions& options) {
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

  // A download that started segmented stays segmented (its .part has holes).
  const bool segmentable =
      options.segments > 1 && file.size >= options.segment_threshold && hub.concurrent_fetches();
  if (fs::exists(segments_path(target, file), ec) ||
      (segmentable && options.segment_probe.count() <= 0)) {
    return fetch_segments(hub, repo, revision, file, part, dest, on_bytes, keep_going, options);
  }
  if (!segmentable) {
    return fetch_stream(hub, repo, revision, file, part, dest, on_bytes, keep_going, options);
  }
  // One stream first; a slow one stops after the probe and the segments take over from its
  // bytes (see FetchOptions::segment_probe).
  const auto started = std::chrono::steady_clock::now();
  std::int64_t moved = 0;
  bool decided = false;
  bool too_slow = false;
  const auto counting = [&](std::int64_t n) {
    moved += n;
    on_bytes(n);
  };
  const auto probing = [&] {
    if (!keep_going()) return false;
    if (!decided) {
      const auto elapsed = std::chrono::steady_clock::now() - started;
      if (elapsed >= options.segment_probe) {
        decided = true;
        const double secs = std::chrono::duration<double>(elapsed).count();
        too_slow =
            static_cast<double>(moved) / secs < static_cast<double>(options.segment_below_rate);
      }
    }
    return !too_slow;
  };
  auto r = fetch_stream(hub, repo, revision, file, part, dest, counting, probing, options);
  if (r || !too_slow || !keep_going()) return r;
  return fetch_segments(hub, repo, revision, file, part, dest, on_bytes, keep_going, options);
}

core::Result<void> flush_files(const fs::path& dir, const std::vector<HubFile>& files) {
  std::set<fs::path> dirs{dir};
  for (const auto& f : files) {
    const fs::path path = dir / f.path;
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return io_failure("flush", path, errno);
    if (::fsync(fd.get()) != 0) return io_failure("flush", path, errno);
    for (auto d = path.parent_path(); d != dir && d.has_relative_path(); d = d.parent_path()) {
      dirs.insert(d);
    }
  }
  for (const auto& d : dirs) {
    Fd fd(::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) return io_failure("flush", d, errno);
    if (::fsync(fd.get()) != 0) return io_failure("flush", d, errno);
  }
  return {};
}

core::Result<void> verify_in_place(const FileTarget& target, const HubFile& file) {
  const fs::path path = target.dest_dir / file.path;
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return {};  // not there: nothing to check
  if (static_cast<std::int64_t>(size) != file.size) {
    fs::remove(path, ec);
    return core::Error(core::Errc::unavailable, "download.size_mismatch",
                       file.path + " has " + core::with_commas(static_cast<std::int64_t>(size)) +
                           " bytes on disk, the hub lists " + core::with_commas(file.size) +
                           "; the file was discarded, it is fetched again");
  }
  if (file.sha256.empty()) return {};
  auto got = sha256_file(path);
  if (!got) return got.error();
  if (*got != file.sha256) {
    fs::remove(path, ec);
    return hash_mismatch(file, *got);
  }
  return {};
}

}  // namespace openstation::download
