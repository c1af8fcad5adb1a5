// The byte stream under HTTP connections (http/detail/stream.hpp). Reads that tell the reactor
// when they emptied a socket (http/detail/drain_read.hpp): the kernel's bytes-left report, and
// that no end of stream or later byte is ever missed because the next read waited for readiness
// instead of trying first. Writes that finish without a coroutine when the kernel takes
// everything, and continue asynchronously from the right byte when it does not.
#include "http/detail/stream.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace openstation::http::detail {
namespace {

using namespace std::chrono_literals;

/// A connected loopback pair: `ours` on the io_context, `peer` driven by the test directly.
struct Pair {
  asio::io_context ioc{1};
  tcp::socket ours{ioc};
  tcp::socket peer{ioc};

  Pair() {
    tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    peer.connect(acceptor.local_endpoint());
    ours = acceptor.accept();
  }
  void send(std::string_view s) {
    ASSERT_EQ(::send(peer.native_handle(), s.data(), s.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(s.size()));
  }
  void shutdown_peer() { ::shutdown(peer.native_handle(), SHUT_WR); }
  /// Waits until `ours` is readable and, with `fin`, until the peer's FIN has arrived too.
  void wait_readable(bool fin = false) {
    pollfd p{ours.native_handle(), static_cast<short>(POLLIN | (fin ? POLLRDHUP : 0)), 0};
    for (int i = 0; i < 200; ++i) {
      p.revents = 0;
      ASSERT_GE(::poll(&p, 1, 10), 0);
      if ((p.revents & POLLIN) && (!fin || (p.revents & POLLRDHUP))) return;
    }
    FAIL() << "socket never became readable";
  }
};

RecvResult receive(Pair& p, std::size_t size, std::string& out, beast::error_code& ec) {
  char buf[64];
  std::size_t n = 0;
  const auto r = receive_reporting_drain(p.ours.native_handle(), asio::buffer(buf, size), ec, n);
  out.assign(buf, n);
  return r;
}

TEST(DrainRead, ReportsAnEmptiedSocketOnlyWhenNoByteAndNoFinIsLeft) {
  if (!kDrainAwareReads) GTEST_SKIP() << "this build reads without TCP_INQ";
  Pair p;
  ASSERT_TRUE(enable_drain_tracking(p.ours));
  std::string got;
  beast::error_code ec;

  p.send("hello");
  p.wait_readable();
  EXPECT_EQ(receive(p, 64, got, ec), RecvResult::drained);
  EXPECT_EQ(got, "hello");
  EXPECT_FALSE(ec);

  EXPECT_EQ(receive(p, 64, got, ec), RecvResult::would_block);

  p.send("0123456789");
  p.wait_readable();
  EXPECT_EQ(receive(p, 4, got, ec), RecvResult::done);  // six bytes are left
  EXPECT_EQ(got, "0123");
  EXPECT_EQ(receive(p, 64, got, ec), RecvResult::drained);
  EXPECT_EQ(got, "456789");

  // The last bytes and the FIN queued together: the read that takes the bytes must not call the
  // socket empty, or the next read would wait for an edge that never comes.
  p.send("bye");
  p.shutdown_peer();
  p.wait_readable(/*fin=*/true);
  EXPECT_EQ(receive(p, 64, got, ec), RecvResult::done);
  EXPECT_EQ(got, "bye");
  EXPECT_EQ(receive(p, 64, got, ec), RecvResult::done);
  EXPECT_EQ(got, "");
  EXPECT_EQ(ec, asio::error::eof);
}

TEST(DrainRead, WithoutTheBytesLeftReportAReadNeverClaimsAnEmptySocket) {
  Pair p;  // enable_drain_tracking not called
  std::string got;
  beast::error_code ec;
  p.send("hello");
  p.wait_readable();
  EXPECT_EQ(receive(p, 64, got, ec), RecvResult::done);
  EXPECT_EQ(got, "hello");
}

/// Runs `reads` read_raw calls on `ours` through a DualStream, each after `between(i)`, and
/// returns what each gave ("<eof>" for the end of stream); the io_context runs for at most 5 s,
/// so a read that is never woken shows up as a missing entry instead of a hung test.
template <class Between>
std::vector<std::string> read_through_stream(Pair& p, int reads, Between between) {
  std::vector<std::string> got;
  DualStream stream(std::move(p.ours));
  stream.tune_connected_socket();
  asio::co_spawn(
      p.ioc,
      [&]() -> asio::awaitable<void> {
        // Let the reactor see the socket's readiness first (epoll reports it once), so the
        // reads below get no help from an edge that was still pending.
        asio::steady_timer settle(p.ioc, 20ms);
        co_await settle.async_wait(use_tuple);
        for (int i = 0; i < reads; ++i) {
          between(i);
          char buf[64];
          auto [ec, n] = co_await stream.read_raw(asio::buffer(buf));
          got.push_back(ec == asio::error::eof ? "<eof>" : ec ? ec.message() : std::string(buf, n));
          if (ec) co_return;
        }
      },
      asio::detached);
  p.ioc.run_for(5s);
  return got;
}

TEST(DrainRead, AnEndOfStreamThatCameWithTheLastBytesEndsTheNextRead) {
  Pair p;
  p.send("last");
  p.shutdown_peer();
  p.wait_readable(/*fin=*/true);
  const auto got = read_through_stream(p, 3, [](int) {});
  EXPECT_EQ(got, (std::vector<std::string>{"last", "<eof>"}));
}

TEST(DrainRead, AReadAfterAnEmptyingOneWakesForLaterBytesAndTheEnd) {
  Pair p;
  p.send("first");
  p.wait_readable();
  std::thread writer;
  const auto got = read_through_stream(p, 4, [&](int i) {
    // Before the second read: bytes come 50 ms later. Before the third: only the FIN does.
    if (i == 1) {
      writer = std::thread([&] {
        std::this_thread::sleep_for(50ms);
        p.send("second");
      });
    } else if (i == 2) {
      writer.join();
      writer = std::thread([&] {
        std::this_thread::sleep_for(50ms);
        p.shutdown_peer();
      });
    }
  });
  if (writer.joinable()) writer.join();
  EXPECT_EQ(got, (std::vector<std::string>{"first", "second", "<eof>"}));
}

/// Runs the rest of a write that the kernel did not take at once while the peer reads, and
/// checks that the peer got exactly `all`.
void finish_and_read(Pair& p, DualStream& stream, asio::awaitable<beast::error_code> rest,
                     const std::string& all) {
  std::string received;
  std::thread reader([&] {
    char buf[65536];
    while (received.size() < all.size()) {
      const auto n = ::recv(p.peer.native_handle(), buf, sizeof buf, 0);
      if (n <= 0) break;
      received.append(buf, static_cast<std::size_t>(n));
    }
  });
  beast::error_code rest_ec = asio::error::would_block;
  asio::co_spawn(
      p.ioc, [&]() -> asio::awaitable<void> { rest_ec = co_await std::move(rest); },
      asio::detached);
  p.ioc.run_for(10s);
  stream.tcp_layer().socket().close();  // a reader still waiting for missing bytes ends
  reader.join();
  EXPECT_FALSE(rest_ec) << rest_ec.message();
  ASSERT_EQ(received.size(), all.size());
  EXPECT_TRUE(received == all);
}

TEST(StreamWrite, WhatTheKernelTakesAtOnceNeedsNoAwaitable) {
  Pair p;
  DualStream stream(std::move(p.ours));
  const std::string head = "head|";
  const std::string body = "body";
  const std::array<asio::const_buffer, 3> bufs{asio::buffer(head), asio::const_buffer(),
                                               asio::buffer(body)};
  beast::error_code ec;
  auto rest = stream.start_write(bufs, ec);
  EXPECT_FALSE(rest.has_value());
  EXPECT_FALSE(ec);
  char got[16] = {};
  ASSERT_EQ(::recv(p.peer.native_handle(), got, sizeof got, MSG_WAITALL | MSG_DONTWAIT), 9);
  EXPECT_EQ(std::string(got, 9), "head|body");
}

TEST(StreamWrite, WhatTheKernelCannotTakeGoesOnFromTheRightByte) {
  Pair p;
  DualStream stream(std::move(p.ours));
  // Far more than loopback socket buffers hold while nobody reads: the direct send takes the
  // small head and part of the body; the rest goes on inside the body, then the tail.
  std::string head(1000, 'h');
  std::string body(24 << 20, 'b');
  const std::string tail = "tail";
  for (std::size_t i = 0; i < body.size(); i += 4099) body[i] = static_cast<char>('a' + i % 26);
  const std::array<asio::const_buffer, 3> bufs{asio::buffer(head), asio::buffer(body),
                                               asio::buffer(tail)};
  const std::string all = head + body + tail;
  beast::error_code ec;
  auto rest = stream.start_write(bufs, ec);
  ASSERT_TRUE(rest.has_value()) << "the kernel took 24 MiB at once";
  finish_and_read(p, stream, std::move(*rest), all);
}

TEST(StreamWrite, SmallWritesGoOnFromTheRightByteWhenTheSocketFills) {
  // Pieces that add up to 2 KiB or less go out gathered into one send(2), as does one buffer of
  // any size: when the kernel takes only part of one (nobody reads), the rest goes on from the
  // right byte of the caller's own pieces.
  Pair p;
  const int small = 8192;
  ASSERT_EQ(::setsockopt(p.ours.native_handle(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  DualStream stream(std::move(p.ours));
  std::string all;
  std::array<std::string, 3> pieces;  // the last write's, alive until it is done
  std::optional<asio::awaitable<beast::error_code>> rest;
  bool gathered_last = false;
  for (int i = 0; i < 100000 && !rest; ++i) {
    pieces[0] = "head " + std::to_string(i) + "|";
    pieces[1].assign(static_cast<std::size_t>(500 + i % 700), static_cast<char>('a' + i % 26));
    pieces[2] = "|tail\n";
    gathered_last = i % 2 == 0;
    beast::error_code ec;
    if (gathered_last) {
      const std::array<asio::const_buffer, 3> bufs{asio::buffer(pieces[0]), asio::buffer(pieces[1]),
                                                   asio::buffer(pieces[2])};
      rest = stream.start_write(bufs, ec);
      all += pieces[0] + pieces[1] + pieces[2];
    } else {
      rest = stream.start_write(asio::buffer(pieces[1]), ec);
      all += pieces[1];
    }
    ASSERT_FALSE(ec) << ec.message();
  }
  ASSERT_TRUE(rest.has_value()) << "the socket never filled";
  finish_and_read(p, stream, std::move(*rest), all);
}

TEST(StreamWrite, AWriteOnAClosedSocketReportsTheError) {
  Pair p;
  DualStream stream(std::move(p.ours));
  stream.tcp_layer().socket().close();
  const std::string text = "x";
  beast::error_code ec;
  auto rest = stream.start_write(asio::buffer(text), ec);
  ASSERT_TRUE(rest.has_value());
  beast::error_code rest_ec;
  asio::co_spawn(
      p.ioc, [&]() -> asio::awaitable<void> { rest_ec = co_await std::move(*rest); },
      asio::detached);
  p.ioc.run_for(2s);
  EXPECT_TRUE(rest_ec);
}

}  // namespace
}  // namespace openstation::http::detail
