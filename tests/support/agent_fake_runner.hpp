#pragma once
/// A CommandRunner that answers from canned outputs, keyed by the argv's arguments after the
/// executable (so the executable's path does not matter), and records what it was asked to run.

#include "agent/command_runner.hpp"

#include <map>
#include <string>
#include <vector>

namespace openstation::testing {

class FakeCommandRunner final : public agent::CommandRunner {
 public:
  /// Arguments after argv[0] joined with ' ' → the output; missing keys give `fallback`.
  std::map<std::string, core::Result<agent::CommandOutput>> answers;
  core::Result<agent::CommandOutput> fallback =
      core::Error(core::Errc::unavailable, "command.timed_out", "fake: no answer configured");
  std::vector<std::vector<std::string>> calls;

  /// The key for nvidia-smi `args` as the probe passes them.
  void answer(const std::string& args, std::string out, int exit_code = 0, std::string err = {}) {
    answers.insert_or_assign(args, agent::CommandOutput{exit_code, std::move(out), std::move(err)});
  }

  core::Result<agent::CommandOutput> run(const std::vector<std::string>& argv,
                                         std::chrono::milliseconds /*timeout*/) override {
    calls.push_back(argv);
    std::string key;
    for (std::size_t i = 1; i < argv.size(); ++i) key += (i > 1 ? " " : "") + argv[i];
    auto it = answers.find(key);
    return it != answers.end() ? it->second : fallback;
  }
};

}  // namespace openstation::testing
