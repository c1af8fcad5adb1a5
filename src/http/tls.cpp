#include "http/tls.hpp"

namespace openstation::http {

namespace {
core::Error pending() {
  return core::Error(core::Errc::unsupported, "http.tls_unavailable",
                     "TLS helpers are not available in this build yet");
}
}  // namespace

core::Result<bool> ensure_self_signed_certificate(const std::filesystem::path&,
                                                  const std::filesystem::path&,
                                                  const std::vector<std::string>&) {
  return pending();
}
core::Result<std::string> certificate_fingerprint(const std::filesystem::path&) {
  return pending();
}
core::Result<std::string> certificate_fingerprint_pem(std::string_view) {
  return pending();
}
core::Result<std::string> normalize_fingerprint(std::string_view) {
  return pending();
}
bool fingerprints_equal(std::string_view, std::string_view) {
  return false;
}
core::Result<std::string> fetch_peer_fingerprint(const std::string&, std::uint16_t,
                                                 std::chrono::milliseconds) {
  return pending();
}

}  // namespace openstation::http
