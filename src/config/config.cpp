#include "config/config.hpp"

#include "core/strings.hpp"

namespace openstation::config {

std::map<std::string, EngineConfig> default_engines() {
  using core::EngineKind;
  auto engine = [](EngineKind kind, std::vector<std::string> command) {
    EngineConfig e;
    e.kind = kind;
    e.command = std::move(command);
    return e;
  };
  return {
      {"vllm", engine(EngineKind::vllm, {"vllm"})},
      {"vllm-cpu", engine(EngineKind::vllm_cpu, {"vllm"})},
      {"sglang", engine(EngineKind::sglang, {"python3", "-m", "sglang.launch_server"})},
      {"llama.cpp", engine(EngineKind::llama_cpp, {"llama-server"})},
  };
}

Config default_config(std::filesystem::path data_dir) {
  Config c;
  c.data_dir = std::move(data_dir);
  c.engines = default_engines();
  return c;
}

std::filesystem::path server_cert_file(const Config& c) {
  return c.server.cert_file.empty() ? c.data_dir / "tls" / "server.crt"
                                    : std::filesystem::path(c.server.cert_file);
}

std::filesystem::path server_key_file(const Config& c) {
  return c.server.key_file.empty() ? c.data_dir / "tls" / "server.key"
                                   : std::filesystem::path(c.server.key_file);
}

std::filesystem::path sqlite_database_path(const Config& c) {
  const std::string& db = c.server.database;
  if (db.empty()) return c.data_dir / "openstation.db";
  constexpr std::string_view kSqlite = "sqlite://";
  if (core::starts_with(db, kSqlite)) return db.substr(kSqlite.size());
  return {};
}

std::filesystem::path model_dir(const Config& c) {
  return c.server.model_dir.empty() ? c.data_dir / "models"
                                    : std::filesystem::path(c.server.model_dir);
}

}  // namespace openstation::config
