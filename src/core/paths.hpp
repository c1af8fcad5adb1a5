#pragma once
/// Where OpenStation keeps its data (user catalog cards, the database, model files) when no flag
/// says otherwise.

#include <filesystem>
#include <optional>
#include <string>

namespace openstation::core {

/// The inputs of the data-dir decision, so it can be tested without touching the environment.
struct DataDirInputs {
  std::optional<std::string> override_dir;   ///< OPENSTATION_DATA_DIR
  bool is_root = false;                      ///< effective uid 0
  std::optional<std::string> xdg_data_home;  ///< XDG_DATA_HOME
  std::optional<std::string> home;           ///< HOME
};

/// OPENSTATION_DATA_DIR if set and non-empty; /var/lib/openstation for root; otherwise
/// $XDG_DATA_HOME/openstation, else ~/.local/share/openstation, else ./.openstation.
std::filesystem::path data_dir_for(const DataDirInputs& in);

/// data_dir_for() with the values of this process (environment variables and euid).
std::filesystem::path default_data_dir();

/// The user's catalog file: <data dir>/catalog.json.
std::filesystem::path user_catalog_path(const std::filesystem::path& data_dir);

}  // namespace openstation::core
