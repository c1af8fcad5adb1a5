#pragma once
/// HTTP/1.1 on the wire, without I/O: parsing request and response heads, decoding chunked
/// bodies, and the framing rules (RFC 9112) the server and the client share. The parsers work on
/// the bytes received so far and never allocate for a field: names and values are views into the
/// caller's buffer, valid until the buffer changes. The server's and client's loops in
/// server.cpp and client.cpp feed them; the fuzz target feeds them arbitrary bytes.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace openstation::http::wire {

/// One parsed head. For a request `method` and `target` are set, for a response `status`.
struct Head {
  std::string_view method;
  std::string_view target;
  int status = 0;
  int minor = 1;  ///< HTTP/1.<minor>: 0 or 1
  std::vector<std::pair<std::string_view, std::string_view>> fields;
  std::size_t size = 0;  ///< bytes of the head, final CRLF CRLF included

  /// The first value of a field (case-insensitive name).
  std::optional<std::string_view> get(std::string_view name) const;
  void clear() {
    method = target = {};
    status = 0;
    minor = 1;
    fields.clear();
    size = 0;
  }
};

enum class Parse { complete, incomplete, error };

/// Parses a request head at the start of `in`. `error` (when Parse::error) says what was wrong,
/// for a 400 body. Incomplete means: the blank line that ends the head has not arrived yet.
Parse parse_request_head(std::string_view in, Head& head, std::string& error);

/// Parses a response head at the start of `in` (status line and fields).
Parse parse_response_head(std::string_view in, Head& head, std::string& error);

/// How a message body is delimited (RFC 9112 §6).
struct Framing {
  enum Kind { none, sized, chunked, until_close } kind = none;
  std::uint64_t length = 0;  ///< for Kind::sized
};

/// A request's body framing: chunked, Content-Length, or none. Refuses what could smuggle a
/// request (both headers, several different lengths, a transfer coding other than chunked).
bool request_framing(const Head& head, Framing& out, std::string& error);

/// A response's body framing, given the request's method (HEAD has no body) and the status.
bool response_framing(const Head& head, std::string_view request_method, Framing& out,
                      std::string& error);

/// Whether the connection stays open after this message: HTTP/1.1 unless "Connection: close",
/// HTTP/1.0 only with "Connection: keep-alive".
bool keep_alive(const Head& head);

/// Decodes a chunked body incrementally: feed() consumes what it can of `in`, appends the data
/// to `out` and returns the bytes consumed; done() once the last chunk and trailers have passed.
class ChunkedDecoder {
 public:
  /// Bytes of `in` consumed; nullopt on malformed input (`error` says why).
  std::optional<std::size_t> feed(std::string_view in, std::string& out, std::string& error);
  bool done() const { return state_ == State::done; }
  /// Body bytes decoded so far.
  std::uint64_t decoded() const { return decoded_; }

 private:
  enum class State { size, size_ext, size_lf, data, data_cr, data_lf, trailer, trailer_lf, done };
  /// A whole chunk at the start of `in`, "<hex size>\r\n<data>\r\n" with no extension (an
  /// engine's event, usually), decoded at once: the bytes it took, or 0 when it is not all there
  /// or not of that form, and then the byte loop decides.
  std::size_t take_whole_chunk(std::string_view in, std::string& out);
  State state_ = State::size;
  std::uint64_t remaining_ = 0;
  std::uint64_t decoded_ = 0;
  int size_digits_ = 0;
  bool trailer_empty_ = true;
};

/// Appends "Name: value\r\n".
void append_field(std::string& out, std::string_view name, std::string_view value);

/// Appends the hexadecimal chunk-size line of a chunk of `n` bytes ("1a\r\n").
void append_chunk_size(std::string& out, std::size_t n);

}  // namespace openstation::http::wire
