#pragma once
/// What the supervisor remembers across agent restarts: one record per engine process it
/// started, in `<data dir>/supervisor/instances.json`, written atomically (temp file, fsync,
/// rename). On start the supervisor adopts the processes that still run (same pid and start
/// time) and stops those no longer desired.

#include "core/error.hpp"

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace openstation::agent {

/// One engine process the supervisor started.
struct InstanceRecord {
  std::string id;
  pid_t pid = 0;                 ///< also the process-group id
  std::uint64_t start_time = 0;  ///< /proc/<pid>/stat field 22
  std::vector<std::uint16_t> ports;
  std::uint64_t spec_hash = 0;
  std::string health_path;
  std::filesystem::path log_file;

  friend bool operator==(const InstanceRecord&, const InstanceRecord&) = default;
};

/// Reads and writes the records file. Not thread-safe (the supervisor owns it).
class InstanceStore {
 public:
  explicit InstanceStore(std::filesystem::path file) : file_(std::move(file)) {}

  /// The records; none when the file does not exist. Errors: "supervisor.state_unreadable"
  /// (parse_error / io_error) naming the file.
  core::Result<std::vector<InstanceRecord>> load() const;
  /// Replaces the file's content atomically. Errors: "supervisor.state_write_failed".
  core::Result<void> save(const std::vector<InstanceRecord>& records) const;
  const std::filesystem::path& file() const { return file_; }

 private:
  std::filesystem::path file_;
};

}  // namespace openstation::agent
