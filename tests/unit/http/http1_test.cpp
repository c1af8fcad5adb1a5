#include "http/http1.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace openstation::http::wire {
namespace {

TEST(Http1, RequestHeadIsParsedInPlace) {
  const std::string in =
      "\r\nPOST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: gw\r\nAuthorization:  Bearer k \r\n"
      "Content-Length: 2\r\n\r\n{}";
  Head h;
  std::string why;
  ASSERT_EQ(parse_request_head(in, h, why), Parse::complete) << why;
  EXPECT_EQ(h.method, "POST");
  EXPECT_EQ(h.target, "/v1/chat/completions?x=1");
  EXPECT_EQ(h.minor, 1);
  EXPECT_EQ(h.size, in.size() - 2);
  ASSERT_EQ(h.fields.size(), 3u);
  EXPECT_EQ(h.get("authorization"), "Bearer k");  // optional whitespace trimmed
  Framing f;
  ASSERT_TRUE(request_framing(h, f, why));
  EXPECT_EQ(f.kind, Framing::sized);
  EXPECT_EQ(f.length, 2u);
  EXPECT_TRUE(keep_alive(h));
}

TEST(Http1, EveryPrefixOfAHeadIsIncomplete) {
  const std::string in = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
  Head h;
  std::string why;
  for (std::size_t n = 0; n < in.size(); ++n) {
    EXPECT_EQ(parse_request_head(in.substr(0, n), h, why), Parse::incomplete) << n;
  }
  ASSERT_EQ(parse_request_head(in, h, why), Parse::complete);
  EXPECT_EQ(h.minor, 0);
  EXPECT_TRUE(keep_alive(h));
  ASSERT_EQ(parse_request_head("GET / HTTP/1.0\r\n\r\n", h, why), Parse::complete);
  EXPECT_FALSE(keep_alive(h));
  ASSERT_EQ(parse_request_head("GET / HTTP/1.1\r\nConnection: Upgrade, close\r\n\r\n", h, why),
            Parse::complete);
  EXPECT_FALSE(keep_alive(h));
}

TEST(Http1, MalformedRequestsSayWhatIsWrong) {
  const std::pair<const char*, const char*> cases[] = {
      {"GET\r\n\r\n", "METHOD target"},
      {"G(T / HTTP/1.1\r\n\r\n", "method"},
      {"GET / HTTP/3\r\n\r\n", "HTTP version"},
      {"GET / HTTP/1.1\r\nNo colon\r\n\r\n", "field name"},
      {"GET / HTTP/1.1\r\nBad Name: v\r\n\r\n", "field name"},
      {"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n", "control character"},
      {"GET / HTTP/1.1\r\nX: a\r\n  b\r\n\r\n", "folding"},
      {"\x16\x03\x01", "method"},  // a TLS hello on the plain port fails at once
  };
  for (const auto& [in, what] : cases) {
    Head h;
    std::string why;
    EXPECT_EQ(parse_request_head(in, h, why), Parse::error) << in;
    EXPECT_NE(why.find(what), std::string::npos) << in << " → " << why;
  }
}

// Field lines are read in one pass: each byte is checked once against its class, and every
// malformed line still gets its own reason.
TEST(Http1, FieldLinesAreCheckedByteByByte) {
  Head h;
  std::string why;
  ASSERT_EQ(parse_request_head("GET / HTTP/1.1\r\nA:\r\nB: \t x y \t\r\nC:\xc3\xa9\x80\r\n"
                               "D-e_f.g~!:v:w\r\n\r\nbody",
                               h, why),
            Parse::complete)
      << why;
  ASSERT_EQ(h.fields.size(), 4u);
  EXPECT_EQ(h.fields[0], (std::pair<std::string_view, std::string_view>{"A", ""}));
  EXPECT_EQ(h.fields[1].second, "x y");
  EXPECT_EQ(h.fields[2].second, "\xc3\xa9\x80");  // obs-text is kept
  EXPECT_EQ(h.fields[3], (std::pair<std::string_view, std::string_view>{"D-e_f.g~!", "v:w"}));
  EXPECT_EQ(h.size, std::string_view("GET / HTTP/1.1\r\nA:\r\nB: \t x y \t\r\nC:\xc3\xa9\x80"
                                     "\r\nD-e_f.g~!:v:w\r\n\r\n")
                        .size());
  const std::pair<const char*, const char*> bad[] = {
      {"GET / HTTP/1.1\r\nNo colon\r\n\r\n", "a header line without a field name and ':'"},
      {"GET / HTTP/1.1\r\n: v\r\n\r\n", "a header line without a field name and ':'"},
      {"GET / HTTP/1.1\r\nBad Name: v\r\n\r\n", "an invalid character in a header field name"},
      {"GET / HTTP/1.1\r\n\rX: v\r\n\r\n", "an invalid character in a header field name"},
      {"GET / HTTP/1.1\r\nX: a\nY: b\r\n\r\n", "a control character in the value of header 'X'"},
      {"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", "a control character in the value of header 'X'"},
      {"GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", "a control character in the value of header 'X'"},
      {"GET / HTTP/1.1\r\n\tX: v\r\n\r\n", "obsolete line folding in a header field"},
  };
  for (const auto& [in, reason] : bad) {
    EXPECT_EQ(parse_request_head(in, h, why), Parse::error) << in;
    EXPECT_EQ(why, reason) << in;
  }
  // Long values are checked sixteen bytes at a time: a bad byte is found at every offset, and
  // tabs and obs-text are not mistaken for one.
  for (std::size_t at = 0; at < 40; ++at) {
    std::string value(40, 'v');
    value[at] = '\t';
    value[(at + 7) % 40] = static_cast<char>(0xe9);
    const std::string good = "GET / HTTP/1.1\r\nCookie: " + value + "\r\n\r\n";
    ASSERT_EQ(parse_request_head(good, h, why), Parse::complete) << at << ": " << why;
    // A tab at either end is optional whitespace, trimmed.
    const std::size_t from = at == 0 ? 1 : 0;
    const std::size_t to = at == 39 ? 39 : 40;
    EXPECT_EQ(h.fields[0].second, std::string_view(value).substr(from, to - from)) << at;
    for (const char byte : {'\x00', '\x1f', '\x7f', '\n'}) {
      value[at] = byte;
      EXPECT_EQ(parse_request_head("GET / HTTP/1.1\r\nCookie: " + value + "\r\n\r\n", h, why),
                Parse::error)
          << at << " " << static_cast<int>(byte);
    }
  }
  // Names are scanned sixteen bytes at a time for the usual letters, digits and dashes; any other
  // token character is still accepted, anything else refused, wherever it falls.
  for (std::size_t at = 0; at < 24; ++at) {
    std::string name = "X-Abcdefghijklmnopq-1234";
    name[at] = '_';
    const std::string head =
        "GET / HTTP/1.1\r\n" + name + ": v\r\n\r\n";  // the views point into it
    ASSERT_EQ(parse_request_head(head, h, why), Parse::complete) << name << ": " << why;
    EXPECT_EQ(h.fields[0].first, name);
    name[at] = '@';
    EXPECT_EQ(parse_request_head("GET / HTTP/1.1\r\n" + name + ": v\r\n\r\n", h, why), Parse::error)
        << name;
    EXPECT_EQ(why, "an invalid character in a header field name") << name;
  }
  // A response head goes through the same reading.
  ASSERT_EQ(parse_response_head("HTTP/1.1 200 OK\r\nContent-Length:  5 \r\n\r\nhello", h, why),
            Parse::complete);
  EXPECT_EQ(h.get("content-length"), "5");
  EXPECT_EQ(parse_response_head("HTTP/1.1 200 OK\r\nX\x01: 5\r\n\r\n", h, why), Parse::error);
}

TEST(Http1, FramingRefusesWhatCouldSmuggleARequest) {
  auto framing = [](const std::string& fields, Framing& f, std::string& why) {
    Head h;
    const std::string in = "POST / HTTP/1.1\r\n" + fields + "\r\n";
    EXPECT_EQ(parse_request_head(in, h, why), Parse::complete) << why;
    return request_framing(h, f, why);
  };
  Framing f;
  std::string why;
  EXPECT_FALSE(framing("Content-Length: 1\r\nTransfer-Encoding: chunked\r\n", f, why));
  EXPECT_FALSE(framing("Content-Length: 1\r\nContent-Length: 2\r\n", f, why));
  EXPECT_FALSE(framing("Content-Length: 1, 2\r\n", f, why));
  EXPECT_FALSE(framing("Content-Length: +1\r\n", f, why));
  EXPECT_FALSE(framing("Transfer-Encoding: gzip, chunked\r\n", f, why));
  ASSERT_TRUE(framing("Content-Length: 7, 7\r\n", f, why)) << why;
  EXPECT_EQ(f.kind, Framing::sized);
  ASSERT_TRUE(framing("Transfer-Encoding: Chunked\r\n", f, why)) << why;
  EXPECT_EQ(f.kind, Framing::chunked);
  ASSERT_TRUE(framing("", f, why));
  EXPECT_EQ(f.kind, Framing::none);
}

TEST(Http1, ResponseHeadsAndTheirBodies) {
  Head h;
  std::string why;
  Framing f;
  ASSERT_EQ(parse_response_head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", h, why),
            Parse::complete);
  EXPECT_EQ(h.status, 200);
  ASSERT_TRUE(response_framing(h, "GET", f, why));
  EXPECT_EQ(f.kind, Framing::sized);
  ASSERT_TRUE(response_framing(h, "HEAD", f, why));
  EXPECT_EQ(f.kind, Framing::none);  // HEAD: the length describes a body that is not sent

  ASSERT_EQ(parse_response_head("HTTP/1.1 204\r\n\r\n", h, why), Parse::complete) << why;
  ASSERT_TRUE(response_framing(h, "GET", f, why));
  EXPECT_EQ(f.kind, Framing::none);

  ASSERT_EQ(parse_response_head("HTTP/1.0 200 OK\r\n\r\n", h, why), Parse::complete);
  ASSERT_TRUE(response_framing(h, "GET", f, why));
  EXPECT_EQ(f.kind, Framing::until_close);
  EXPECT_FALSE(keep_alive(h));

  EXPECT_EQ(parse_response_head("HTTP/1.1 2x0 OK\r\n\r\n", h, why), Parse::error);
  EXPECT_EQ(parse_response_head("SSH-2.0-OpenSSH", h, why), Parse::error);
  EXPECT_EQ(parse_response_head("HTTP/1.1 200 OK\r\n", h, why), Parse::incomplete);
}

TEST(Http1, ChunkedBodiesDecodeByteByByte) {
  const std::string body =
      "4;name=v\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX: y\r\n\r\n";
  std::string why;
  {
    ChunkedDecoder d;
    std::string out;
    auto used = d.feed(body + "NEXT", out, why);
    ASSERT_TRUE(used) << why;
    EXPECT_EQ(*used, body.size());  // stops after the trailer: the next message is not consumed
    EXPECT_TRUE(d.done());
    EXPECT_EQ(out, "Wikipedia in\r\n\r\nchunks.");
  }
  ChunkedDecoder d;
  std::string out;
  for (char c : body) {
    auto used = d.feed(std::string_view(&c, 1), out, why);
    ASSERT_TRUE(used) << why;
    EXPECT_EQ(*used, 1u);
  }
  EXPECT_TRUE(d.done());
  EXPECT_EQ(out, "Wikipedia in\r\n\r\nchunks.");
  EXPECT_EQ(d.decoded(), out.size());

  for (const char* bad : {"x\r\n", "4\r\nWikiXX", "4\nWiki", "fffffffffffffffff\r\n"}) {
    ChunkedDecoder b;
    std::string o;
    EXPECT_FALSE(b.feed(bad, o, why)) << bad;
  }
}

TEST(Http1, WholeChunksDecodeAtOnceAsTheyDoByteByByte) {
  // Fed at once, a chunk that is all there is taken in one step; fed a byte at a time, the byte
  // loop reads it. Both must agree on every body, good or bad: bytes used, the data, the count,
  // and the error.
  const std::string sixteen = "0123456789abcdef";
  const std::vector<std::string> bodies = {
      "4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n",
      "0004\r\nWiki\r\nA\r\n" + sixteen.substr(0, 10) + "\r\n0\r\n\r\n",
      "10\r\n" + sixteen + "\r\n0\r\n\r\nNEXT",
      "00000000000000a\r\n" + sixteen.substr(0, 10) + "\r\n0\r\n\r\n",  // 15 digits
      "000000000000000a\r\n" + sixteen.substr(0, 10) + "\r\n",          // 16: too many
      "4\r\nWikiXX\r\n",                                                // longer than its size
      "4\r\nWiki\rX",
      "4\r\nWi\r\n\r\n",
      "4;ext\r\nWiki\r\n0\r\n\r\n",
      "4 \r\nWiki\r\n0\r\n\r\n",
      "4\nWiki\r\n",
      "4\r\nWik",  // not all here yet
  };
  for (const std::string& body : bodies) {
    std::string why_whole;
    ChunkedDecoder whole;
    std::string out_whole;
    const auto used = whole.feed(body, out_whole, why_whole);

    ChunkedDecoder bytes;
    std::string out_bytes;
    std::string why_bytes;
    std::size_t used_bytes = 0;
    bool failed = false;
    for (char c : body) {
      if (bytes.done()) break;
      auto one = bytes.feed(std::string_view(&c, 1), out_bytes, why_bytes);
      if (!one) {
        failed = true;
        break;
      }
      used_bytes += *one;
    }
    EXPECT_EQ(used.has_value(), !failed) << body;
    EXPECT_EQ(why_whole, why_bytes) << body;
    EXPECT_EQ(used.value_or(used_bytes), used_bytes) << body;
    EXPECT_EQ(out_whole, out_bytes) << body;
    EXPECT_EQ(whole.decoded(), bytes.decoded()) << body;
    EXPECT_EQ(whole.done(), bytes.done()) << body;
  }
}

TEST(Http1, ChunkSizeLinesAreHex) {
  std::string out;
  append_chunk_size(out, 0);
  append_chunk_size(out, 255);
  append_chunk_size(out, 65536);
  EXPECT_EQ(out, "0\r\nff\r\n10000\r\n");
}

}  // namespace
}  // namespace openstation::http::wire
