#pragma once
/// TLS settings for the http module's server and clients, and the certificate helpers behind the
/// management server's "HTTPS by default" (a self-signed certificate made on first start, trusted
/// by the CLI and agents through its fingerprint or a CA file).
///
/// Fingerprints are SHA-256 digests of a certificate's DER encoding, written everywhere in one
/// form: "sha256:" followed by 32 upper-case hex pairs joined by ':'
/// ("sha256:AB:CD:...:EF"). Input may omit the prefix and the colons and may use lower case
/// (normalize_fingerprint). OpenSSL stays inside the .cpp files.

#include "core/error.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::http {

/// A server's certificate and key (PEM files). The certificate file may hold a chain: the leaf
/// first, then intermediates. With these set the server speaks HTTPS only (TLS 1.2 or newer).
struct TlsServerOptions {
  std::string cert_file;
  std::string key_file;
};

/// How a client decides to trust an https server. Exactly one rule applies, in this order:
/// 1. `pinned_sha256` set: the server's leaf certificate must have exactly this fingerprint (any
///    form normalize_fingerprint accepts); no chain or host name check ("trust on first use").
/// 2. `insecure_skip_verify`: anything is accepted (only to read a fingerprint to show a person).
/// 3. `ca_file` set: the chain must end at a certificate of that PEM file, and the certificate
///    must name the host (DNS name or IP address SAN).
/// 4. otherwise the system's default CA store, and the host name check.
struct TlsClientOptions {
  std::string ca_file;
  std::string pinned_sha256;
  bool insecure_skip_verify = false;
  /// The name sent as SNI and checked against the certificate; empty: the URL's host.
  std::string server_name;
};

/// Makes a self-signed certificate for `names` unless `cert_path` already exists: an EC P-256
/// key (written to `key_path` with mode 0600, or reused if that file exists) and an X.509 v3
/// certificate (mode 0644) valid for 10 years, whose subject alternative names list every entry
/// of `names` (IP addresses as IP SANs, the rest as DNS names; duplicates and empty entries
/// skipped; the first name is also the subject CN). Files are written atomically. Returns true if
/// it wrote the certificate, false if it was already there. Errors: "http.tls_cert" (io_error)
/// naming the file and the reason (a certificate without its key, an unreadable or foreign key,
/// a write that failed), "http.tls_cert" (invalid_argument) for an empty `names`.
core::Result<bool> ensure_self_signed_certificate(const std::filesystem::path& cert_path,
                                                  const std::filesystem::path& key_path,
                                                  const std::vector<std::string>& names);

/// The fingerprint of the first certificate in a PEM file. Errors: "http.tls_cert" naming the
/// file and the reason (missing, unreadable, not a PEM certificate).
core::Result<std::string> certificate_fingerprint(const std::filesystem::path& pem);

/// The fingerprint of the first certificate in PEM text. Errors: "http.tls_cert" (parse_error).
core::Result<std::string> certificate_fingerprint_pem(std::string_view pem);

/// Brings a fingerprint to the canonical form ("sha256:AB:CD:..."): accepts upper or lower case,
/// with or without the "sha256:" prefix, with or without ':' between the pairs. Errors:
/// "http.bad_fingerprint" (invalid_argument) when it is not 64 hex digits after that.
core::Result<std::string> normalize_fingerprint(std::string_view text);

/// True when two fingerprints (any accepted form) name the same digest; compared in constant
/// time. False if either is malformed.
bool fingerprints_equal(std::string_view a, std::string_view b);

/// Connects to host:port, completes a TLS handshake WITHOUT verifying anything, and returns the
/// fingerprint of the certificate the server presented (for a person to compare, e.g. the CLI's
/// first login). Blocking; bounded by `timeout`. Errors: "http.resolve", "http.connect",
/// "http.timeout", "http.tls_handshake" (unavailable).
core::Result<std::string> fetch_peer_fingerprint(
    const std::string& host, std::uint16_t port,
    std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace openstation::http
