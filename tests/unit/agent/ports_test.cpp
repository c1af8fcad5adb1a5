#include "agent/ports.hpp"

#include "support/fake_supervisor_seams.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace openstation::agent {
namespace {

/// A listener on 127.0.0.1:<ephemeral port>, closed on destruction.
struct Listener {
  int fd = -1;
  std::uint16_t port = 0;
  Listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd, 4), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  ~Listener() { ::close(fd); }
};

TEST(Ports, ParsesListeningSocketsOfProcNetTcp) {
  const std::string table =
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
      "timeout inode\n"
      "   0: 0100007F:9C40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000   "
      "     0 123456 1 0000000000000000 100 0 0 10 0\n"
      "   1: 0100007F:9C40 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000   "
      "     0 777 1 0000000000000000 100 0 0 10 0\n"
      "   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0   "
      "     0 999 1 0000000000000000 100 0 0 10 0\n";
  EXPECT_EQ(listening_inodes(table, 40000), std::vector<std::uint64_t>{123456});
  EXPECT_EQ(listening_inodes(table, 8080), std::vector<std::uint64_t>{999});
  EXPECT_TRUE(listening_inodes(table, 40001).empty());
}

TEST(Ports, FindsTheProcessHoldingAPort) {
  Listener l;
  const auto owner = find_port_owner(l.port);
  ASSERT_TRUE(owner.has_value());
  EXPECT_EQ(owner->pid, ::getpid());
  EXPECT_FALSE(owner->name.empty());
  EXPECT_NE(owner->describe().find("pid " + std::to_string(::getpid())), std::string::npos);
}

TEST(Ports, SystemCheckerSeesATakenPort) {
  std::uint16_t port = 0;
  {
    Listener l;
    port = l.port;
    SystemPortChecker checker;
    EXPECT_FALSE(checker.is_free(port));
    ASSERT_TRUE(checker.owner(port).has_value());
  }
  SystemPortChecker checker;
  EXPECT_TRUE(checker.is_free(port)) << "free again once closed";
}

TEST(Ports, AllocatorSkipsBusyAndReservedPorts) {
  testing::FakePortChecker checker;
  checker.busy = {40001};
  PortAllocator alloc({40000, 40004}, checker);
  EXPECT_EQ(*alloc.allocate("a", 1), std::vector<std::uint16_t>{40000});
  EXPECT_EQ(*alloc.allocate("b", 2), (std::vector<std::uint16_t>{40002, 40003}));
  EXPECT_EQ(alloc.holder(40002), "b");
  EXPECT_EQ(alloc.allocate("c", 1, {40004}).error().code, "ports.exhausted");
}

TEST(Ports, AllocatorDoesNotReuseAReleasedPortAtOnce) {
  testing::FakePortChecker checker;
  PortAllocator alloc({40000, 40002}, checker);
  EXPECT_EQ(alloc.allocate("a", 1)->front(), 40000);
  alloc.release("a");
  EXPECT_FALSE(alloc.holder(40000).has_value());
  EXPECT_EQ(alloc.allocate("b", 1)->front(), 40001);
  EXPECT_EQ(alloc.allocate("c", 1)->front(), 40002);
  EXPECT_EQ(alloc.allocate("d", 1)->front(), 40000) << "wraps around";
}

TEST(Ports, ExhaustedRangeNamesWhoHoldsThePorts) {
  testing::FakePortChecker checker;
  checker.busy = {40000, 40001};
  checker.owners[40000] = PortOwner{77, "python3"};
  PortAllocator alloc({40000, 40001}, checker);
  const auto r = alloc.allocate("a", 1);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "ports.exhausted");
  EXPECT_EQ(r.error().category, core::Errc::resource_exhausted);
  EXPECT_NE(r.error().message.find("40000 by pid 77 (python3)"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("40001 by an unknown process"), std::string::npos);
}

TEST(Ports, ReserveHoldsAdoptedPorts) {
  testing::FakePortChecker checker;
  PortAllocator alloc({40000, 40001}, checker);
  alloc.reserve("adopted", {40000});
  EXPECT_EQ(alloc.allocate("new", 1)->front(), 40001);
}

}  // namespace
}  // namespace openstation::agent
