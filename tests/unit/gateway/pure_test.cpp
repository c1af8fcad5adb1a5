// The gateway's pure parts: OpenAI errors, request inspection, metering, picking, rate limits.
#include "gateway/metrics.hpp"
#include "gateway/openai_error.hpp"
#include "gateway/rate_limit.hpp"
#include "gateway/request.hpp"
#include "gateway/route_table.hpp"
#include "gateway/usage.hpp"
#include "support/manual_clock.hpp"

#include <gtest/gtest.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace openstation::gateway {
namespace {
namespace json = boost::json;
using namespace std::chrono_literals;

json::object error_of(const OpenAiError& e) {
  return json::parse(e.body()).as_object().at("error").as_object();
}

TEST(OpenAiError, GatewayErrorsUseOpenAiNames) {
  const auto e = from_error(
      401, core::Error(core::Errc::unauthorized, "auth.key_revoked", "This key was revoked"));
  const auto o = error_of(e);
  EXPECT_EQ(o.at("code"), "invalid_api_key");
  EXPECT_EQ(o.at("type"), "authentication_error");
  EXPECT_TRUE(o.at("param").is_null());
  EXPECT_EQ(o.at("message"), "This key was revoked");
  const auto m =
      error_of(from_error(404, core::not_found("gateway.model_not_found", "x", "model")));
  EXPECT_EQ(m.at("code"), "model_not_found");
  EXPECT_EQ(m.at("param"), "model");
  EXPECT_EQ(m.at("type"), "invalid_request_error");
}

TEST(OpenAiError, NormalisesEachEngineShape) {
  // vLLM / SGLang: a flat object with a numeric code.
  auto v = normalise_engine_error(
      400,
      R"({"object":"error","message":"max_tokens is too large","type":"BadRequestError","param":null,"code":400})");
  EXPECT_EQ(v.status, 400);
  EXPECT_EQ(v.message, "max_tokens is too large");
  EXPECT_EQ(v.type, "BadRequestError");
  EXPECT_EQ(v.code, "");
  // llama.cpp / OpenAI: nested.
  auto l = normalise_engine_error(
      400,
      R"({"error":{"code":400,"message":"the request exceeds the context size","type":"exceed_context_size_error"}})");
  EXPECT_EQ(l.message, "the request exceeds the context size");
  EXPECT_EQ(l.type, "exceed_context_size_error");
  // FastAPI validation.
  auto f = normalise_engine_error(
      422, R"({"detail":[{"loc":["body","messages"],"msg":"field required"}]})");
  EXPECT_NE(f.message.find("field required"), std::string::npos);
  EXPECT_EQ(f.type, "invalid_request_error");
  // Plain text and nothing at all.
  EXPECT_EQ(normalise_engine_error(500, "CUDA out of memory\n").message, "CUDA out of memory");
  EXPECT_EQ(normalise_engine_error(502, "").message, "Bad Gateway");
  // Whatever the input, the output is valid OpenAI JSON.
  for (std::string_view junk : {"{", "[1,2]", "null", "\xff\xfe", R"({"error":7})"}) {
    const auto o = error_of(normalise_engine_error(500, junk));
    EXPECT_TRUE(o.at("message").is_string()) << junk;
  }
}

TEST(OpenAiError, SseEventIsOneDataLine) {
  OpenAiError e{502, "engine died", "server_error", "upstream_error", ""};
  const auto ev = e.sse_event();
  EXPECT_TRUE(ev.starts_with("data: {\"error\":"));
  EXPECT_TRUE(ev.ends_with("\n\n"));
  EXPECT_EQ(ev.find('\n'), ev.size() - 2);
}

TEST(Request, EndpointsByPath) {
  EXPECT_EQ(endpoint_of("/v1/chat/completions"), Endpoint::chat_completions);
  EXPECT_EQ(endpoint_of("/v1/completions"), Endpoint::completions);
  EXPECT_EQ(endpoint_of("/v1/embeddings"), Endpoint::embeddings);
  EXPECT_EQ(endpoint_of("/v1/rerank"), Endpoint::other);
}

TEST(Request, PlainRequestPassesThroughUntouched) {
  const std::string body = R"({"model":"m1","messages":[{"role":"user","content":"hi"}]})";
  auto r = inspect_request(Endpoint::chat_completions, body);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->model, "m1");
  EXPECT_FALSE(r->stream);
  EXPECT_FALSE(r->rewritten);
  EXPECT_EQ(r->upstream_body, "");  // the client's bytes go upstream as they are
}

