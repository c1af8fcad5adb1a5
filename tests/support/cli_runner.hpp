#pragma once
// Runs the openstation CLI in-process, capturing its output and exit code.

#include "cli/commands.hpp"

#include <sstream>
#include <string>
#include <vector>

namespace openstation::testing_support {

struct CliResult {
  int code = 0;
  std::string out;
  std::string err;

  bool out_has(const std::string& s) const { return out.find(s) != std::string::npos; }
  bool err_has(const std::string& s) const { return err.find(s) != std::string::npos; }
};

/// `args` without the program name.
inline CliResult run_cli(std::vector<std::string> args) {
  args.insert(args.begin(), "openstation");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  CliResult r;
  r.code = cli::run(static_cast<int>(argv.size()), argv.data(), out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

}  // namespace openstation::testing_support
