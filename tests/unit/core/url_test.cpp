#include "core/url.hpp"

#include <gtest/gtest.h>

namespace openstation::core {
namespace {

TEST(PercentEncode, KeepsUnreservedAndEncodesTheRest) {
  EXPECT_EQ(percent_encode("AZaz09-_.~"), "AZaz09-_.~");
  EXPECT_EQ(percent_encode("a b/c?d=e&f"), "a%20b%2Fc%3Fd%3De%26f");
  EXPECT_EQ(percent_encode("\xE4\xB8\xAD"), "%E4%B8%AD");  // UTF-8 bytes, upper-case hex
  EXPECT_EQ(percent_encode("model/sub dir/w.safetensors", true), "model/sub%20dir/w.safetensors");
  EXPECT_EQ(percent_encode(""), "");
}

}  // namespace
}  // namespace openstation::core
