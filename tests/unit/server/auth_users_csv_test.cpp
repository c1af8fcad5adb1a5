#include "server/auth/users_csv.hpp"

#include <gtest/gtest.h>

#include <string>

namespace openstation::server::auth {
namespace {

core::Error error_of(std::string_view text) {
  const auto r = parse_users_csv(text);
  EXPECT_FALSE(r) << text;
  return r ? core::Error{} : r.error();
}

TEST(UsersCsv, ParsesAPlainFile) {
  const auto r = parse_users_csv(
      "username,display_name,email,role\n"
      "alice,Alice Liu,alice@example.com,admin\n"
      "bob,Bob,bob@example.com,user\n");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].username, "alice");
  EXPECT_EQ((*r)[0].display_name, "Alice Liu");
  EXPECT_EQ((*r)[0].email, "alice@example.com");
  EXPECT_EQ((*r)[0].role, Role::admin);
  EXPECT_EQ((*r)[0].line, 2u);
  EXPECT_EQ((*r)[1].username, "bob");
  EXPECT_EQ((*r)[1].role, Role::user);
  EXPECT_EQ((*r)[1].line, 3u);
}

TEST(UsersCsv, HandlesQuotesCrlfBomBlankLinesAndColumnOrder) {
  const auto r = parse_users_csv(
      "\xEF\xBB\xBF"
      "Role, Email ,USERNAME,Display Name\r\n"
      "\r\n"
      "admin,,carol,\"Liu, Carol \"\"CC\"\"\"\r\n"
      " User , dave@example.com , dave , \"Dave\" \r\n"
      ",,erin,\xE5\xBC\xA0\xE4\xB8\x89");  // no final newline; empty role means user
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].username, "carol");
  EXPECT_EQ((*r)[0].display_name, "Liu, Carol \"CC\"");
  EXPECT_EQ((*r)[0].email, "");
  EXPECT_EQ((*r)[0].role, Role::admin);
  EXPECT_EQ((*r)[0].line, 3u);
  EXPECT_EQ((*r)[1].username, "dave");
  EXPECT_EQ((*r)[1].display_name, "Dave");
  EXPECT_EQ((*r)[1].email, "dave@example.com");
  EXPECT_EQ((*r)[1].role, Role::user);
  EXPECT_EQ((*r)[1].line, 4u);
  EXPECT_EQ((*r)[2].line, 5u);
  EXPECT_EQ((*r)[2].display_name, "\xE5\xBC\xA0\xE4\xB8\x89");
  EXPECT_EQ((*r)[2].role, Role::user);
}

TEST(UsersCsv, QuotedLineBreaksCountInLineNumbers) {
  const auto e = error_of(
      "username,display_name\n"
      "alice,\"Two\nLines\"\n"
      "bad name,x\n");
  EXPECT_EQ(e.code, "users_csv.bad_display_name");
  EXPECT_EQ(e.field, "line 2, column 2");
  EXPECT_NE(e.message.find("line 4, column 1 (username)"), std::string::npos) << e.message;
}

TEST(UsersCsv, OnlyUsernameIsRequired) {
  const auto r = parse_users_csv("username\nalice\nbob\n");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[1].role, Role::user);
}

TEST(UsersCsv, RefusesEmptyFilesAndHeaderOnly) {
  EXPECT_EQ(error_of("").code, "users_csv.empty");
  EXPECT_EQ(error_of("\n\n").code, "users_csv.empty");
  const auto e = error_of("username,role\n");
  EXPECT_EQ(e.code, "users_csv.empty");
  EXPECT_EQ(e.category, core::Errc::invalid_argument);
}