TEST(Request, StreamsAskTheEngineForUsage) {
  auto r = inspect_request(Endpoint::chat_completions, R"({"model":"m","stream":true})");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->stream);
  EXPECT_FALSE(r->client_wants_usage);
  ASSERT_TRUE(r->rewritten);
  const auto v = json::parse(r->upstream_body).as_object();
  EXPECT_EQ(v.at("stream_options").at("include_usage"), true);
  EXPECT_EQ(v.at("model"), "m");
  // Without options of its own, the client's bytes go up as sent, with the option put first.
  EXPECT_EQ(r->upstream_body,
            R"({"stream_options":{"include_usage":true},"model":"m","stream":true})");
  auto spaced = inspect_request(Endpoint::chat_completions,
                                " \n{ \"model\" : \"m\",\n \"stream\" : true, \"n\": 1.50 }\r\n");
  ASSERT_TRUE(spaced);
  EXPECT_EQ(spaced->upstream_body,
            " \n{\"stream_options\":{\"include_usage\":true}, \"model\" : \"m\",\n \"stream\" : "
            "true, \"n\": 1.50 }\r\n");

  // The client's other stream options survive.
  auto k = inspect_request(
      Endpoint::completions,
      R"({"model":"m","stream":true,"stream_options":{"continuous_usage_stats":false}})");
  ASSERT_TRUE(k);
  const auto kv = json::parse(k->upstream_body).as_object();
  EXPECT_EQ(kv.at("stream_options").at("include_usage"), true);
  EXPECT_EQ(kv.at("stream_options").at("continuous_usage_stats"), false);

  // A client that asked for usage itself gets its body as sent.
  auto own =
      inspect_request(Endpoint::chat_completions,
                      R"({"model":"m","stream":true,"stream_options":{"include_usage":true}})");
  ASSERT_TRUE(own);
  EXPECT_TRUE(own->client_wants_usage);
  EXPECT_FALSE(own->rewritten);

  // Embeddings never stream usage chunks.
  auto emb = inspect_request(Endpoint::embeddings, R"({"model":"m","input":"x","stream":true})");
  ASSERT_TRUE(emb);
  EXPECT_FALSE(emb->rewritten);
}

// The body is read in one pass without building a document: what it finds must be what a parsed
// document says, wherever the names appear.
TEST(Request, ReadsOnlyTheTopLevelMembersAsAParseWould) {
  // The last of duplicate names counts; names and values may be written with escapes.
  auto r = inspect_request(
      Endpoint::chat_completions,
      R"({"model":"old","stream":"x","stream":false,"\u006dodel":"n\u00e9w","user":"a\"b"})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->model, "n\xc3\xa9w");
  EXPECT_EQ(r->user, "a\"b");
  EXPECT_FALSE(r->stream);
  // Members of nested objects and arrays are not the request's.
  auto nested = inspect_request(
      Endpoint::chat_completions,
      R"({"messages":[{"model":"inner","stream":1}],"x":{"model":{"a":1}},"model":"m"})");
  ASSERT_TRUE(nested) << nested.error().message;
  EXPECT_EQ(nested->model, "m");
  EXPECT_FALSE(nested->stream);
  // include_usage counts only directly inside the last "stream_options".
  auto deep = inspect_request(
      Endpoint::chat_completions,
      R"({"model":"m","stream":true,"stream_options":{"x":{"include_usage":true}}})");
  ASSERT_TRUE(deep);
  EXPECT_FALSE(deep->client_wants_usage);
  EXPECT_TRUE(deep->rewritten);
  auto replaced =
      inspect_request(Endpoint::chat_completions, R"({"model":"m","stream":true,"stream_options":)"
                                                  R"({"include_usage":true},"stream_options":{}})");
  ASSERT_TRUE(replaced);
  EXPECT_FALSE(replaced->client_wants_usage);
  auto null_options = inspect_request(Endpoint::chat_completions,
                                      R"({"model":"m","stream":true,"stream_options":null})");
  ASSERT_TRUE(null_options);
  ASSERT_TRUE(null_options->rewritten);
  EXPECT_EQ(json::parse(null_options->upstream_body).at("stream_options").at("include_usage"),
            true);
  // A later wrong value is what counts.
  auto late = inspect_request(Endpoint::chat_completions, R"({"model":"m","model":7})");
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, "gateway.missing_model");
  auto trailing = inspect_request(Endpoint::chat_completions, "{\"model\":\"m\"} {}");
  ASSERT_FALSE(trailing);
  EXPECT_EQ(trailing.error().code, "gateway.bad_json");
  EXPECT_TRUE(inspect_request(Endpoint::chat_completions, " {\"model\":\"m\"}\r\n\t "));
}

