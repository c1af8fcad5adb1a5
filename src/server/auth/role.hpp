#pragma once
/// The two user roles.

#include "core/error.hpp"

#include <string_view>

namespace openstation::server::auth {

/// What a user may do: admins manage nodes, users and settings; users deploy and use models and
/// manage their own keys.
enum class Role {
  admin,
  user,
};

/// "admin" or "user".
std::string_view to_string(Role role) noexcept;

/// "admin" or "user" (exact, lower-case). Error "auth.bad_role" (invalid_argument, field "role")
/// naming the accepted values otherwise.
core::Result<Role> parse_role(std::string_view text);

}  // namespace openstation::server::auth
