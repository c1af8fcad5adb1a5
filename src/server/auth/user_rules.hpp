#pragma once
/// The rules for user fields, shared by user creation, bulk import and the UI's validation.

#include "core/error.hpp"

#include <cstddef>
#include <string_view>

namespace openstation::server::auth {

/// Longest username, in bytes.
inline constexpr std::size_t kUsernameMaxLength = 64;
/// Longest display name, in bytes.
inline constexpr std::size_t kDisplayNameMaxLength = 128;
/// Longest e-mail address, in bytes (RFC 5321's path limit).
inline constexpr std::size_t kEmailMaxLength = 254;

/// A username is 1-64 characters of `A-Za-z0-9._@-` starting with a letter or digit. Usernames
/// are unique regardless of case (the store and the import compare them lower-cased). Error
/// "auth.bad_username" (invalid_argument, field "username").
core::Result<void> check_username(std::string_view username);

/// A display name is optional, at most 128 bytes, without control characters. Error
/// "auth.bad_display_name" (field "display_name").
core::Result<void> check_display_name(std::string_view display_name);

/// An e-mail address is optional; when given it is at most 254 bytes, `local@domain` with one
/// '@', a dot in the domain, and no spaces or control characters. Error "auth.bad_email" (field
/// "email").
core::Result<void> check_email(std::string_view email);

}  // namespace openstation::server::auth