// Usual bodies are read by the gateway's own strict scan; whatever it is unsure of goes to
// Boost.JSON's validating parser. Either way the outcome is the parser's: the scan never accepts
// an invalid body, and reads a valid one as the parser does.
TEST(Request, TheFastScanReadsUsualBodiesAndLeavesTheRestToTheParser) {
  const std::string chat =
      R"({"model":"deepseek-r1","messages":[{"role":"system","content":"Be brief.\nNo lists."},)"
      R"({"role":"user","content":"用中文回答：什么是 KV cache？ \u00e9 \"quoted\" \\ \/"}],)"
      R"("temperature":0.7,"top_p":1,"max_tokens":512,"presence_penalty":-0.5,"seed":1e3,)"
      R"("stop":["</s>"],"tools":[],"logit_bias":{},"stream":true,)"
      "\"stream_options\":{\"include_usage\":true},\"user\":\"alice\", \"n\":null,\"x\":false}\n";
  EXPECT_TRUE(detail::read_by_fast_scan(chat));
  auto r = inspect_request(Endpoint::chat_completions, chat);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->model, "deepseek-r1");
  EXPECT_EQ(r->user, "alice");
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->client_wants_usage);
  EXPECT_FALSE(r->rewritten);

  struct Case {
    std::string body;
    bool fast;               ///< read by the scan alone
    std::string_view code;   ///< the error; "" for a valid request
    std::string_view model;  ///< when valid
  };
  const std::string deep31 =
      "{\"model\":\"m\",\"x\":" + std::string(30, '[') + std::string(30, ']') + "}";
  const std::string deep33 =
      "{\"model\":\"m\",\"x\":" + std::string(32, '[') + std::string(32, ']') + "}";
  const std::vector<Case> cases{
      // Valid, and left to the parser: escapes where the value is read, surrogate escapes, deep
      // nesting, numbers the scan does not vouch for.
      {R"({"model":"m\u0031"})", false, "", "m1"},
      {R"({"\u006dodel":"m"})", false, "", "m"},
      {R"({"model":"m","x":"\ud83d\ude00"})", false, "", "m"},
      {deep31, false, "", "m"},
      {R"({"model":"m","x":1e9999})", false, "", "m"},
      {R"({"model":"m","x":1e999})", true, "", "m"},
      {R"({"model":"m","x":12345678901234567890123456789012345678901234567890})", false, "", "m"},
      // Valid, and read by the scan.
      {"{\"model\":\"m\",\"x\":\"\x7f \xc2\x80 \xe0\xa0\x80 \xed\x9f\xbf \xf0\x90\x80\x80 "
       "\xf4\x8f\xbf\xbf\"}",
       true, "", "m"},
      {R"({"model":"m","x":[-0.0e-00,0,-1,2.5E+10,[],{},[{}],"",true,false,null]})", true, "", "m"},
      {" \t\r\n{ \"model\" : \"m\" , \"stream\" : false }\t", true, "", "m"},
      {R"({"model":"first","model":"m"})", true, "", "m"},
      {R"({"model":{"model":"inner"},"model":"m"})", true, "", "m"},
      {R"({"model":"m","stream_options":{"include_usage":1}})", true, "", "m"},
      // Valid JSON, refused by the gateway, also read by the scan.
      {R"(["model"])", true, "gateway.bad_json", ""},
      {R"({"model":"m","stream":1})", true, "gateway.bad_field", ""},
      {R"({"model":[]})", true, "gateway.missing_model", ""},
      {R"({"model":"m","stream_options":"x"})", true, "gateway.bad_field", ""},
      // Invalid: never accepted by the scan; the parser says why.
      {R"({"model":"m","x":"\ud800"})", false, "gateway.bad_json", ""},
      {"{\"model\":\"m\",\"x\":\"\xed\xa0\x80\"}", false, "gateway.bad_json", ""},
      {"{\"model\":\"m\",\"x\":\"\xc0\xaf\"}", false, "gateway.bad_json", ""},
      {"{\"model\":\"m\",\"x\":\"\xe0\x80\x80\"}", false, "gateway.bad_json", ""},
      {"{\"model\":\"m\",\"x\":\"\xf4\x90\x80\x80\"}", false, "gateway.bad_json", ""},
      {"{\"model\":\"m\",\"x\":\"\xf0\x9f\x98\"}", false, "gateway.bad_json", ""},
      {"{\"model\":\"m\",\"x\":\"\x80\"}", false, "gateway.bad_json", ""},
      {"{\"model\":\"m\",\"x\":\"a\tb\"}", false, "gateway.bad_json", ""},
      {R"({"model":"m","x":"\x"})", false, "gateway.bad_json", ""},
      {R"({"model":"m","x":"\u12g4"})", false, "gateway.bad_json", ""},
      {deep33, false, "gateway.bad_json", ""},
      {R"({"model":"m","x":01})", false, "gateway.bad_json", ""},
      {R"({"model":"m","x":1.})", false, "gateway.bad_json", ""},
      {R"({"model":"m","x":.5})", false, "gateway.bad_json", ""},
      {R"({"model":"m","x":-})", false, "gateway.bad_json", ""},
      {R"({"model":"m","x":1e})", false, "gateway.bad_json", ""},
      {R"({"model":"m","x":+1})", false, "gateway.bad_json", ""},
      {R"({"model":"m","x":tru})", false, "gateway.bad_json", ""},
      {R"({"model":"m","x":nulll})", false, "gateway.bad_json", ""},
      {R"({"model":"m",})", false, "gateway.bad_json", ""},
      {R"({"model":"m","x":[1,]})", false, "gateway.bad_json", ""},
      {R"({"model":"m","x":{"a"}})", false, "gateway.bad_json", ""},
      {R"({"model":"m" "x":1})", false, "gateway.bad_json", ""},
      {R"({"model":"m"}})", false, "gateway.bad_json", ""},
      {R"({"model":"m"/**/})", false, "gateway.bad_json", ""},
      {R"({"model":"m)", false, "gateway.bad_json", ""},
      {std::string("{\"model\":\"m\"}\0", 14), false, "gateway.bad_json", ""},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(detail::read_by_fast_scan(c.body), c.fast) << c.body;
    auto got = inspect_request(Endpoint::chat_completions, c.body);
    if (c.code.empty()) {
      ASSERT_TRUE(got) << c.body << ": " << got.error().message;
      EXPECT_EQ(got->model, c.model) << c.body;
    } else {
      ASSERT_FALSE(got) << c.body;
      EXPECT_EQ(got.error().code, c.code) << c.body;
    }
  }
}