TEST(UsersCsv, HeaderProblemsNameTheColumn) {
  auto e = error_of("username,emial,role\nalice,a@b.c,user\n");
  EXPECT_EQ(e.code, "users_csv.unknown_column");
  EXPECT_EQ(e.field, "line 1, column 2");
  EXPECT_NE(e.message.find("did you mean 'email'"), std::string::npos) << e.message;

  e = error_of("display_name,email\nAlice,a@b.c\n");
  EXPECT_EQ(e.code, "users_csv.missing_column");
  EXPECT_NE(e.message.find("username"), std::string::npos);

  e = error_of("username,role,Role\nalice,user,user\n");
  EXPECT_EQ(e.code, "users_csv.duplicate_column");
  EXPECT_EQ(e.field, "line 1, column 3");
}

TEST(UsersCsv, QuotingErrorsNameLineAndColumn) {
  auto e = error_of("username,display_name\nalice,\"Alice\n");
  EXPECT_EQ(e.code, "users_csv.bad_quote");
  EXPECT_EQ(e.field, "line 2, column 2");
  EXPECT_NE(e.message.find("never closed"), std::string::npos);

  e = error_of("username,display_name\nalice,\"Alice\"x\n");
  EXPECT_EQ(e.code, "users_csv.bad_quote");
  EXPECT_EQ(e.field, "line 2, column 2");

  e = error_of("username,display_name\nbob,ok\nalice,Al\"ice\n");
  EXPECT_EQ(e.code, "users_csv.bad_quote");
  EXPECT_EQ(e.field, "line 3, column 2");
}

TEST(UsersCsv, RowProblemsNameLineColumnAndAllProblems) {
  const auto e = error_of(
      "username,display_name,email,role\n"
      "alice,Alice,alice@example.com,user\n"
      "bob,Bob,not-an-email,user\n"
      "carol,Carol,c@example.com,owner\n"
      "bad name,X,,user\n"
      "dave,Dave\n");
  EXPECT_EQ(e.code, "users_csv.bad_email");
  EXPECT_EQ(e.field, "line 3, column 3");
  const auto& m = e.message;
  EXPECT_NE(m.find("4 problems"), std::string::npos) << m;
  EXPECT_NE(m.find("line 3, column 3 (email)"), std::string::npos) << m;
  EXPECT_NE(m.find("line 4, column 4 (role): unknown role 'owner'"), std::string::npos) << m;
  EXPECT_NE(m.find("line 5, column 1 (username)"), std::string::npos) << m;
  EXPECT_NE(m.find("line 6: the row has 2 fields but the header has 4"), std::string::npos) << m;
  EXPECT_NE(m.find("Nothing was imported"), std::string::npos) << m;
}

TEST(UsersCsv, RoleMustBeAdminOrUser) {
  const auto e = error_of("username,role\nalice,superuser\n");
  EXPECT_EQ(e.code, "users_csv.bad_role");
  EXPECT_EQ(e.field, "line 2, column 2");
  const auto r = parse_users_csv("username,role\nalice,ADMIN\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->front().role, Role::admin);
}

TEST(UsersCsv, DuplicateUsernamesAreRefusedIgnoringCase) {
  const auto e = error_of("username,email\nalice,a@x.io\nbob,\nAlice,b@x.io\n");
  EXPECT_EQ(e.code, "users_csv.duplicate_username");
  EXPECT_EQ(e.field, "line 4, column 1");
  EXPECT_NE(e.message.find("already appears on line 2"), std::string::npos) << e.message;
}

TEST(UsersCsv, ManyProblemsAreCappedInTheMessage) {
  std::string text = "username,role\n";
  for (int i = 0; i < 30; ++i) text += "u" + std::to_string(i) + ",boss\n";
  const auto e = error_of(text);
  EXPECT_NE(e.message.find("30 problems"), std::string::npos);
  EXPECT_NE(e.message.find("and 10 more"), std::string::npos) << e.message;
}

TEST(UsersCsv, RefusesTooManyRows) {
  std::string text = "username\n";
  for (std::size_t i = 0; i <= kUsersCsvMaxRows; ++i) text += "u" + std::to_string(i) + "\n";
  EXPECT_EQ(error_of(text).code, "users_csv.too_many_rows");
}

}  // namespace
}  // namespace openstation::server::auth
