#pragma once
/// The client CLI's saved login: which server, the session token, and how to trust the server's
/// certificate. Kept in $XDG_CONFIG_HOME/openstation/cli.json (else
/// ~/.config/openstation/cli.json), a JSON file of mode 0600 in a directory of mode 0700:
///
///     {"server": "https://10.0.0.5:32206", "username": "admin", "token": "...",
///      "expires_at": "2026-11-28T22:00:00.000Z", "fingerprint": "AB:CD:...", "ca_file": ""}
///
/// `openstation logout` clears the token but keeps the server and its fingerprint, so the next
/// login still refuses a changed certificate.

#include "core/error.hpp"

#include <filesystem>
#include <optional>
#include <string>

namespace openstation::cli {

/// One saved login.
struct SavedLogin {
  std::string server;       ///< base URL, no trailing slash: "https://host:32206"
  std::string username;     ///< who logged in
  std::string token;        ///< bearer session token; "" after logout
  std::string expires_at;   ///< RFC 3339, as the server said
  std::string fingerprint;  ///< the SHA-256 fingerprint of the server's certificate (https)
  std::string ca_file;      ///< a CA file trusted instead of the fingerprint (https)
};

/// The environment the path depends on, so tests need not touch the process's.
struct CredentialInputs {
  std::optional<std::string> xdg_config_home;  ///< XDG_CONFIG_HOME
  std::optional<std::string> home;             ///< HOME
};

/// $XDG_CONFIG_HOME/openstation/cli.json when XDG_CONFIG_HOME is an absolute path, else
/// $HOME/.config/openstation/cli.json. Error "cli.no_config_dir" (io_error) when neither is set.
core::Result<std::filesystem::path> credentials_path(const CredentialInputs& in);
/// credentials_path() with this process's environment.
core::Result<std::filesystem::path> credentials_path();

/// Reads the saved login; nullopt when the file does not exist. Errors:
/// "cli.credentials_unreadable" (io_error), "cli.credentials_invalid" (parse_error, naming the file
/// and what is wrong).
core::Result<std::optional<SavedLogin>> load_login(const std::filesystem::path& file);
/// Writes the saved login atomically with mode 0600 (its directory created with mode 0700).
/// Error "cli.credentials_unwritable" (io_error) naming the file and the reason.
core::Result<void> save_login(const std::filesystem::path& file, const SavedLogin& login);

/// Normalises a server URL as typed: adds "https://" when there is no scheme, drops a trailing
/// "/" and "/api/v1". Error "cli.bad_server_url" (invalid_argument, field "--server") for a URL
/// that is not http(s)://host[:port].
core::Result<std::string> normalize_server_url(std::string_view url);

}  // namespace openstation::cli