TEST(Request, BadBodiesAreRefusedPrecisely) {
  struct Case {
    std::string_view body;
    std::string_view code;
    std::string_view field;
  };
  for (const auto& c :
       {Case{"", "gateway.bad_json", ""}, Case{"  \n", "gateway.bad_json", ""},
        Case{"{\"model\":", "gateway.bad_json", ""}, Case{"[1]", "gateway.bad_json", ""},
        Case{"{\"model\":\"\xff\"}", "gateway.bad_json", ""},
        Case{"{}", "gateway.missing_model", "model"},
        Case{"{\"model\":7}", "gateway.missing_model", "model"},
        Case{"{\"model\":\"\"}", "gateway.missing_model", "model"},
        Case{"{\"model\":\"m\",\"stream\":\"yes\"}", "gateway.bad_field", "stream"},
        Case{"{\"model\":\"m\",\"stream_options\":1}", "gateway.bad_field", "stream_options"}}) {
    auto r = inspect_request(Endpoint::chat_completions, c.body);
    ASSERT_FALSE(r) << c.body;
    EXPECT_EQ(r.error().code, c.code) << c.body;
    EXPECT_EQ(r.error().field, c.field) << c.body;
    EXPECT_EQ(r.error().category, core::Errc::invalid_argument);
  }
  auto r = inspect_request(Endpoint::chat_completions, "{\n  \"model\": nope}");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("line 2"), std::string::npos) << r.error().message;
}

TEST(Usage, FromCompleteResponses) {
  auto u = usage_of_response(
      R"({"id":"x","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42}})");
  EXPECT_TRUE(u.reported);
  EXPECT_EQ(u.prompt_tokens, 12);
  EXPECT_EQ(u.completion_tokens, 30);
  EXPECT_EQ(u.total_tokens, 42);
  EXPECT_FALSE(usage_of_response(R"({"data":[]})").reported);
  EXPECT_FALSE(usage_of_response("not json \"usage\"").reported);
  auto e = usage_of_response(R"({"usage":{"prompt_tokens":5}})");
  EXPECT_EQ(e.total_tokens, 5);
}

