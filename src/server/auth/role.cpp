#include "server/auth/role.hpp"

#include <string>

namespace openstation::server::auth {

std::string_view to_string(Role role) noexcept {
  switch (role) {
    case Role::admin: return "admin";
    case Role::user: return "user";
  }
  return "user";
}

core::Result<Role> parse_role(std::string_view text) {
  if (text == "admin") return Role::admin;
  if (text == "user") return Role::user;
  return core::invalid("auth.bad_role",
                       "Unknown role '" + std::string(text) + "'; use admin or user", "role");
}

}  // namespace openstation::server::auth
