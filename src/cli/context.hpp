#pragma once
/// What every subcommand shares: output mode, the streams it writes to, and how errors become
/// exit codes. Commands write reports to `out` (stdout) and diagnostics to `err` (stderr).

#include "core/error.hpp"

#include <boost/json/value.hpp>

#include <iosfwd>
#include <string>

namespace openstation::cli {

/// Exit codes of every command: 0 success, 1 runtime failure, 2 bad input.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitBadInput = 2;

struct Context {
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  bool json = false;  ///< set by a command's --json flag before it runs
  int exit_code = kExitOk;

  /// Prints `v` as indented JSON on stdout.
  void print_json(const boost::json::value& v) const;
  /// Reports an error: {"error": {...}} on stdout with --json, "error: message" on stderr
  /// otherwise; sets exit_code from the error's category.
  void fail(const core::Error& e);
};

}  // namespace openstation::cli
