#pragma once
/// Ports for engine instances: allocated from a configured range, checked free by binding,
/// reserved so two instances never share one, and — when a port is taken anyway — the process
/// that holds it named (from /proc/net/tcp{,6} and the socket inodes under /proc/<pid>/fd).

#include "core/error.hpp"

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace openstation::agent {

/// An inclusive port range, [first, last].
struct PortRange {
  std::uint16_t first = 40000;
  std::uint16_t last = 40999;
};

/// A process that holds a port.
struct PortOwner {
  pid_t pid = 0;
  std::string name;  ///< /proc/<pid>/comm
  /// "pid 1234 (python3)".
  std::string describe() const;
};

/// The process listening on TCP `port` (IPv4 or IPv6, any address), when /proc says so.
/// Best effort: nullopt when nobody listens or the owner is not visible to this user.
std::optional<PortOwner> find_port_owner(std::uint16_t port,
                                         const std::filesystem::path& proc_root = "/proc");

/// The inodes of listening TCP sockets on `port` found in the text of /proc/net/tcp or tcp6.
std::vector<std::uint64_t> listening_inodes(std::string_view proc_net_tcp, std::uint16_t port);

/// Whether a port can be bound now. An interface so tests can stage the race where a port is
/// taken between the check and the engine's own bind.
class PortChecker {
 public:
  virtual ~PortChecker() = default;
  /// True when nothing holds `port` (a bind to 0.0.0.0:port succeeds).
  virtual bool is_free(std::uint16_t port) = 0;
  /// Who holds `port`, when discoverable.
  virtual std::optional<PortOwner> owner(std::uint16_t port) = 0;
};

/// The real checker: bind(2) on INADDR_ANY without SO_REUSEADDR, and find_port_owner().
class SystemPortChecker final : public PortChecker {
 public:
  bool is_free(std::uint16_t port) override;
  std::optional<PortOwner> owner(std::uint16_t port) override;
};

/// Hands out ports of a range to instance ids. Not thread-safe (the supervisor owns it).
class PortAllocator {
 public:
  /// `checker` must outlive the allocator.
  PortAllocator(PortRange range, PortChecker& checker);

  /// `count` free ports for `owner` (its earlier reservation is released first), scanning from
  /// after the last port handed out so a released port is not reused at once. Ports in `avoid`
  /// are skipped. Error "ports.exhausted" (resource_exhausted) naming the range and, for the
  /// first busy ports, who holds them.
  core::Result<std::vector<std::uint16_t>> allocate(const std::string& owner, std::size_t count,
                                                    const std::set<std::uint16_t>& avoid = {});
  /// Records ports already used by `owner` (an adopted instance) without checking them.
  void reserve(const std::string& owner, const std::vector<std::uint16_t>& ports);
  /// Releases what `owner` holds.
  void release(const std::string& owner);
  /// The instance holding `port`, if any.
  std::optional<std::string> holder(std::uint16_t port) const;
  const PortRange& range() const { return range_; }

 private:
  PortRange range_;
  PortChecker& checker_;
  std::map<std::uint16_t, std::string> reserved_;
  std::uint32_t cursor_;
};

}  // namespace openstation::agent
