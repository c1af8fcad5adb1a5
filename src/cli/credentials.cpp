#include "cli/credentials.hpp"

#include "core/fs.hpp"
#include "core/json.hpp"
#include "http/client.hpp"

#include <boost/json.hpp>

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace openstation::cli {

namespace fs = std::filesystem;

core::Result<fs::path> credentials_path(const CredentialInputs& in) {
  if (in.xdg_config_home && !in.xdg_config_home->empty() && (*in.xdg_config_home)[0] == '/') {
    return fs::path(*in.xdg_config_home) / "openstation" / "cli.json";
  }
  if (in.home && !in.home->empty()) {
    return fs::path(*in.home) / ".config" / "openstation" / "cli.json";
  }
  return core::io_error("cli.no_config_dir",
                        "cannot tell where to keep the CLI login: neither XDG_CONFIG_HOME nor HOME "
                        "is set; set HOME");
}

core::Result<fs::path> credentials_path() {
  CredentialInputs in;
  if (const char* x = std::getenv("XDG_CONFIG_HOME")) in.xdg_config_home = x;
  if (const char* h = std::getenv("HOME")) in.home = h;
  return credentials_path(in);
}

core::Result<std::optional<SavedLogin>> load_login(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return std::optional<SavedLogin>();
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return core::io_error("cli.credentials_unreadable",
                          "cannot read the saved login " + file.string() +
                              ": check its permissions, or remove it and log in again");
  }
  std::ostringstream text;
  text << in.rdbuf();
  auto parsed = core::json::capture([&] {
    const auto v = core::json::parse(text.str(), file.string());
    const auto& o = core::json::as_object(v, "");
    SavedLogin s;
    s.server = core::json::opt_string(o, "server", "").value_or("");
    s.username = core::json::opt_string(o, "username", "").value_or("");
    s.token = core::json::opt_string(o, "token", "").value_or("");
    s.expires_at = core::json::opt_string(o, "expires_at", "").value_or("");
    s.fingerprint = core::json::opt_string(o, "fingerprint", "").value_or("");
    s.ca_file = core::json::opt_string(o, "ca_file", "").value_or("");
    return s;
  });
  if (!parsed) {
    return core::parse_error("cli.credentials_invalid",
                             "the saved login " + file.string() + " is damaged (" +
                                 parsed.error().message +
                                 "); remove it and run `openstation login` again");
  }
  return std::optional<SavedLogin>(std::move(*parsed));
}

core::Result<void> save_login(const fs::path& file, const SavedLogin& login) {
  std::error_code ec;
  const auto dir = file.parent_path();
  const bool existed = fs::exists(dir, ec);
  fs::create_directories(dir, ec);
  if (ec) {
    return core::io_error("cli.credentials_unwritable",
                          "cannot create " + dir.string() + ": " + ec.message());
  }
  if (!existed) ::chmod(dir.c_str(), 0700);
  const boost::json::object o{{"server", login.server},
                              {"username", login.username},
                              {"token", login.token},
                              {"expires_at", login.expires_at},
                              {"fingerprint", login.fingerprint},
                              {"ca_file", login.ca_file}};
  auto written = core::write_file_atomic(file, core::json::pretty(o), 0600);
  if (!written) {
    return core::io_error(
        "cli.credentials_unwritable",
        "cannot write the saved login " + file.string() + ": " + written.error().message);
  }
  return {};
}

core::Result<std::string> normalize_server_url(std::string_view url) {
  std::string s(url);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n')) s.pop_back();
  if (s.empty()) {
    return core::invalid("cli.bad_server_url",
                         "the server URL is empty; pass --server https://HOST:32206", "--server");
  }
  if (s.find("://") == std::string::npos) s = "https://" + s;
  while (!s.empty() && s.back() == '/') s.pop_back();
  constexpr std::string_view kApi = "/api/v1";
  if (s.size() > kApi.size() && s.compare(s.size() - kApi.size(), kApi.size(), kApi) == 0) {
    s.resize(s.size() - kApi.size());
  }
  while (!s.empty() && s.back() == '/') s.pop_back();
  auto u = http::parse_url(s);
  if (!u) {
    return core::invalid("cli.bad_server_url",
                         "--server " + std::string(url) + ": " + u.error().message, "--server");
  }
  if (u->target != "/") {
    return core::invalid("cli.bad_server_url",
                         "--server " + std::string(url) +
                             ": give only scheme, host and port, e.g. https://10.0.0.5:32206",
                         "--server");
  }
  return s;
}

}  // namespace openstation::cli
