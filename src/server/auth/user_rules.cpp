#include "server/auth/user_rules.hpp"

#include <algorithm>
#include <string>

namespace openstation::server::auth {
namespace {

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool is_control(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7F;
}

}  // namespace

core::Result<void> check_username(std::string_view username) {
  if (username.empty()) {
    return core::invalid("auth.bad_username", "The username is empty; give one", "username");
  }
  if (username.size() > kUsernameMaxLength) {
    return core::invalid(
        "auth.bad_username",
        "The username is " + std::to_string(username.size()) + " characters long; use at most 64",
        "username");
  }
  const bool ok_chars = std::all_of(username.begin(), username.end(), [](char c) {
    return is_alnum(c) || c == '.' || c == '_' || c == '@' || c == '-';
  });
  if (!ok_chars || !is_alnum(username.front())) {
    return core::invalid("auth.bad_username",
                         "The username '" + std::string(username) +
                             "' is not allowed; use letters, digits and . _ @ -, starting with a "
                             "letter or digit",
                         "username");
  }
  return {};
}

core::Result<void> check_display_name(std::string_view display_name) {
  if (display_name.size() > kDisplayNameMaxLength) {
    return core::invalid("auth.bad_display_name",
                         "The display name is " + std::to_string(display_name.size()) +
                             " bytes long; use at most 128",
                         "display_name");
  }
  if (std::any_of(display_name.begin(), display_name.end(), is_control)) {
    return core::invalid("auth.bad_display_name",
                         "The display name contains a control character (tab, newline, ...); "
                         "remove it",
                         "display_name");
  }
  return {};
}

core::Result<void> check_email(std::string_view email) {
  if (email.empty()) return {};
  const auto bad = [&](std::string why) {
    return core::invalid("auth.bad_email",
                         "The e-mail address '" + std::string(email.substr(0, 80)) + "' " + why,
                         "email");
  };
  if (email.size() > kEmailMaxLength) return bad("is longer than 254 characters");
  if (std::any_of(email.begin(), email.end(), [](char c) { return c == ' ' || is_control(c); })) {
    return bad("contains a space or control character");
  }
  const auto at = email.find('@');
  if (at == std::string_view::npos || email.find('@', at + 1) != std::string_view::npos) {
    return bad("needs exactly one '@', as in name@example.com");
  }
  const auto local = email.substr(0, at);
  const auto domain = email.substr(at + 1);
  if (local.empty() || domain.empty() || domain.find('.') == std::string_view::npos ||
      domain.front() == '.' || domain.back() == '.') {
    return bad("is not of the form name@example.com");
  }
  return {};
}

}  // namespace openstation::server::auth
