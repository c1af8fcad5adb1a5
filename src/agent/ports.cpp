#include "agent/ports.hpp"

#include "agent/process_launcher.hpp"
#include "core/strings.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

namespace openstation::agent {

std::string PortOwner::describe() const {
  std::string s = "pid " + std::to_string(pid);
  if (!name.empty()) s += " (" + name + ")";
  return s;
}

std::vector<std::uint64_t> listening_inodes(std::string_view text, std::uint16_t port) {
  // "  sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout
  //  inode"; local_address is HEXADDR:HEXPORT; st 0A is LISTEN.
  std::vector<std::uint64_t> out;
  std::istringstream in{std::string(text)};
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string sl, local, remote, st, queues, timer, retr, uid, timeout, inode;
    if (!(ls >> sl >> local >> remote >> st >> queues >> timer >> retr >> uid >> timeout >>
          inode)) {
      continue;
    }
    const auto colon = local.rfind(':');
    if (colon == std::string::npos || st != "0A") continue;
    try {
      if (std::stoul(local.substr(colon + 1), nullptr, 16) != port) continue;
      const auto ino = std::stoull(inode);
      if (ino != 0) out.push_back(ino);
    } catch (const std::exception&) {
      continue;
    }
  }
  return out;
}

std::optional<PortOwner> find_port_owner(std::uint16_t port,
                                         const std::filesystem::path& proc_root) {
  std::set<std::string> targets;
  for (const char* table : {"net/tcp", "net/tcp6"}) {
    std::ifstream in(proc_root / table);
    if (!in) continue;
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (auto ino : listening_inodes(text, port)) {
      targets.insert("socket:[" + std::to_string(ino) + "]");
    }
  }
  if (targets.empty()) return std::nullopt;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(proc_root, ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::error_code fec;
    for (std::filesystem::directory_iterator fd(it->path() / "fd", fec), fend; !fec && fd != fend;
         fd.increment(fec)) {
      std::error_code lec;
      const auto link = std::filesystem::read_symlink(fd->path(), lec);
      if (!lec && targets.count(link.string())) {
        const auto pid = static_cast<pid_t>(std::stol(name));
        return PortOwner{pid, process_name(pid, proc_root)};
      }
    }
  }
  return std::nullopt;
}

bool SystemPortChecker::is_free(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(port);
  const bool ok = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

std::optional<PortOwner> SystemPortChecker::owner(std::uint16_t port) {
  return find_port_owner(port);
}

PortAllocator::PortAllocator(PortRange range, PortChecker& checker)
    : range_(range), checker_(checker), cursor_(range.first) {}

core::Result<std::vector<std::uint16_t>> PortAllocator::allocate(
    const std::string& owner, std::size_t count, const std::set<std::uint16_t>& avoid) {
  release(owner);
  if (range_.last < range_.first) {
    return core::invalid("ports.bad_range", "the engine port range " +
                                                std::to_string(range_.first) + "-" +
                                                std::to_string(range_.last) + " is empty");
  }
  const std::uint32_t size = std::uint32_t{range_.last} - range_.first + 1;
  std::vector<std::uint16_t> got;
  std::vector<std::string> busy;
  for (std::uint32_t i = 0; i < size && got.size() < count; ++i) {
    const auto port =
        static_cast<std::uint16_t>(range_.first + (cursor_ - range_.first + i) % size);
    if (reserved_.count(port) || avoid.count(port)) continue;
    if (!checker_.is_free(port)) {
      if (busy.size() < 3) {
        const auto who = checker_.owner(port);
        busy.push_back(std::to_string(port) + " by " +
                       (who ? who->describe() : std::string("an unknown process")));
      }
      continue;
    }
    got.push_back(port);
  }
  if (got.size() < count) {
    std::string msg = "no free port in the engine port range " + std::to_string(range_.first) +
                      "-" + std::to_string(range_.last) + " (" + std::to_string(reserved_.size()) +
                      " reserved by instances";
    if (!busy.empty()) msg += "; taken: " + core::join(busy, ", ");
    msg += "); widen the range in the agent's configuration or stop what holds the ports";
    return core::Error(core::Errc::resource_exhausted, "ports.exhausted", msg);
  }
  for (auto p : got) reserved_[p] = owner;
  cursor_ = std::uint32_t{got.back()} + 1;
  if (cursor_ > range_.last) cursor_ = range_.first;
  return got;
}

void PortAllocator::reserve(const std::string& owner, const std::vector<std::uint16_t>& ports) {
  for (auto p : ports) reserved_[p] = owner;
}

void PortAllocator::release(const std::string& owner) {
  for (auto it = reserved_.begin(); it != reserved_.end();) {
    it = it->second == owner ? reserved_.erase(it) : std::next(it);
  }
}

std::optional<std::string> PortAllocator::holder(std::uint16_t port) const {
  const auto it = reserved_.find(port);
  if (it == reserved_.end()) return std::nullopt;
  return it->second;
}

}  // namespace openstation::agent
