#pragma once
/// HTTP/1.1 clients. `Client` is blocking (the CLI, the agent protocol, health probes);
/// `Connection` is a keep-alive connection driven by coroutines (the gateway's upstream calls):
/// send a request, read the head, then the body piece by piece or SSE event by event as it
/// arrives. Both speak http:// and https:// (TLS 1.2 or newer); what an https server must present
/// to be trusted is a TlsClientOptions (http/tls.hpp): a pinned fingerprint, a CA file, or the
/// system's CA store.
///
/// TLS errors (all Errc::unavailable unless noted):
/// - "http.tls_fingerprint_mismatch": the server's certificate is not the pinned one; the
///   message shows both fingerprints.
/// - "http.tls_verify": the chain or the host name did not verify (OpenSSL's reason, and the
///   fingerprint the server presented).
/// - "http.tls_handshake": the handshake failed otherwise (e.g. the port speaks plain HTTP).
/// - "http.tls_ca" (invalid_argument): the CA file cannot be loaded; "http.bad_fingerprint"
///   (invalid_argument): the pinned fingerprint is malformed.

#include "core/error.hpp"
#include "http/asio.hpp"
#include "http/message.hpp"
#include "http/sse.hpp"
#include "http/tls.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace openstation::http {

/// The parts of an absolute http URL.
struct Url {
  std::string scheme;  ///< "http" or "https"
  std::string host;    ///< without brackets for IPv6
  std::uint16_t port = 80;
  std::string target = "/";  ///< path and query
};

/// Parses "http://host[:port][/path][?query]" (also https and [IPv6] hosts). Errors:
/// "http.bad_url" naming what is wrong.
core::Result<Url> parse_url(std::string_view url);

/// A response's status line and headers.
struct ResponseHead {
  int status = 0;
  Headers headers;
};

/// One keep-alive HTTP/1.1 connection. Not thread-safe: use it from one coroutine at a time.
/// Zero timeouts wait forever. Errors are core::Error values with Errc::unavailable and codes
/// "http.connect", "http.timeout", "http.send", "http.read"; a non-2xx status is not an error.
class Connection {
 public:
  /// Connects to `host` (an IP address literal, "[v6]" brackets allowed, is used as it is; a
  /// name is resolved first: "http.resolve" when it does not resolve), within `timeout`. With `tls`
  /// set, also completes a TLS handshake and checks the server's certificate by those rules (same
  /// deadline).
  static Awaitable<core::Result<Connection>> connect(
      asio::any_io_executor ex, std::string host, std::uint16_t port,
      std::chrono::milliseconds timeout, std::optional<TlsClientOptions> tls = std::nullopt);
  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  ~Connection();

  /// Sends `req` (method, target, headers, body; Host and Content-Length are added) and reads
  /// the response head. The previous response's body must have been read to the end. With
  /// `only` set, just the headers named there go out (a proxy forwarding a client's request
  /// without its credentials).
  Awaitable<core::Result<ResponseHead>> send(const Request& req, std::chrono::milliseconds timeout,
                                             std::span<const std::string_view> only = {});
  /// The next body bytes as they arrive (each chunk as soon as it is there); "" once the body is
  /// complete (then body_done() is true). `timeout` bounds the wait for each piece.
  Awaitable<core::Result<std::string>> read_some(std::chrono::milliseconds timeout);
  /// The next SSE event or comment of the body; nullopt at the end of the body.
  Awaitable<core::Result<std::optional<SseEvent>>> read_event(std::chrono::milliseconds timeout);
  /// The next SSE event or comment if it is already here, from bytes received by earlier reads,
  /// with no I/O. A plain event (one "data: " line, SseWire) stays in the connection's buffer
  /// and `wire` describes it (SseNext::wire; its views last until the next call): a relay
  /// forwards its bytes as they came. Anything else is parsed into `event` (SseNext::event),
  /// whose strings' storage is reused: a relay passes the same objects for every event and
  /// allocates nothing per event. SseNext::none when more bytes are needed, or at the end of the
  /// body (then body_done() is true). The body's bytes are copied once, from the read buffer
  /// into the parser. Errors as read_event's. Lets a relay gather the events that came in one
  /// read and forward them with one write.
  core::Result<SseNext> buffered_event(SseEvent& event, SseWire& wire);
  /// Waits for more of the body and keeps it for buffered_event() or buffered_body(): one read
  /// under `timeout` (one coroutine frame, where read_event takes two and a string per read).
  /// Does nothing once the body is complete. Errors as read_some's; the end of a body delimited by
  /// the connection's end is not one (body_done() is then true). With buffered_event(), a relay
  /// reads each event's bytes once: `while (event = buffered_event()) ...; co_await
  /// receive_more(t);`.
  Awaitable<core::Result<void>> receive_more(std::chrono::milliseconds timeout);
  /// What receive_more_then() calls when its read has ended.
  class ReadDone {
   public:
    virtual ~ReadDone() = default;
    /// Called once, on the connection's executor, with what receive_more() would have returned.
    /// `self` is this object, handed back so that it can start the next read or be dropped.
    virtual void on_received(core::Result<void> got, std::unique_ptr<ReadDone> self) = 0;
  };
  /// receive_more() for a caller that reacts to each read in a plain function instead of a
  /// coroutine, so that a relay pays one handler per read rather than a coroutine's resumption:
  /// starts the read and returns at once. The read owns `done` until it ends (an I/O context
  /// that goes away first destroys it unrun). Once the body is complete, `done` is called without
  /// a read, posted to the connection's executor. One read at a time, as with receive_more().
  void receive_more_then(std::chrono::milliseconds timeout, std::unique_ptr<ReadDone> done);
  /// Ends the read in progress, if any, with an error ("http.read"); the connection is not
  /// reusable after that.
  void cancel_read();
  /// Appends the body bytes already received by earlier reads, decoded, to `body`, with no I/O
  /// (possibly nothing); body_done() then says whether that was all of it. Lets a caller take a
  /// small body that came with the head without a coroutine of its own, into a string whose
  /// storage it reuses. Errors as read_some's.
  core::Result<void> buffered_body(std::string& body);
  /// Hands back a head this connection's send() returned, so that the next send() refills its
  /// header fields instead of allocating new ones (a proxy that sends a request per client
  /// request on a pooled connection).
  void recycle(ResponseHead&& head);
  /// send() and read the whole body (refused with "http.body_too_large" beyond `body_limit`).
  Awaitable<core::Result<Response>> request(const Request& req, std::chrono::milliseconds timeout,
                                            std::uint64_t body_limit = 64ull << 20);

