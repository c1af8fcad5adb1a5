#include "engine/custom.hpp"

#include <gtest/gtest.h>

namespace openstation::engine {
namespace {

using Tokens = std::vector<std::string>;

TEST(CustomEngine, RendersTheTemplateWithoutAShell) {
  auto e = CustomEngine::parse(
      "/opt/eng/serve --model {model_path} --listen '{host}:{port}' --name={served_name} --x "
      "'{{y}}'");
  ASSERT_TRUE(e) << e.error().message;
  EXPECT_EQ(e->placeholders(), (Tokens{"model_path", "host", "port", "served_name"}));
  CustomPlaceholders v{"/models/a b; rm -rf /", 40001, "$(id)", "10.0.0.5"};
  const auto& spec = **resolve_engine(core::EngineKind::custom, "");
  auto extra = parse_args(spec, "--threads 8 --flag");
  ASSERT_TRUE(extra);
  auto argv = e->render(v, *extra);
  ASSERT_TRUE(argv) << argv.error().message;
  EXPECT_EQ(*argv,
            (Tokens{"/opt/eng/serve", "--model", "/models/a b; rm -rf /", "--listen",
                    "10.0.0.5:40001", "--name=$(id)", "--x", "{y}", "--threads", "8", "--flag"}));
}

TEST(CustomEngine, TemplateErrors) {
  EXPECT_EQ(CustomEngine::parse("").error().code, "custom.empty_template");
  EXPECT_EQ(CustomEngine::parse("serve --model {model_path}").error().code, "custom.missing_port");
  auto unknown = CustomEngine::parse("serve --port {prot}");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, "custom.unknown_placeholder");
  EXPECT_NE(unknown.error().message.find("Did you mean {port}?"), std::string::npos);
  EXPECT_EQ(CustomEngine::parse("serve --port {port").error().code, "custom.bad_template");
  EXPECT_EQ(CustomEngine::parse("serve --port port} {port}").error().code, "custom.bad_template");
  EXPECT_EQ(CustomEngine::parse("serve '--port {port}").error().code, "args.unbalanced_quote");
}

TEST(CustomEngine, RenderErrors) {
  auto e = CustomEngine::parse("serve --port {port} --name {served_name}");
  ASSERT_TRUE(e);
  auto missing = e->render({"/m", 40000, "", ""});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, "custom.missing_value");
  EXPECT_EQ(missing.error().field, "served_name");
  EXPECT_EQ(e->render({"/m", 0, "n", ""}).error().code, "custom.bad_port");
  EXPECT_EQ(*e->render({"", 1, "n", ""}), (Tokens{"serve", "--port", "1", "--name", "n"}));
}

}  // namespace
}  // namespace openstation::engine