// usage_of_response scans for the top-level member instead of parsing the whole body: what it
// reads must be what a parse of the document says, wherever else "usage" appears.
TEST(Usage, OnlyTheTopLevelMemberCounts) {
  const auto tokens = [](std::string_view body) {
    const auto u = usage_of_response(body);
    return u.reported ? u.total_tokens : -1;
  };
  // Elsewhere in the document: nested objects, arrays, string values, escaped quotes.
  EXPECT_EQ(tokens(R"({"choices":[{"usage":{"total_tokens":7}}],"x":1})"), -1);
  EXPECT_EQ(tokens(R"({"note":""usage":{"total_tokens":7}","y":[{"usage":{}}]})"), -1);
  EXPECT_EQ(tokens(R"({"a":"}\\","usage":{"total_tokens":3},"b":["]",{"c":"{"}]})"), 3);
  EXPECT_EQ(tokens(R"({"choices":[{"usage":{"total_tokens":7}}],"usage":{"total_tokens":2}})"), 2);
  EXPECT_EQ(tokens(" {\n \"usage\" :\t{ \"prompt_tokens\": 4 } \r\n} \n"), 4);
  // Not an object, or null, or a name written with an escape (which only a parse can read).
  EXPECT_EQ(tokens(R"({"usage":null})"), -1);
  EXPECT_EQ(tokens(R"({"usage":[1,2]})"), -1);
  EXPECT_EQ(tokens(R"({"\u0075sage":{"total_tokens":9},"x":"usage"})"), 9);
  EXPECT_EQ(tokens(R"(["usage",{"usage":{"total_tokens":1}}])"), -1);
  // Broken documents report nothing rather than a guess.
  EXPECT_EQ(tokens(R"({"usage":{"total_tokens":1})"), -1);
  EXPECT_EQ(tokens(R"({"usage":{"total_tokens":1}} trailing)"), -1);
  EXPECT_EQ(tokens(R"({"usage":{"total_tokens":1},})"), -1);
  EXPECT_EQ(tokens(R"({"usage" {"total_tokens":1}})"), -1);
  EXPECT_EQ(tokens(R"({"usage":{"total_tokens":1}, "x": "unterminated})"), -1);
  // Counts that are not plain integers take the parser's reading; one beyond 64 bits is 0.
  EXPECT_EQ(tokens(R"({"usage":{"prompt_tokens":2.9,"completion_tokens":1e1}})"), 12);
  EXPECT_EQ(tokens(R"({"usage":{"prompt_tokens":"3","total_tokens":null,"completion_tokens":4}})"),
            4);
  EXPECT_EQ(tokens(R"({"usage":{"prompt_tokens":1,"total_tokens":88888888888888888888888888}})"),
            1);
  // Escapes and brackets inside strings at every offset of a 16-byte block (the scan reads
  // sixteen bytes at a time).
  for (std::size_t pad = 0; pad < 40; ++pad) {
    const std::string p(pad, 'x');
    const std::string body = R"({"a":")" + p + R"(\"}]{\\","b":[{"c":")" + p + R"(\"]}"},")" + p +
                             R"("],"usage":{"total_tokens":5}})";
    EXPECT_EQ(tokens(body), 5) << body;
    EXPECT_EQ(tokens(R"({"a":")" + p + R"(\","usage":{"total_tokens":5}})"), -1) << pad;
  }
  // A large body (an embeddings answer) with usage at the end.
  std::string big = R"({"data":[)";
  for (int i = 0; i < 2000; ++i) big += std::string(i == 0 ? "" : ",") + "0.125";
  big += R"(],"usage":{"prompt_tokens":8,"total_tokens":8}})";
  EXPECT_EQ(tokens(big), 8);
}

// Nested values are skipped 64 bytes at a time: strings with quotes, backslashes and brackets in
// them may straddle any block boundary, and an escape may sit on the last byte of a block.
TEST(Usage, NestedValuesAreSkippedWhereverTheBlocksBreak) {
  std::mt19937 rng(20261129);
  const std::string alphabet = "x\\\"{}[],: ";
  for (int round = 0; round < 3000; ++round) {
    json::array choices;
    const int items = static_cast<int>(rng() % 4);
    for (int k = 0; k < items; ++k) {
      std::string text;
      const auto len = rng() % 90;
      for (std::size_t c = 0; c < len; ++c) text += alphabet[rng() % alphabet.size()];
      json::object item{{"text", text}};
      if (rng() % 2 == 0)
        item["nested"] = json::array{json::object{{"k", text + "\\"}}, 1, nullptr};
      choices.push_back(std::move(item));
    }
    const auto total = static_cast<std::int64_t>(rng() % 100000);
    json::object doc{{"id", std::string(rng() % 70, 'i')}, {"choices", choices}};
    if (rng() % 4 != 0) doc["usage"] = json::object{{"total_tokens", total}};
    doc["after"] = json::array{std::string(rng() % 40, '\\')};
    const std::string body = json::serialize(doc);
    const auto u = usage_of_response(body);
    ASSERT_EQ(u.reported, doc.contains("usage")) << body;
    if (u.reported) {
      EXPECT_EQ(u.total_tokens, total) << body;
    }
    // Cut short anywhere, the document is broken: nothing is reported.
    const auto cut = rng() % body.size();
    EXPECT_FALSE(usage_of_response(std::string_view(body).substr(0, cut)).reported) << cut << body;
  }
}

