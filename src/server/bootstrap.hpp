#pragma once
/// First start: the `admin` user. On a store without any admin, creates `admin` with a random
/// password (auth::generate_password) that must be changed at first login, writes the password
/// once to <data_dir>/initial-admin-password (mode 0600) and returns it so the caller prints it.
/// Idempotent: when any admin exists, it does nothing. Blocks (store, argon2): call it at startup
/// or on a worker thread.

#include "core/error.hpp"
#include "server/auth/password.hpp"
#include "store/store.hpp"

#include <filesystem>
#include <optional>
#include <string>

namespace openstation::server {

/// The file, in the data dir, that holds the first admin's password.
inline constexpr const char* kInitialAdminPasswordFile = "initial-admin-password";
/// The first admin's username.
inline constexpr const char* kInitialAdminName = "admin";

/// What a first start created.
struct InitialAdmin {
  store::User user;                     ///< the stored user (must_change_password = true)
  std::string password;                 ///< shown once; also in password_file
  std::filesystem::path password_file;  ///< <data_dir>/initial-admin-password
};

/// Creates the first admin when the store has no admin; nullopt when one exists. The user and the
/// password file are written together: if the file cannot be written the user is not created
/// (the next start tries again). Errors: "bootstrap.admin_name_taken" (conflict) when a non-admin
/// user is already called `admin`; "bootstrap.write_failed" (io_error) naming the file; the
/// store's errors.
core::Result<std::optional<InitialAdmin>> bootstrap_admin(
    store::Store& store, const std::filesystem::path& data_dir,
    const auth::PasswordHashLimits& limits = auth::PasswordHashLimits::interactive());

}  // namespace openstation::server
