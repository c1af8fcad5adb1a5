#include "server/api/openapi.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

namespace openstation::server {
namespace {

namespace json = boost::json;

TEST(OpenApiMerge, JoinsPathsComponentsAndTagsUnderOneHeader) {
  const std::vector<OpenApiFragment> fragments{
      {"a.json", R"({"tags": [{"name": "a"}],
                     "paths": {"/api/v1/x/{id}": {"get": {"summary": "x"}}},
                     "components": {"schemas": {"Error": {"type": "object"}}}})"},
      {"b.json", R"({"openapi": "3.0.0", "info": {"title": "ignored"},
                     "tags": [{"name": "a"}, {"name": "b"}],
                     "paths": {"/api/v1/x/{id}": {"delete": {"summary": "rm"}},
                               "/api/v1/y": {"post": {"summary": "y"}}},
                     "components": {"schemas": {"Error": {"type": "object"}, "Y": {}},
                                    "securitySchemes": {"bearer": {"type": "http"}}}})"},
  };
  auto doc = merge_openapi(fragments, "1.2.3");
  ASSERT_TRUE(doc) << doc.error().message;
  EXPECT_EQ(doc->at("openapi"), "3.0.3");
  EXPECT_EQ(doc->at("info").at("title"), "OpenStation management API");
  EXPECT_EQ(doc->at("info").at("version"), "1.2.3");
  const auto& x = doc->at("paths").at("/api/v1/x/{id}").as_object();
  EXPECT_TRUE(x.contains("get"));
  EXPECT_TRUE(x.contains("delete"));
  EXPECT_TRUE(doc->at("paths").as_object().contains("/api/v1/y"));
  EXPECT_EQ(doc->at("components").at("schemas").as_object().size(), 2u);
  EXPECT_TRUE(doc->at("components").at("securitySchemes").as_object().contains("bearer"));
  EXPECT_EQ(doc->at("tags").as_array().size(), 2u);
}

TEST(OpenApiMerge, RefusesAnOperationDocumentedTwice) {
  auto doc = merge_openapi({{"a.json", R"({"paths": {"/p": {"get": {}}}})"},
                            {"b.json", R"({"paths": {"/p": {"get": {}}}})"}},
                           "0");
  ASSERT_FALSE(doc);
  EXPECT_EQ(doc.error().code, "openapi.conflict");
  EXPECT_NE(doc.error().message.find("b.json"), std::string::npos);
  EXPECT_NE(doc.error().message.find("get /p"), std::string::npos);
}

TEST(OpenApiMerge, RefusesDifferingComponentsAndTags) {
  auto schemas = merge_openapi({{"a.json", R"({"components": {"schemas": {"S": {"type": "a"}}}})"},
                                {"b.json", R"({"components": {"schemas": {"S": {"type": "b"}}}})"}},
                               "0");
  ASSERT_FALSE(schemas);
  EXPECT_EQ(schemas.error().code, "openapi.conflict");
  EXPECT_NE(schemas.error().message.find("components.schemas.S"), std::string::npos);
  auto tags = merge_openapi({{"a.json", R"({"tags": [{"name": "t", "description": "1"}]})"},
                             {"b.json", R"({"tags": [{"name": "t", "description": "2"}]})"}},
                            "0");
  ASSERT_FALSE(tags);
  EXPECT_EQ(tags.error().code, "openapi.conflict");
}

TEST(OpenApiMerge, RefusesMalformedFragments) {
  for (const char* text : {"not json", "[1]", R"({"path": {}})", R"({"paths": {"x": {}}})",
                           R"({"paths": []})", R"({"tags": [{"description": "no name"}]})"}) {
    auto doc = merge_openapi({{"bad.json", text}}, "0");
    ASSERT_FALSE(doc) << text;
    EXPECT_EQ(doc.error().code, "openapi.bad_fragment") << text;
    EXPECT_NE(doc.error().message.find("docs/openapi/bad.json"), std::string::npos) << text;
  }
}

TEST(OpenApiMerge, EveryEmbeddedFragmentMerges) {
  const auto fragments = embedded_openapi_fragments();
  ASSERT_FALSE(fragments.empty());
  bool meta = false;
  for (const auto& f : fragments) meta = meta || f.name == "meta.json";
  EXPECT_TRUE(meta) << "docs/openapi/meta.json is not embedded";
  auto doc = merge_openapi(fragments, "0");
  ASSERT_TRUE(doc) << doc.error().message;
  EXPECT_TRUE(doc->at("paths").as_object().contains("/health"));
  EXPECT_TRUE(doc->at("paths").as_object().contains("/api/v1/openapi.json"));
}

TEST(OpenApiPaths, NormalizeBlanksParameterNames) {
  EXPECT_EQ(normalize_api_path("/api/v1/nodes/{id}"), "/api/v1/nodes/{}");
  EXPECT_EQ(normalize_api_path("/api/v1/users/{user_id}/keys/{key}"), "/api/v1/users/{}/keys/{}");
  EXPECT_EQ(normalize_api_path("/health"), "/health");
  EXPECT_EQ(normalize_api_path("/odd/{"), "/odd/{");
}

}  // namespace
}  // namespace openstation::server
