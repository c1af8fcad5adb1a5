#include "core/paths.hpp"

#include <unistd.h>
#include <cstdlib>

namespace openstation::core {

namespace {
std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}
}  // namespace

std::filesystem::path data_dir_for(const DataDirInputs& in) {
  if (in.override_dir && !in.override_dir->empty()) return *in.override_dir;
  if (in.is_root) return "/var/lib/openstation";
  if (in.xdg_data_home && !in.xdg_data_home->empty()) {
    return std::filesystem::path(*in.xdg_data_home) / "openstation";
  }
  if (in.home && !in.home->empty()) {
    return std::filesystem::path(*in.home) / ".local" / "share" / "openstation";
  }
  return ".openstation";
}

std::filesystem::path default_data_dir() {
  DataDirInputs in;
  in.override_dir = env("OPENSTATION_DATA_DIR");
  in.is_root = ::geteuid() == 0;
  in.xdg_data_home = env("XDG_DATA_HOME");
  in.home = env("HOME");
  return data_dir_for(in);
}

std::filesystem::path user_catalog_path(const std::filesystem::path& data_dir) {
  return data_dir / "catalog.json";
}

}  // namespace openstation::core
