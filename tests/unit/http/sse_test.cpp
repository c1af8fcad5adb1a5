#include "http/sse.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace openstation::http {
namespace {

TEST(SseFormat, PlainMultiLineAndFields) {
  EXPECT_EQ(format_sse_data("hello"), "data: hello\n\n");
  SseEvent e;
  e.event = "update";
  e.id = "7";
  e.retry = 1500;
  e.data = "line1\nline2";
  EXPECT_EQ(format_sse(e), "event: update\nid: 7\nretry: 1500\ndata: line1\ndata: line2\n\n");
  EXPECT_EQ(format_sse_comment("keep-alive"), ": keep-alive\n\n");
  EXPECT_EQ(format_sse_data(""), "data: \n\n");
  // append_sse adds the same wire form after what is already there.
  std::string batch = "data: 0\n\n";
  append_sse(batch, e);
  SseEvent comment;
  comment.comment = "";
  append_sse(batch, comment);
  EXPECT_EQ(batch, "data: 0\n\n" + format_sse(e) + ":\n\n");
}

TEST(SseParser, RoundTripsFormattedEvents) {
  SseEvent a;
  a.data = "{\"x\":1}";
  SseEvent b;
  b.event = "done";
  b.data = "a\nb\n";
  b.id = "42";
  b.retry = 10;
  SseParser p;
  ASSERT_TRUE(p.feed(format_sse(a) + format_sse(b)));
  auto ea = p.next();
  ASSERT_TRUE(ea);
  EXPECT_EQ(*ea, a);
  auto eb = p.next();
  ASSERT_TRUE(eb);
  EXPECT_EQ(*eb, b);
  EXPECT_FALSE(p.next());
}

TEST(SseParser, ResetForgetsAPartialEventAPendingLineAndALoneCr) {
  // A pooled connection's parser is reset for each response: nothing of the last one carries
  // over, and the size limit stays.
  SseParser p(128);
  ASSERT_TRUE(p.feed("event: old\ndata: half of an event\nid: 9\ndata: a line without its end\r"));
  EXPECT_FALSE(p.next());
  p.reset();
  EXPECT_EQ(p.pending_bytes(), 0u);
  ASSERT_TRUE(p.feed("\ndata: new\n\n"));  // the LF after the old CR is a line of its own now
  auto e = p.next();
  ASSERT_TRUE(e);
  SseEvent fresh;
  fresh.data = "new";
  EXPECT_EQ(*e, fresh);
  EXPECT_FALSE(p.next());
  p.reset();
  EXPECT_FALSE(p.feed(std::string(129, 'x')));
}

TEST(SseParser, ByteByByteWithCrLfAndLoneCr) {
  const std::string wire = "data: one\r\ndata: two\r\n\r\nevent: e\rdata: three\r\r";
  SseParser p;
  std::vector<SseEvent> got;
  for (char c : wire) {
    ASSERT_TRUE(p.feed(std::string_view(&c, 1)));
    while (auto e = p.next()) got.push_back(*e);
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].data, "one\ntwo");
  EXPECT_EQ(got[1].event, "e");
  EXPECT_EQ(got[1].data, "three");

  // All at once, with every line ending mixed: each line ends at its first CR or LF.
  SseParser whole;
  ASSERT_TRUE(whole.feed(wire + "data: four\n\rdata: five\rdata: six\r\n\n"));
  std::vector<SseEvent> all;
  while (auto e = whole.next()) all.push_back(*e);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0], got[0]);
  EXPECT_EQ(all[1], got[1]);
  EXPECT_EQ(all[2].data, "four");
  EXPECT_EQ(all[3].data, "five\nsix");
}

TEST(SseParser, IncompleteEventWaitsForBlankLine) {
  SseParser p;
  ASSERT_TRUE(p.feed("data: partial\n"));
  EXPECT_FALSE(p.next());
  ASSERT_TRUE(p.feed("\n"));
  auto e = p.next();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->data, "partial");
}

TEST(SseParser, CommentsAndUnknownFields) {
  SseParser p;
  ASSERT_TRUE(p.feed(": ping\n\nfoo: bar\ndata:x\n\n:\n\n"));
  auto c = p.next();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->is_comment());
  EXPECT_EQ(*c->comment, "ping");
  auto e = p.next();
  ASSERT_TRUE(e);
  EXPECT_FALSE(e->is_comment());
  EXPECT_EQ(e->data, "x");  // no space after the colon: kept as is
  auto c2 = p.next();
  ASSERT_TRUE(c2);
  EXPECT_EQ(*c2->comment, "");
  EXPECT_FALSE(p.next());
}

TEST(SseParser, DoneMarkerAndBufferLimit) {
  SseParser p(16);
  ASSERT_TRUE(p.feed("data: [DONE]\n\n"));
  auto e = p.next();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->data, "[DONE]");
  EXPECT_FALSE(p.feed(std::string(17, 'x')));
}

