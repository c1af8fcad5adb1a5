#include "http/tls.hpp"

#include "core/fs.hpp"
#include "http/client.hpp"
#include "http/detail/beast.hpp"
#include "http/detail/tls.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>

namespace openstation::http {

namespace {

namespace ssl = boost::asio::ssl;

// Small owners for OpenSSL objects.
struct BioFree {
  void operator()(BIO* p) const { BIO_free_all(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct BnFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
struct GensFree {
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
};
struct ExtFree {
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

/// The reason at the top of OpenSSL's error queue (and clears the queue).
std::string openssl_reason(std::string fallback) {
  unsigned long last = 0;
  while (unsigned long e = ERR_get_error()) last = e;
  if (last == 0) return fallback;
  const char* r = ERR_reason_error_string(last);
  return r != nullptr ? std::string(r) : fallback;
}

core::Error cert_error(core::Errc cat, const std::string& file, std::string why,
                       std::string field = {}) {
  return core::Error(cat, "http.tls_cert", file + ": " + std::move(why),
                     field.empty() ? file : std::move(field));
}

/// The whole file, or "http.tls_cert" saying it is missing or unreadable.
core::Result<std::string> read_file(const std::filesystem::path& path, const std::string& what,
                                    const std::string& field) {
  std::ifstream in;
  auto size = core::open_for_read(path, in);
  if (!size) {
    const bool missing = size.error().category == core::Errc::not_found;
    return cert_error(missing ? core::Errc::not_found : core::Errc::io_error, path.string(),
                      (missing ? "the " + what + " file does not exist"
                               : "the " + what + " file cannot be read: " + size.error().message) +
                          (field.empty() ? "" : "; check " + field),
                      field);
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) {
    return cert_error(core::Errc::io_error, path.string(), "reading the " + what + " failed",
                      field);
  }
  return text;
}

X509Ptr parse_cert(std::string_view pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return nullptr;
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

Pkey parse_key(std::string_view pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return nullptr;
  return Pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

std::string format_fingerprint(const unsigned char* digest, std::size_t n) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = "sha256:";
  for (std::size_t i = 0; i < n; ++i) {
    if (i > 0) out += ':';
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xF];
  }
  return out;
}

/// The 32 digest bytes of a fingerprint in any accepted form.
std::optional<std::array<unsigned char, 32>> fingerprint_bytes(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  if (text.size() >= 7) {
    std::string prefix(text.substr(0, 7));
    for (auto& c : prefix) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (prefix == "sha256:") text.remove_prefix(7);
  }
  std::string hex;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ':') {
      // Colons only between pairs.
      if (hex.empty() || hex.size() % 2 != 0 || i + 1 == text.size() || text[i + 1] == ':') {
        return std::nullopt;
      }
      continue;
    }
    if (!std::isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
    hex += c;
  }
  if (hex.size() != 64) return std::nullopt;
  std::array<unsigned char, 32> out{};
  for (std::size_t i = 0; i < 32; ++i) {
    auto nib = [](char c) {
      return static_cast<unsigned char>(std::isdigit(static_cast<unsigned char>(c))
                                            ? c - '0'
                                            : std::toupper(static_cast<unsigned char>(c)) - 'A' +
                                                  10);
    };
    out[i] = static_cast<unsigned char>((nib(hex[2 * i]) << 4) | nib(hex[2 * i + 1]));
  }
  return out;
}

std::string pem_of_key(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return {};
  }
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string pem_of_cert(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return {};
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

bool add_ext(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  std::unique_ptr<X509_EXTENSION, ExtFree> ext(
      X509V3_EXT_conf_nid(nullptr, ctx, nid, const_cast<char*>(value)));
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

/// A self-signed certificate for `key` naming `names`, or null (OpenSSL's queue says why).
X509Ptr make_certificate(EVP_PKEY* key, const std::vector<std::string>& names) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) return nullptr;
  std::array<unsigned char, 16> serial{};
  if (RAND_bytes(serial.data(), static_cast<int>(serial.size())) != 1) return nullptr;
  serial[0] &= 0x7F;  // positive
  serial[0] |= 0x01;  // and not zero
  std::unique_ptr<BIGNUM, BnFree> bn(
      BN_bin2bn(serial.data(), static_cast<int>(serial.size()), nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return nullptr;
  }
  // An hour back allows for clocks a little behind this one's.
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert.get()), 3650, 0, nullptr) == nullptr) {
    return nullptr;
  }
  if (X509_set_pubkey(cert.get(), key) != 1) return nullptr;
  X509_NAME* subject = X509_get_subject_name(cert.get());
  const std::string cn = names.front().substr(0, 64);
  if (X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>("OpenStation"), -1, -1,
                                 0) != 1 ||
      X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1 ||
      X509_set_issuer_name(cert.get(), subject) != 1) {
    return nullptr;
  }
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  if (!add_ext(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE") ||
      !add_ext(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature") ||
      !add_ext(cert.get(), &ctx, NID_ext_key_usage, "serverAuth") ||
      !add_ext(cert.get(), &ctx, NID_subject_key_identifier, "hash")) {
    return nullptr;
  }
  std::unique_ptr<GENERAL_NAMES, GensFree> sans(sk_GENERAL_NAME_new_null());
  if (!sans) return nullptr;
  for (const auto& name : names) {
    GENERAL_NAME* gen = nullptr;
    if (ASN1_OCTET_STRING* ip = a2i_IPADDRESS(name.c_str())) {
      gen = GENERAL_NAME_new();
      if (gen == nullptr) {
        ASN1_OCTET_STRING_free(ip);
        return nullptr;
      }
      GENERAL_NAME_set0_value(gen, GEN_IPADD, ip);
    } else {
      ERR_clear_error();  // a2i_IPADDRESS's complaint about a DNS name
      ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
      if (dns == nullptr || ASN1_STRING_set(dns, name.data(), static_cast<int>(name.size())) != 1) {
        ASN1_IA5STRING_free(dns);
        return nullptr;
      }
      gen = GENERAL_NAME_new();
      if (gen == nullptr) {
        ASN1_IA5STRING_free(dns);
        return nullptr;
      }
      GENERAL_NAME_set0_value(gen, GEN_DNS, dns);
    }
    if (sk_GENERAL_NAME_push(sans.get(), gen) == 0) {
      GENERAL_NAME_free(gen);
      return nullptr;
    }
  }
  if (X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, sans.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return nullptr;
  }
  if (X509_sign(cert.get(), key, EVP_sha256()) == 0) return nullptr;
  return cert;
}

/// The names to certify: trimmed, brackets of IPv6 literals removed, duplicates and empties
/// dropped, order kept.
std::vector<std::string> clean_names(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (std::string n : names) {
    while (!n.empty() && std::isspace(static_cast<unsigned char>(n.back()))) n.pop_back();
    while (!n.empty() && std::isspace(static_cast<unsigned char>(n.front()))) n.erase(0, 1);
    if (n.size() > 2 && n.front() == '[' && n.back() == ']') n = n.substr(1, n.size() - 2);
    if (n.empty()) continue;
    std::string key = n;
    for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (seen.insert(key).second) out.push_back(std::move(n));
  }
  return out;
}

bool is_ip_address(const std::string& host) {
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public helpers

core::Result<bool> ensure_self_signed_certificate(const std::filesystem::path& cert_path,
                                                  const std::filesystem::path& key_path,
                                                  const std::vector<std::string>& names) {
  const auto cleaned = clean_names(names);
  if (cleaned.empty()) {
    return core::invalid("http.tls_cert",
                         "a self-signed certificate needs at least one host name or address",
                         "names");
  }
  std::error_code ec;
  const bool have_cert = std::filesystem::exists(cert_path, ec);
  const bool have_key = std::filesystem::exists(key_path, ec);
  if (have_cert && have_key) return false;
  if (have_cert) {
    return cert_error(core::Errc::io_error, key_path.string(),
                      "the certificate " + cert_path.string() +
                          " exists but its key does not; restore the key, or remove the "
                          "certificate to have a new pair made");
  }
  ERR_clear_error();
  Pkey key;
  if (have_key) {
    // A key without its certificate (an interrupted first start): certify that key.
    auto text = read_file(key_path, "key", {});
    if (!text) return text.error();
    key = parse_key(*text);
    if (!key) {
      return cert_error(core::Errc::io_error, key_path.string(),
                        "exists but is not a PEM private key (" + openssl_reason("unreadable") +
                            "); remove it to have a new key and certificate made");
    }
  } else {
    key = Pkey(EVP_EC_gen("P-256"));
    if (!key) {
      return cert_error(core::Errc::internal, key_path.string(),
                        "generating an EC P-256 key failed: " + openssl_reason("unknown"));
    }
    const std::string pem = pem_of_key(key.get());
    if (pem.empty()) {
      return cert_error(core::Errc::internal, key_path.string(),
                        "encoding the key failed: " + openssl_reason("unknown"));
    }
    if (auto w = core::write_file_atomic(key_path, pem, 0600); !w) {
      return cert_error(core::Errc::io_error, key_path.string(),
                        "cannot write the key: " + w.error().message);
    }
  }
  X509Ptr cert = make_certificate(key.get(), cleaned);
  if (!cert) {
    return cert_error(core::Errc::internal, cert_path.string(),
                      "making the self-signed certificate failed: " + openssl_reason("unknown"));
  }
  const std::string pem = pem_of_cert(cert.get());
  if (pem.empty()) {
    return cert_error(core::Errc::internal, cert_path.string(),
                      "encoding the certificate failed: " + openssl_reason("unknown"));
  }
  if (auto w = core::write_file_atomic(cert_path, pem, 0644); !w) {
    return cert_error(core::Errc::io_error, cert_path.string(),
                      "cannot write the certificate: " + w.error().message);
  }
  return true;
}

core::Result<std::string> certificate_fingerprint_pem(std::string_view pem) {
  ERR_clear_error();
  X509Ptr cert = parse_cert(pem);
  if (!cert) {
    return core::parse_error("http.tls_cert",
                             "not a PEM certificate: " + openssl_reason("no certificate found"));
  }
  return detail::x509_fingerprint(cert.get());
}

core::Result<std::string> certificate_fingerprint(const std::filesystem::path& pem) {
  auto text = read_file(pem, "certificate", {});
  if (!text) return text.error();
  auto fp = certificate_fingerprint_pem(*text);
  if (!fp) {
    return cert_error(core::Errc::parse_error, pem.string(), fp.error().message);
  }
  return fp;
}

core::Result<std::string> normalize_fingerprint(std::string_view text) {
  auto bytes = fingerprint_bytes(text);
  if (!bytes) {
    return core::invalid("http.bad_fingerprint",
                         "'" + std::string(text) +
                             "' is not a SHA-256 certificate fingerprint; expected 64 hex digits, "
                             "optionally prefixed with 'sha256:' and paired with ':' "
                             "(sha256:AB:CD:...)",
                         "fingerprint");
  }
  return format_fingerprint(bytes->data(), bytes->size());
}

bool fingerprints_equal(std::string_view a, std::string_view b) {
  auto x = fingerprint_bytes(a);
  auto y = fingerprint_bytes(b);
  if (!x || !y) return false;
  return CRYPTO_memcmp(x->data(), y->data(), x->size()) == 0;
}

core::Result<std::string> fetch_peer_fingerprint(const std::string& host, std::uint16_t port,
                                                 std::chrono::milliseconds timeout) {
  asio::io_context ioc;
  std::optional<core::Result<std::string>> out;
  asio::co_spawn(
      ioc,
      [&]() -> Awaitable<void> {
        TlsClientOptions tls;
        tls.insecure_skip_verify = true;
        auto conn = co_await Connection::connect(ioc.get_executor(), host, port, timeout, tls);
        if (!conn) {
          out.emplace(conn.error());
          co_return;
        }
        out.emplace(conn->peer_fingerprint());
        conn->close();
      },
      asio::detached);
  ioc.run();
  if (!out) {
    return core::Error(core::Errc::internal, "http.internal", "the handshake did not complete");
  }
  return std::move(*out);
}

// ---------------------------------------------------------------------------------------------
// Private helpers for server.cpp and client.cpp

namespace detail {

std::string x509_fingerprint(X509* cert) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int n = 0;
  if (cert == nullptr || X509_digest(cert, EVP_sha256(), md.data(), &n) != 1) return {};
  return format_fingerprint(md.data(), n);
}

core::Result<std::shared_ptr<ssl::context>> make_server_context(const TlsServerOptions& opt) {
  if (opt.cert_file.empty() || opt.key_file.empty()) {
    return core::invalid("http.tls_cert", "TLS needs both a certificate file and a key file (PEM)",
                         opt.cert_file.empty() ? "cert_file" : "key_file");
  }
  auto cert_text = read_file(opt.cert_file, "certificate", "cert_file");
  if (!cert_text) return cert_text.error();
  auto key_text = read_file(opt.key_file, "key", "key_file");
  if (!key_text) return key_text.error();
  ERR_clear_error();
  X509Ptr leaf = parse_cert(*cert_text);
  if (!leaf) {
    return cert_error(core::Errc::parse_error, opt.cert_file,
                      "not a PEM certificate (" + openssl_reason("no certificate found") + ")",
                      "cert_file");
  }
  Pkey key = parse_key(*key_text);
  if (!key) {
    return cert_error(core::Errc::parse_error, opt.key_file,
                      "not a PEM private key (" + openssl_reason("no key found") +
                          "); encrypted keys are not supported",
                      "key_file");
  }
  if (X509_check_private_key(leaf.get(), key.get()) != 1) {
    ERR_clear_error();
    return cert_error(core::Errc::invalid_argument, opt.key_file,
                      "the key does not match the certificate " + opt.cert_file +
                          "; give the key the certificate was issued for",
                      "key_file");
  }
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* c = ctx->native_handle();
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // The chain file API reads the leaf and any intermediates after it.
  if (SSL_CTX_use_certificate_chain_file(c, opt.cert_file.c_str()) != 1) {
    return cert_error(core::Errc::parse_error, opt.cert_file,
                      "cannot load the certificate chain: " + openssl_reason("unknown"),
                      "cert_file");
  }
  if (SSL_CTX_use_PrivateKey(c, key.get()) != 1 || SSL_CTX_check_private_key(c) != 1) {
    return cert_error(core::Errc::invalid_argument, opt.key_file,
                      "the key does not match the certificate " + opt.cert_file + " (" +
                          openssl_reason("mismatch") + ")",
                      "key_file");
  }
  return ctx;
}

core::Result<std::shared_ptr<ssl::context>> make_client_context(const TlsClientOptions& opt) {
  if (!opt.pinned_sha256.empty()) {
    auto fp = normalize_fingerprint(opt.pinned_sha256);
    if (!fp) return fp.error();
  }
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  SSL_CTX* c = ctx->native_handle();
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION);
  const bool verify_chain = opt.pinned_sha256.empty() && !opt.insecure_skip_verify;
  if (!verify_chain) return ctx;
  ERR_clear_error();
  if (!opt.ca_file.empty()) {
    std::error_code ec;
    if (!std::filesystem::exists(opt.ca_file, ec)) {
      return core::invalid("http.tls_ca",
                           "the CA file " + opt.ca_file +
                               " does not exist; give the PEM file of the CA (or of the "
                               "server's self-signed certificate)",
                           "ca_file");
    }
    if (SSL_CTX_load_verify_locations(c, opt.ca_file.c_str(), nullptr) != 1) {
      return core::invalid("http.tls_ca",
                           "cannot load the CA file " + opt.ca_file + ": " +
                               openssl_reason("no certificate found") +
                               "; it must hold PEM certificates",
                           "ca_file");
    }
  } else if (SSL_CTX_set_default_verify_paths(c) != 1) {
    ERR_clear_error();  // no system store: verification will fail and say so
  }
  return ctx;
}

core::Result<std::shared_ptr<ssl::context>> shared_client_context(const TlsClientOptions& opt) {
  // What the context depends on (not the server name: that is set per connection).
  std::string key;
  key.append(opt.ca_file).append(1, '\0').append(opt.pinned_sha256).append(1, '\0');
  key.append(opt.insecure_skip_verify ? "1" : "0");
  if (!opt.ca_file.empty()) {
    std::error_code time_ec;
    std::error_code size_ec;
    const auto written = std::filesystem::last_write_time(opt.ca_file, time_ec);
    const auto size = std::filesystem::file_size(opt.ca_file, size_ec);
    if (!time_ec && !size_ec) {
      key.append(1, '\0').append(std::to_string(written.time_since_epoch().count()));
      key.append(1, '\0').append(std::to_string(size));
    }
  }
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<ssl::context>> made;
  {
    std::lock_guard lock(mutex);
    if (auto it = made.find(key); it != made.end()) return it->second;
  }
  auto ctx = make_client_context(opt);
  if (!ctx) return ctx;
  std::lock_guard lock(mutex);
  if (made.size() >= 32) made.clear();  // options that keep changing: keep only the recent ones
  return made.try_emplace(key, std::move(*ctx)).first->second;
}

void prepare_client_ssl(SSL* ssl, const TlsClientOptions& opt, const std::string& host) {
  std::string name = opt.server_name.empty() ? host : opt.server_name;
  const bool ip = is_ip_address(name);
  if (!ip) {
    // SSL_set_tlsext_host_name is a macro with a C cast.
    SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(name.c_str()));
  }
  const bool verify_chain = opt.pinned_sha256.empty() && !opt.insecure_skip_verify;
  if (!verify_chain) {
    SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
    return;
  }
  SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  if (ip) {
    X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
  } else {
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
  }
}

core::Result<std::string> check_client_handshake(SSL* ssl, const TlsClientOptions& opt,
                                                 const boost::system::error_code& hs,
                                                 const std::string& where) {
  X509* leaf = SSL_get0_peer_certificate(ssl);
  if (leaf == nullptr) {
    // After a failed verification the leaf is only in the received chain.
    if (STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl); chain && sk_X509_num(chain) > 0) {
      leaf = sk_X509_value(chain, 0);
    }
  }
  const std::string presented = x509_fingerprint(leaf);
  const bool verify_chain = opt.pinned_sha256.empty() && !opt.insecure_skip_verify;
  if (hs) {
    const long vr = SSL_get_verify_result(ssl);
    if (verify_chain && vr != X509_V_OK) {
      std::string msg = "cannot verify the TLS certificate of " + where + ": " +
                        X509_verify_cert_error_string(vr);
      if (!presented.empty()) msg += " (the server presented " + presented + ")";
      msg += opt.ca_file.empty()
                 ? "; give the CA certificate file that issued it, or trust the server by its "
                   "certificate fingerprint"
                 : "; check that " + opt.ca_file +
                       " issued the server's certificate and that "
                       "the certificate names this host";
      ERR_clear_error();
      return core::Error(core::Errc::unavailable, "http.tls_verify", std::move(msg));
    }
    std::string reason = hs.message();
    ERR_clear_error();
    return core::Error(core::Errc::unavailable, "http.tls_handshake",
                       "TLS handshake with " + where + " failed: " + reason +
                           "; check that the server speaks HTTPS on this port (or use http://)");
  }
  if (!opt.pinned_sha256.empty()) {
    auto want = normalize_fingerprint(opt.pinned_sha256);
    if (!want) return want.error();
    if (presented.empty() || !fingerprints_equal(presented, *want)) {
      return core::Error(
          core::Errc::unavailable, "http.tls_fingerprint_mismatch",
          "the TLS certificate of " + where + " has fingerprint " +
              (presented.empty() ? std::string("(none)") : presented) + ", not the trusted " +
              *want +
              ". The server's certificate was replaced, or this is not the server you trusted. "
              "If the change is expected (check the fingerprint on the server with "
              "`openssl x509 -noout -fingerprint -sha256 -in <cert>`), trust the new "
              "fingerprint by logging in again");
    }
  }
  return presented;
}

bool is_plain_http_on_tls(const boost::system::error_code& ec) {
  return ec.category() == boost::asio::error::get_ssl_category() &&
         ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_HTTP_REQUEST;
}

}  // namespace detail

}  // namespace openstation::http
