#include "core/engine_kind.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "core/version.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

namespace oc = openstation::core;

TEST(Error, CategoriesMapToStatusAndExitCode) {
  EXPECT_EQ(oc::http_status(oc::Errc::invalid_argument), 400);
  EXPECT_EQ(oc::http_status(oc::Errc::not_found), 404);
  EXPECT_EQ(oc::http_status(oc::Errc::unavailable), 503);
  EXPECT_EQ(oc::exit_code(oc::Errc::invalid_argument), 2);
  EXPECT_EQ(oc::exit_code(oc::Errc::io_error), 1);
  EXPECT_EQ(oc::to_string(oc::Errc::resource_exhausted), "resource_exhausted");
}

TEST(Result, HoldsValueOrError) {
  oc::Result<int> ok = 3;
  oc::Result<int> bad = oc::invalid("x.bad", "bad input", "field");
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, 3);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "x.bad");
  EXPECT_EQ(bad.error().field, "field");
  EXPECT_THROW((void)bad.value(), oc::ErrorException);
}

TEST(Version, ComparesNumerically) {
  auto v = [](const char* s) { return oc::Version::parse(s).value(); };
  EXPECT_LT(v("0.8.4"), v("0.8.5"));
  EXPECT_LT(v("0.9.0"), v("0.10.0"));
  EXPECT_EQ(v("0.8"), v("0.8.0"));
  EXPECT_LT(v("0.5.6"), v("0.5.6.post2"));
  EXPECT_LT(v("0.6.0rc1"), v("0.6.0"));
  EXPECT_EQ(v("v0.21.0"), v("0.21.0"));
  EXPECT_LT(v("b6100"), v("b6200"));  // llama.cpp build numbers
  EXPECT_FALSE(oc::Version::parse("latest"));
  EXPECT_FALSE(oc::Version::parse("b"));
  EXPECT_FALSE(oc::Version::parse("beta"));
  EXPECT_FALSE(oc::Version::parse(""));
}

TEST(Strings, CommasAndSuggestions) {
  EXPECT_EQ(oc::with_commas(81536), "81,536");
  EXPECT_EQ(oc::with_commas(-1234567), "-1,234,567");
  EXPECT_EQ(oc::with_commas(999), "999");
  EXPECT_EQ(oc::closest("--max-model-lenn", {"--max-model-len", "--max-num-seqs"}),
            "--max-model-len");
  EXPECT_EQ(oc::closest("--zzz", {"--max-model-len"}), "");
  EXPECT_EQ(oc::gib(3ULL << 30), "3.00 GiB");
}

TEST(EngineKind, ParsesNamesAndRejectsUnknown) {
  EXPECT_EQ(oc::parse_engine_kind("vllm-cpu").value(), oc::EngineKind::vllm_cpu);
  EXPECT_EQ(oc::parse_engine_kind("sglang").value(), oc::EngineKind::sglang);
  auto bad = oc::parse_engine_kind("tgi");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "engine.unknown");
}

TEST(Json, ErrorsNameThePath) {
  auto r = oc::json::capture([] {
    auto v = oc::json::parse(R"({"a": {"b": "x"}})", "test");
    const auto& a = oc::json::as_object(oc::json::as_object(v, "").at("a"), "a");
    return oc::json::get_int(a, "b", "a");
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "a.b");
  EXPECT_NE(r.error().message.find("must be an integer"), std::string::npos);

  auto bad = oc::json::capture([] { return oc::json::parse("{\"a\": \n ]", "f.json"); });
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "json.invalid");
  EXPECT_NE(bad.error().message.find("line 2"), std::string::npos);

  auto unknown = oc::json::capture([] {
    auto v = oc::json::parse(R"({"nmae": 1})", "t");
    oc::json::reject_unknown(v.as_object(), {"name", "type"}, "node");
    return 0;
  });
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("did you mean \"name\""), std::string::npos);
}

TEST(Json, PrettyWritesPlainDoubles) {
  boost::json::value v = boost::json::object{{"a", 79.2}, {"b", 64.0}, {"c", 1}};
  const std::string s = oc::json::pretty(v);
  EXPECT_NE(s.find("\"a\": 79.2"), std::string::npos) << s;
  EXPECT_NE(s.find("\"b\": 64.0"), std::string::npos) << s;
  EXPECT_NE(s.find("\"c\": 1"), std::string::npos) << s;
}
