#pragma once
/// Is the engine ready? An HTTP GET on 127.0.0.1:<port><path> answered with 2xx says yes.
/// An interface so the supervisor's state machine can be tested with scripted answers.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace openstation::agent {

/// One probe's answer.
struct ProbeResult {
  enum class Status {
    ready,    ///< answered 2xx
    not_yet,  ///< nobody listens yet, or the request timed out
    error,    ///< it answered, but not 2xx (or not HTTP)
  };
  Status status = Status::not_yet;
  std::string detail;  ///< "connection refused", "HTTP 503", "timed out after 1000 ms"

  bool ready() const { return status == Status::ready; }
};

/// Probes an engine's readiness. Implementations may block for up to their timeout.
class ReadinessProbe {
 public:
  virtual ~ReadinessProbe() = default;
  /// GET `path` on 127.0.0.1:`port`.
  virtual ProbeResult probe(std::uint16_t port, std::string_view path) = 0;
};

/// The real probe: a blocking HTTP/1.1 GET over a plain POSIX socket with one overall timeout.
class HttpReadinessProbe final : public ReadinessProbe {
 public:
  explicit HttpReadinessProbe(std::chrono::milliseconds timeout = std::chrono::milliseconds(2000))
      : timeout_(timeout) {}
  ProbeResult probe(std::uint16_t port, std::string_view path) override;

 private:
  std::chrono::milliseconds timeout_;
};

}  // namespace openstation::agent