TEST(SseParser, OneReusedEventGetsEveryFieldOfEachEventAndNothingOfTheOneBefore) {
  // Events with and without name, id and retry, a comment in the middle of an event's lines,
  // a long data line, then short ones: parsed into one object they must equal what next()
  // returns, field for field, and a call that finds no event leaves the object as it was.
  const std::string stream =
      "event: first\nid: 1\nretry: 5\ndata: a\ndata: b\n\n"
      "data: " +
      std::string(300, 'x') +
      "\n\n"
      "data: partial\n: note\ndata: rest\n\n"
      "data: c\n\n"
      "event: named\n\n"
      ":\n\n"
      "id: 9\ndata: d\n\n"
      "data: unfinished\n";
  SseParser fresh;
  SseParser reused;
  ASSERT_TRUE(fresh.feed(stream));
  ASSERT_TRUE(reused.feed(stream));
  SseEvent ev;
  int n = 0;
  while (auto expected = fresh.next()) {
    ASSERT_TRUE(reused.next(ev)) << "event " << n;
    EXPECT_EQ(ev, *expected) << "event " << n;
    ++n;
  }
  EXPECT_EQ(n, 8);  // the comment inside the third event comes out before it
  const SseEvent last = ev;
  EXPECT_FALSE(reused.next(ev));
  EXPECT_EQ(ev, last);
  ASSERT_TRUE(reused.feed("\n"));
  ASSERT_TRUE(reused.next(ev));
  EXPECT_EQ(ev.data, "unfinished");
  EXPECT_TRUE(ev.id.empty());
  EXPECT_FALSE(ev.is_comment());
}

TEST(SseParser, PlainEventsAreLeftAsTheyCameAndTheRestParsedInAnySplit) {
  // Plain events (one "data: " line, no CR) come back as views of their bytes, which are what
  // format_sse() makes of them; every other form is parsed as next() parses it. Fed whole, in
  // two pieces split at every offset, and byte by byte: the same events, and each plain one
  // that arrived whole at an event boundary as a view.
  const std::vector<std::pair<std::string, bool>> events = {
      {"data: {\"a\":1}\n\n", true},    {"data: \n\n", true},
      {"data:  two spaces\n\n", true},  {"data:x\n\n", false},
      {"data: crlf\r\n\r\n", false},    {"data: a\ndata: b\n\n", false},
      {"event: e\ndata: x\n\n", false}, {"id: 1\ndata: x\n\n", false},
      {"data: lf then cr\n\r", false},  {": comment\n\n", false},
      {"data: lone\rcr\n\n", false},  // a CR ends a line: data "lone", then a field "cr"
      {"data: [DONE]\n\n", true},       {"data: after\n: inside\ndata: more\n\n", false},
      {"data: last\n\n", true},
  };
  std::string stream;
  for (const auto& [wire, plain] : events) stream += wire;
  SseParser reference;
  ASSERT_TRUE(reference.feed(stream));
  std::vector<SseEvent> expected;
  while (auto e = reference.next()) expected.push_back(*e);
  ASSERT_EQ(expected.size(), 15u);  // the comment inside an event's lines comes out on its own

  // Takes every event from `p` into `got`; counts the views.
  const auto drain = [](SseParser& p, std::vector<SseEvent>& got, int& views) {
    SseEvent ev;
    SseWire wire;
    for (;;) {
      const SseNext n = p.next(ev, wire);
      if (n == SseNext::none) return;
      if (n == SseNext::event) {
        got.push_back(ev);
        continue;
      }
      SseEvent plain;
      plain.data = std::string(wire.data);
      EXPECT_EQ(wire.bytes, format_sse(plain));
      got.push_back(plain);
      ++views;
    }
  };
  {
    SseParser whole;
    ASSERT_TRUE(whole.feed(stream));
    std::vector<SseEvent> got;
    int views = 0;
    drain(whole, got, views);
    EXPECT_EQ(got, expected);
    EXPECT_EQ(views, 5);  // the ones marked plain
  }
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    SseParser p;
    std::vector<SseEvent> got;
    int views = 0;
    ASSERT_TRUE(p.feed(std::string_view(stream).substr(0, cut)));
    drain(p, got, views);
    // Through input(), as a decoder appends: the same as feed().
    p.input().append(stream.substr(cut));
    ASSERT_TRUE(p.accepted());
    drain(p, got, views);
    EXPECT_EQ(got, expected) << "split at " << cut;
    EXPECT_GE(views, 4) << "split at " << cut;  // only the plain event cut in two is parsed
  }
  SseParser bytewise;
  std::vector<SseEvent> got;
  int views = 0;
  for (char c : stream) {
    ASSERT_TRUE(bytewise.feed(std::string_view(&c, 1)));
    drain(bytewise, got, views);
  }
  EXPECT_EQ(got, expected);
  EXPECT_EQ(views, 0);  // a byte at a time, no event is ever there whole before its first line
}

TEST(SseParser, InputKeepsWhatIsUnreadAndAcceptedKeepsTheLimit) {
  SseParser p(32);
  ASSERT_TRUE(p.feed("data: one\n\ndata: tw"));
  SseEvent ev;
  SseWire wire;
  ASSERT_EQ(p.next(ev, wire), SseNext::wire);
  EXPECT_EQ(wire.data, "one");
  EXPECT_EQ(p.next(ev, wire), SseNext::none);
  p.input().append("o\n\ndata: three\n");  // the consumed event may go; the rest stays
  ASSERT_TRUE(p.accepted());
  ASSERT_EQ(p.next(ev, wire), SseNext::wire);
  EXPECT_EQ(wire.bytes, "data: two\n\n");
  EXPECT_EQ(p.next(ev, wire), SseNext::none);  // takes the line: the event is begun
  p.input().append("\n");
  ASSERT_EQ(p.next(ev, wire), SseNext::event);
  EXPECT_EQ(ev.data, "three");
  p.input().append(std::string(33, 'x'));
  EXPECT_FALSE(p.accepted());
}

}  // namespace
}  // namespace openstation::http
