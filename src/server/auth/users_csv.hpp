#pragma once
/// Bulk user import: parsing and validating a CSV file of users before anything is written.
///
/// The file is RFC 4180 CSV in UTF-8 (a leading byte-order mark is ignored): a header row, then
/// one user per row. Columns, in any order, named case-insensitively: `username` (required),
/// `display_name`, `email`, `role` (`admin` or `user`; empty means `user`). Fields may be quoted
/// with `"`, with `""` for a quote inside and line breaks allowed inside quotes. Spaces around
/// fields are trimmed. Blank lines are skipped.

#include "core/error.hpp"
#include "server/auth/role.hpp"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::server::auth {

/// Most users one file may import.
inline constexpr std::size_t kUsersCsvMaxRows = 10000;

/// One valid row of an import file.
struct UserImportRow {
  std::size_t line = 0;  ///< the 1-based line the row starts on, for messages after parsing
  std::string username;
  std::string display_name;
  std::string email;
  Role role = Role::user;
};

/// All rows of `text`, or an error when any row is wrong, so an import is all or nothing. The
/// error's code is the first problem's ("users_csv.bad_quote", "users_csv.missing_column",
/// "users_csv.unknown_column", "users_csv.duplicate_column", "users_csv.wrong_field_count",
/// "users_csv.bad_username", "users_csv.bad_display_name", "users_csv.bad_email",
/// "users_csv.bad_role", "users_csv.duplicate_username", "users_csv.empty",
/// "users_csv.too_many_rows"; all invalid_argument), its field is "line L, column C" of that
/// problem, and its message lists up to 20 problems, each with its line, column and column name.
/// Duplicate usernames are compared case-insensitively. Whether a username already exists in the
/// store is for the caller to check.
core::Result<std::vector<UserImportRow>> parse_users_csv(std::string_view text);

}  // namespace openstation::server::auth
