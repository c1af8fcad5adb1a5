#pragma once
/// Private: OpenSSL contexts and checks shared by the server, the clients and the certificate
/// helpers (implemented in tls.cpp). Include only from .cpp files.

#include "core/error.hpp"
#include "http/tls.hpp"

#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>

#include <memory>
#include <string>

namespace openstation::http::detail {

/// A server context: TLS 1.2 or newer, the certificate chain and the key loaded and checked
/// against each other. Errors: "http.tls_cert" naming the file and the reason.
core::Result<std::shared_ptr<boost::asio::ssl::context>> make_server_context(
    const TlsServerOptions& opt);

/// A client context for `opt`: TLS 1.2 or newer; the CA file or the system's store loaded when
/// the chain is to be verified. Errors: "http.tls_ca", "http.bad_fingerprint".
core::Result<std::shared_ptr<boost::asio::ssl::context>> make_client_context(
    const TlsClientOptions& opt);

/// make_client_context's context for `opt`, made once and shared by the connections made with
/// the same options: making one costs milliseconds of CPU (OpenSSL's defaults, a CA file or the
/// system's store parsed), which a client that connects every few seconds (an agent's
/// heartbeat) paid each time. A CA file is looked at on every call (its modification time and
/// size): a replaced file gets a new context. The system's store is read once per process.
/// Errors as make_client_context's (not kept: the next call tries again).
core::Result<std::shared_ptr<boost::asio::ssl::context>> shared_client_context(
    const TlsClientOptions& opt);

/// Sets up one client connection before its handshake: SNI, and the verification mode and the
/// expected host name (or IP address) by `opt`'s rules.
void prepare_client_ssl(SSL* ssl, const TlsClientOptions& opt, const std::string& host);

/// After a handshake (successful or not): turns the outcome into the module's errors.
/// `hs` is the handshake's error. Returns the peer's leaf fingerprint on success. Errors:
/// "http.tls_verify", "http.tls_handshake", "http.tls_fingerprint_mismatch".
core::Result<std::string> check_client_handshake(SSL* ssl, const TlsClientOptions& opt,
                                                 const boost::system::error_code& hs,
                                                 const std::string& where);

/// True when a server-side handshake failed because the client spoke plain HTTP.
bool is_plain_http_on_tls(const boost::system::error_code& ec);

/// The fingerprint of an X509 certificate ("sha256:AB:...").
std::string x509_fingerprint(X509* cert);

}  // namespace openstation::http::detail
