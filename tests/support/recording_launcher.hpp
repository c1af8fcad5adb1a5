#pragma once
// The real process launcher, remembering every process it started so a test's TearDown can kill
// the process groups and leave nothing running.

#include "agent/process_launcher.hpp"

#include <sys/types.h>

#include <vector>

namespace openstation::testing_support {

class RecordingLauncher final : public agent::ProcessLauncher {
 public:
  explicit RecordingLauncher(std::vector<pid_t>& pids) : pids_(pids) {}
  core::Result<agent::ProcessHandle> launch(const agent::LaunchRequest& req) override {
    auto h = real_.launch(req);
    if (h) pids_.push_back(h->pid);
    return h;
  }
  bool signal_group(const agent::ProcessHandle& p, int sig) override {
    return real_.signal_group(p, sig);
  }
  std::optional<agent::ExitStatus> poll(const agent::ProcessHandle& p) override {
    return real_.poll(p);
  }
  bool alive(const agent::ProcessHandle& p) override { return real_.alive(p); }

 private:
  agent::PosixProcessLauncher real_;
  std::vector<pid_t>& pids_;
};

}  // namespace openstation::testing_support
