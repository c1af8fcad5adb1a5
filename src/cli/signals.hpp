#pragma once
/// Waiting for Ctrl-C or SIGTERM in the long-running commands (agent, server, start).

#include <pthread.h>
#include <signal.h>

namespace openstation::cli {

/// Blocks SIGINT and SIGTERM in this thread and every thread started after it, so only wait()
/// receives them; restores the mask when destroyed. Create it before starting any thread.
class SignalBlock {
 public:
  SignalBlock() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~SignalBlock() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  SignalBlock(const SignalBlock&) = delete;
  SignalBlock& operator=(const SignalBlock&) = delete;
  /// Waits for SIGINT or SIGTERM; returns which.
  int wait() const {
    int sig = 0;
    sigwait(&set_, &sig);
    return sig;
  }

 private:
  sigset_t set_{};
  sigset_t old_{};
};

}  // namespace openstation::cli