// Engines that stream usage put "usage": null in every chunk; the meter reads the top level only.
TEST(Usage, StreamMeterReadsEachChunksTopLevel) {
  StreamMeter m(false);
  EXPECT_EQ(m.on_data(R"({"choices":[{"delta":{"content":"a"}}],"usage":null})"),
            StreamMeter::Verdict::forward);
  EXPECT_EQ(m.on_data(R"({"choices":[{"usage":{"total_tokens":50}}],"usage":null})"),
            StreamMeter::Verdict::forward);
  EXPECT_FALSE(m.usage().reported);
  EXPECT_FALSE(m.saw_error());
  EXPECT_EQ(m.content_events(), 2);
  // A usage chunk with content in it is forwarded (and counted); its usage is read.
  EXPECT_EQ(m.on_data(R"({"choices":[{"delta":{}}],"usage":{"total_tokens":3}})"),
            StreamMeter::Verdict::forward);
  EXPECT_EQ(m.usage().total_tokens, 3);
  // The usage-only chunk, with whitespace and an empty array written loosely.
  EXPECT_EQ(m.on_data("{ \"choices\" : [ ] , \"usage\" : {\"prompt_tokens\":2,"
                      "\"completion_tokens\":5.0} }"),
            StreamMeter::Verdict::drop);
  EXPECT_EQ(m.usage().total_tokens, 7);
  EXPECT_EQ(m.content_events(), 3);
  // Error events, however they are spaced; "error" inside content is not one.
  StreamMeter e(true);
  EXPECT_EQ(e.on_data(R"({"choices":[{"delta":{"content":"\"object\":\"error\""}}]})"),
            StreamMeter::Verdict::forward);
  EXPECT_FALSE(e.saw_error());
  EXPECT_EQ(e.on_data(R"({"object" : "error", "message":"too long"})"),
            StreamMeter::Verdict::forward);
  EXPECT_TRUE(e.saw_error());
  StreamMeter e2(true);
  e2.on_data(R"({"error":{"message":"x"}})");
  EXPECT_TRUE(e2.saw_error());
  StreamMeter e3(true);
  e3.on_data(R"({"object":"\u0065rror"})");
  EXPECT_TRUE(e3.saw_error());
  // Not JSON: forwarded as content.
  StreamMeter bad(false);
  EXPECT_EQ(bad.on_data(R"({"usage":{"total_tokens":1},"choices":[])"),
            StreamMeter::Verdict::forward);
  EXPECT_EQ(bad.content_events(), 1);
  EXPECT_FALSE(bad.usage().reported);
}

TEST(Usage, StreamMeterDropsOnlyTheUsageChunkItAskedFor) {
  const std::string usage_chunk =
      R"({"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})";
  StreamMeter strip(false);
  EXPECT_EQ(strip.on_data(R"({"choices":[{"delta":{"content":"a"}}]})"),
            StreamMeter::Verdict::forward);
  EXPECT_EQ(strip.on_data(R"({"choices":[{"delta":{"content":"b"}}],"usage":null})"),
            StreamMeter::Verdict::forward);
  EXPECT_EQ(strip.on_data(usage_chunk), StreamMeter::Verdict::drop);
  EXPECT_EQ(strip.on_data("[DONE]"), StreamMeter::Verdict::forward);
  EXPECT_TRUE(strip.done());
  EXPECT_EQ(strip.usage().total_tokens, 5);
  EXPECT_EQ(strip.content_events(), 2);

  StreamMeter keep(true);
  EXPECT_EQ(keep.on_data(usage_chunk), StreamMeter::Verdict::forward);
  EXPECT_EQ(keep.usage().completion_tokens, 2);

  StreamMeter err(false);
  EXPECT_EQ(err.on_data(R"({"error":{"message":"boom"}})"), StreamMeter::Verdict::forward);
  EXPECT_TRUE(err.saw_error());
}

// Content chunks skip the scan (no "error", no \u, "usage" only as "usage":null); anything that
// could be an error or a usage object must still be read, wherever it sits in a 16-byte block or
// in the tail after the last one.
TEST(Usage, ChunksThatCouldHoldUsageOrAnErrorAreReadAtEveryOffset) {
  for (std::size_t pad = 0; pad < 48; ++pad) {
    const std::string p(pad, 'x');
    SCOPED_TRACE(pad);
    StreamMeter m(false);
    // Content: counted, forwarded, nothing read.
    EXPECT_EQ(
        m.on_data(R"({"x":")" + p + R"(","choices":[{"delta":{"content":"u e r"}}],"usage":null})"),
        StreamMeter::Verdict::forward);
    EXPECT_EQ(m.on_data(R"({"choices":[{"delta":{"content":"use"}}],"x":")" + p + R"("})"),
              StreamMeter::Verdict::forward);
    EXPECT_EQ(m.content_events(), 2);
    EXPECT_FALSE(m.usage().reported);
    // A usage chunk: plainly written, spaced, or with its name escaped.
    EXPECT_EQ(m.on_data(R"({"x":")" + p + R"(","choices":[],"usage":{"total_tokens":5}})"),
              StreamMeter::Verdict::drop);
    EXPECT_EQ(m.usage().total_tokens, 5);
    EXPECT_EQ(m.on_data(R"({"choices":[],"x":")" + p + R"(","usage" :{"total_tokens":6}})"),
              StreamMeter::Verdict::drop);
    EXPECT_EQ(m.usage().total_tokens, 6);
    EXPECT_EQ(m.on_data(R"({"choices":[],"x":")" + p + R"(","\u0075sage":{"total_tokens":7}})"),
              StreamMeter::Verdict::drop);
    EXPECT_EQ(m.usage().total_tokens, 7);
    EXPECT_EQ(m.content_events(), 2);
    // Errors: a member at the end, and "object": "error".
    StreamMeter e(false);
    e.on_data(R"({"x":")" + p + R"(","error":{"message":"boom"}})");
    EXPECT_TRUE(e.saw_error());
    StreamMeter o(false);
    o.on_data(R"({"x":")" + p + R"(","object":"error"})");
    EXPECT_TRUE(o.saw_error());
  }
}