  /// True when the current response's body has been read to the end.
  bool body_done() const;
  /// True when another request may be sent on this connection (keep-alive, body read, no error).
  bool reusable() const;
  /// True for a TLS connection.
  bool secure() const;
  /// The fingerprint of the server's leaf certificate ("sha256:AB:..."); empty for plain HTTP.
  const std::string& peer_fingerprint() const;
  /// Closes the socket; pending operations end with errors.
  void close();

 private:
  struct Impl;
  explicit Connection(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// A blocking client: each call runs its own small io_context on the calling thread. Safe to use
/// from several threads at once (calls share nothing). https:// URLs are checked with the
/// TlsClientOptions given at construction (default: the system's CA store).
class Client {
 public:
  Client() = default;
  explicit Client(TlsClientOptions tls) : tls_(std::move(tls)) {}

  /// One request to an absolute URL. Errors as Connection's, plus "http.bad_url".
  core::Result<Response> request(std::string_view method, std::string_view url,
                                 const Headers& headers = {}, std::string body = {},
                                 std::chrono::milliseconds timeout = std::chrono::seconds(30),
                                 std::uint64_t body_limit = 64ull << 20) const;
  /// GET shorthand.
  core::Result<Response> get(std::string_view url,
                             std::chrono::milliseconds timeout = std::chrono::seconds(30)) const {
    return request("GET", url, {}, {}, timeout);
  }
  /// POST of a JSON body.
  core::Result<Response> post_json(std::string_view url, std::string json,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(30),
                                   const Headers& headers = {}) const;

  /// The TLS settings used for https:// URLs.
  const TlsClientOptions& tls() const { return tls_; }

 private:
  TlsClientOptions tls_;
};

/// A blocking client that keeps its connection from one call to the next, for a caller that asks
/// the same server every few seconds (an agent's heartbeat): each call then pays neither a TCP
/// connect nor a TLS handshake, on either side. Calls are serialised (one connection). A URL of
/// another server replaces the connection. When a kept connection fails at the send or before
/// the answer's head (the server closed it while it was idle), the request is sent once more on
/// a new one: for requests that may be repeated.
class KeptClient {
 public:
  explicit KeptClient(TlsClientOptions tls = {});
  ~KeptClient();
  KeptClient(const KeptClient&) = delete;
  KeptClient& operator=(const KeptClient&) = delete;

  /// As Client::request, on the kept connection.
  core::Result<Response> request(std::string_view method, std::string_view url,
                                 const Headers& headers = {}, std::string body = {},
                                 std::chrono::milliseconds timeout = std::chrono::seconds(30),
                                 std::uint64_t body_limit = 64ull << 20);
  /// POST of a JSON body.
  core::Result<Response> post_json(std::string_view url, std::string json,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(30),
                                   const Headers& headers = {});
  /// Connections made so far (a new one per server change or lost connection).
  std::uint64_t connections() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace openstation::http