ServiceRoute route_of(LoadRegistry& reg, std::initializer_list<const char*> ids) {
  ServiceRoute r;
  r.model = "m";
  for (const char* id : ids) r.upstreams.push_back({id, "127.0.0.1", 1, false, reg.load_for(id)});
  return r;
}

TEST(Pick, LeastOutstandingThenLatency) {
  LoadRegistry reg;
  auto r = route_of(reg, {"a", "b", "c"});
  r.upstreams[0].load->mine().outstanding = 2;
  r.upstreams[1].load->mine().outstanding = 1;
  r.upstreams[2].load->mine().outstanding = 1;
  r.upstreams[1].load->mine().latency_ewma_us = 900;
  r.upstreams[2].load->mine().latency_ewma_us = 300;
  ASSERT_NE(pick_upstream(r, 0), nullptr);
  EXPECT_EQ(pick_upstream(r, 0)->instance_id, "c");
  EXPECT_EQ(pick_upstream(r, 0, "c")->instance_id, "b");
  r.upstreams[2].draining = true;
  EXPECT_EQ(pick_upstream(r, 0)->instance_id, "b");
  mark_failed(r.upstreams[1], 1000, 5s);
  EXPECT_EQ(pick_upstream(r, 1000)->instance_id, "a");
  EXPECT_EQ(pick_upstream(r, 6001)->instance_id, "b");  // the cooldown is over
  r.upstreams[0].draining = true;
  mark_failed(r.upstreams[1], 7000, 5s);
  EXPECT_EQ(pick_upstream(r, 7000), nullptr);
}

TEST(Pick, CountsFromManyThreadsAddUpWhicheverThreadEndsTheRequest) {
  // Each thread counts in a slot of its own (threads past the slots share one); the instance's
  // numbers are the slots' sum, and a request ended by another thread still balances.
  LoadRegistry reg;
  auto r = route_of(reg, {"a", "b"});
  std::vector<std::unique_ptr<InFlight>> held(InstanceLoad::kSlots + 4);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < held.size(); ++i) {
    threads.emplace_back(
        [&, i] { held[i] = std::make_unique<InFlight>(r.upstreams[0].load.get()); });
  }
  for (auto& t : threads) t.join();
  const auto n = static_cast<std::int64_t>(held.size());
  EXPECT_EQ(reg.in_flight("a"), n);
  EXPECT_EQ(r.upstreams[0].load->requests(), held.size());
  EXPECT_EQ(pick_upstream(r, 0)->instance_id, "b");
  held.clear();  // ended here, not on the threads that counted them
  EXPECT_EQ(reg.in_flight("a"), 0);
  EXPECT_EQ(r.upstreams[0].load->requests(), static_cast<std::uint64_t>(n));
  // Latency: each thread keeps its own average; the instance's is their mean.
  std::thread([&] { record_latency(r.upstreams[1], 1000us); }).join();
  std::thread([&] { record_latency(r.upstreams[1], 3000us); }).join();
  EXPECT_EQ(r.upstreams[1].load->latency_us(), 2000);
  InFlight busy(r.upstreams[1].load.get());
  EXPECT_EQ(pick_upstream(r, 0)->instance_id, "a");
}

TEST(Pick, InFlightCountsAndRegistryRetains) {
  LoadRegistry reg;
  auto load = reg.load_for("a");
  {
    InFlight one(load.get());
    InFlight two(load.get());
    EXPECT_EQ(reg.in_flight("a"), 2);
    reg.retain({});  // busy counters stay
    EXPECT_EQ(reg.in_flight("a"), 2);
  }
  EXPECT_EQ(reg.in_flight("a"), 0);
  reg.retain({});
  EXPECT_TRUE(reg.all().empty());
  EXPECT_EQ(reg.in_flight("nope"), 0);
}

TEST(Pick, LatencyAverageMoves) {
  LoadRegistry reg;
  auto r = route_of(reg, {"a"});
  record_latency(r.upstreams[0], 800us);
  EXPECT_EQ(r.upstreams[0].load->latency_us(), 800);
  record_latency(r.upstreams[0], 1600us);
  EXPECT_EQ(r.upstreams[0].load->latency_us(), 900);
}

TEST(RouteTableTest, FindsBySortedModelId) {
  std::vector<ServiceRoute> s(2);
  s[0].model = "zeta";
  s[1].model = "alpha";
  RouteTable t(std::move(s));
  EXPECT_EQ(t.services().front().model, "alpha");
  ASSERT_NE(t.find("zeta"), nullptr);
  EXPECT_EQ(t.find("nope"), nullptr);
  RouteTableHolder h;
  EXPECT_EQ(h.load()->services().size(), 0u);
  h.store(std::make_shared<const RouteTable>(std::move(t)));
  EXPECT_EQ(h.load()->services().size(), 2u);
  h.store(nullptr);
  EXPECT_NE(h.load(), nullptr);
}

TEST(RateLimit, RequestsAndTokensPerMinute) {
  testing::ManualClock clock;
  RateLimiter off(clock, {});
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(off.admit("k"));

  RateLimiter rl(clock, {2, 100});
  EXPECT_FALSE(rl.admit("k"));
  EXPECT_FALSE(rl.admit("k"));
  auto third = rl.admit("k");
  ASSERT_TRUE(third);
  EXPECT_FALSE(third->tokens);
  EXPECT_GE(third->retry_after.count(), 1);
  EXPECT_LE(third->retry_after.count(), 60);
  EXPECT_FALSE(rl.admit("other"));  // per key
  clock.advance(60s);
  EXPECT_FALSE(rl.admit("k"));
  rl.add_tokens("k", 150);
  auto tokens = rl.admit("k");
  ASSERT_TRUE(tokens);
  EXPECT_TRUE(tokens->tokens);
  clock.advance(60s);
  EXPECT_FALSE(rl.admit("k"));
}

TEST(MetricsTest, RendersPrometheusText) {
  Metrics m;
  m.record({"m\"1", 200, 0.2, 0.05, 10, 20});
  m.record({"m\"1", 503, 0.001, -1, 0, 0});
  LoadRegistry reg;
  const auto load = reg.load_for("inst_1");
  InFlight f(load.get());
  const auto text = m.render(reg);
  EXPECT_NE(text.find("openstation_gateway_requests_total{model=\"m\\\"1\",code=\"200\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("openstation_gateway_errors_total{model=\"m\\\"1\",code=\"503\"} 1"),
            std::string::npos);
  EXPECT_NE(
      text.find(
          "openstation_gateway_request_duration_seconds_bucket{model=\"m\\\"1\",le=\"0.25\"} 2"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("openstation_gateway_ttft_seconds_count{model=\"m\\\"1\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("openstation_gateway_tokens_total{model=\"m\\\"1\",kind=\"completion\"} 20"),
            std::string::npos);
  EXPECT_NE(text.find("openstation_gateway_in_flight{instance=\"inst_1\"} 1"), std::string::npos);
}

TEST(MetricsTest, RendersTheSumOfEveryShard) {
  Metrics m;
  auto& one = m.add_shard();
  auto& two = m.add_shard();
  m.record(one, {"a", 200, 0.2, 0.05, 10, 20});
  m.record(two, {"a", 200, 0.02, -1, 1, 2});
  m.record(two, {"b", 503, 0.001, -1, 0, 0});
  m.record({"a", 429, 0.001, -1, 0, 0});
  const auto text = m.render(LoadRegistry{});
  for (const auto* line :
       {"openstation_gateway_requests_total{model=\"a\",code=\"200\"} 2\n",
        "openstation_gateway_requests_total{model=\"a\",code=\"429\"} 1\n",
        "openstation_gateway_requests_total{model=\"b\",code=\"503\"} 1\n",
        "openstation_gateway_request_duration_seconds_count{model=\"a\"} 3\n",
        "openstation_gateway_request_duration_seconds_bucket{model=\"a\",le="
        "\"0.025\"} 2\n",
        "openstation_gateway_ttft_seconds_count{model=\"a\"} 1\n",
        "openstation_gateway_tokens_total{model=\"a\",kind=\"prompt\"} 11\n",
        "openstation_gateway_tokens_total{model=\"a\",kind=\"completion\"} 22\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << " in\n" << text;
  }
}

}  // namespace
}  // namespace openstation::gateway
