// The certificate helpers: self-signed generation (files, modes, SANs, idempotence), fingerprints
// and their normalisation.
#include "http/detail/tls.hpp"
#include "http/tls.hpp"
#include "support/temp_dir.hpp"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <set>
#include <sstream>

namespace openstation::http {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return 0;
  return st.st_mode & 0777;
}

struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

X509Ptr load_cert(const fs::path& p) {
  FILE* f = std::fopen(p.c_str(), "r");
  if (f == nullptr) return nullptr;
  X509Ptr x(PEM_read_X509(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  return x;
}

/// The SANs of a certificate as "DNS:name" / "IP:a.b.c.d" strings.
std::set<std::string> sans_of(X509* x) {
  std::set<std::string> out;
  auto* gens =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  if (gens == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(gens); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(gens, i);
    if (g->type == GEN_DNS) {
      const auto* s = g->d.dNSName;
      out.insert("DNS:" + std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                      static_cast<std::size_t>(ASN1_STRING_length(s))));
    } else if (g->type == GEN_IPADD) {
      const auto* s = g->d.iPAddress;
      const unsigned char* d = ASN1_STRING_get0_data(s);
      if (ASN1_STRING_length(s) == 4) {
        out.insert("IP:" + std::to_string(d[0]) + "." + std::to_string(d[1]) + "." +
                   std::to_string(d[2]) + "." + std::to_string(d[3]));
      } else {
        out.insert("IP6:" + std::to_string(ASN1_STRING_length(s)));
      }
    }
  }
  GENERAL_NAMES_free(gens);
  return out;
}

class TlsCertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::unique_temp_path("tls-cert");
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(TlsCertTest, SelfSignedCreatesKeyAndCertificateWithEveryName) {
  const auto cert = dir_ / "tls" / "server.crt";
  const auto key = dir_ / "tls" / "server.key";
  auto made = ensure_self_signed_certificate(
      cert, key, {"localhost", "127.0.0.1", "gpu-box.example", "::1", "localhost", ""});
  ASSERT_TRUE(made) << made.error().message;
  EXPECT_TRUE(*made);
  ASSERT_TRUE(fs::exists(cert));
  ASSERT_TRUE(fs::exists(key));
  EXPECT_EQ(mode_of(key), 0600u);
  EXPECT_EQ(mode_of(cert), 0644u);
  EXPECT_NE(slurp(key).find("-----BEGIN PRIVATE KEY-----"), std::string::npos);

  auto x = load_cert(cert);
  ASSERT_TRUE(x);
  EXPECT_EQ(X509_get_version(x.get()), X509_VERSION_3);
  EXPECT_EQ(sans_of(x.get()), (std::set<std::string>{"DNS:localhost", "IP:127.0.0.1",
                                                     "DNS:gpu-box.example", "IP6:16"}));
  // An EC P-256 key.
  EVP_PKEY* pub = X509_get0_pubkey(x.get());
  ASSERT_NE(pub, nullptr);
  EXPECT_EQ(EVP_PKEY_get_base_id(pub), EVP_PKEY_EC);
  EXPECT_EQ(EVP_PKEY_get_bits(pub), 256);
  // About ten years of validity.
  int days = 0;
  int secs = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x.get()), X509_get0_notAfter(x.get())),
            1);
  EXPECT_GE(days, 3650);
  EXPECT_LE(days, 3652);
  // Self-signed: verifies with its own key.
  EXPECT_EQ(X509_verify(x.get(), pub), 1);
}

TEST_F(TlsCertTest, SelfSignedIsIdempotent) {
  const auto cert = dir_ / "server.crt";
  const auto key = dir_ / "server.key";
  ASSERT_TRUE(ensure_self_signed_certificate(cert, key, {"localhost"}).value());
  const std::string cert_pem = slurp(cert);
  const std::string key_pem = slurp(key);
  auto again = ensure_self_signed_certificate(cert, key, {"localhost", "other"});
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
  EXPECT_EQ(slurp(cert), cert_pem);
  EXPECT_EQ(slurp(key), key_pem);
}

TEST_F(TlsCertTest, KeyWithoutCertificateIsCertifiedCertificateWithoutKeyIsRefused) {
  const auto cert = dir_ / "server.crt";
  const auto key = dir_ / "server.key";
  ASSERT_TRUE(ensure_self_signed_certificate(cert, key, {"localhost"}).value());
  const std::string key_pem = slurp(key);

  // An interrupted first start: the key is kept and certified again.
  fs::remove(cert);
  auto remade = ensure_self_signed_certificate(cert, key, {"localhost"});
  ASSERT_TRUE(remade) << remade.error().message;
  EXPECT_TRUE(*remade);
  EXPECT_EQ(slurp(key), key_pem);
  ASSERT_TRUE(fs::exists(cert));

  // A certificate without its key cannot be repaired: refused, nothing overwritten.
  const std::string cert_pem = slurp(cert);
  fs::remove(key);
  auto refused = ensure_self_signed_certificate(cert, key, {"localhost"});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, "http.tls_cert");
  EXPECT_NE(refused.error().message.find(key.string()), std::string::npos);
  EXPECT_EQ(slurp(cert), cert_pem);
  EXPECT_FALSE(fs::exists(key));

  // A foreign file where the key should be.
  fs::remove(cert);
  { std::ofstream(key) << "not a key\n"; }
  auto bad = ensure_self_signed_certificate(cert, key, {"localhost"});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "http.tls_cert");
  EXPECT_FALSE(fs::exists(cert));

  auto none = ensure_self_signed_certificate(dir_ / "a.crt", dir_ / "a.key", {"", " "});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, "http.tls_cert");
}

TEST_F(TlsCertTest, FingerprintFormatAndStability) {
  const auto cert = dir_ / "server.crt";
  ASSERT_TRUE(ensure_self_signed_certificate(cert, dir_ / "server.key", {"localhost"}).value());
  auto fp = certificate_fingerprint(cert);
  ASSERT_TRUE(fp) << fp.error().message;
  EXPECT_TRUE(std::regex_match(*fp, std::regex("sha256:([0-9A-F]{2}:){31}[0-9A-F]{2}"))) << *fp;
  auto again = certificate_fingerprint_pem(slurp(cert));
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *fp);

  // A second certificate differs.
  const auto other = dir_ / "other.crt";
  ASSERT_TRUE(ensure_self_signed_certificate(other, dir_ / "other.key", {"localhost"}).value());
  EXPECT_NE(certificate_fingerprint(other).value(), *fp);

  auto missing = certificate_fingerprint(dir_ / "nope.crt");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, "http.tls_cert");
  EXPECT_NE(missing.error().message.find("nope.crt"), std::string::npos);
  { std::ofstream(dir_ / "junk.crt") << "junk"; }
  auto junk = certificate_fingerprint(dir_ / "junk.crt");
  ASSERT_FALSE(junk);
  EXPECT_EQ(junk.error().code, "http.tls_cert");
}

TEST_F(TlsCertTest, ClientContextsAreSharedUntilTheCaFileChanges) {
  const auto ca = dir_ / "ca.pem";
  TlsClientOptions opt;
  opt.ca_file = ca.string();
  // A missing file is an error, and not remembered: the call after it is there succeeds.
  auto missing = detail::shared_client_context(opt);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, "http.tls_ca");
  ASSERT_TRUE(ensure_self_signed_certificate(ca, dir_ / "key.pem", {"localhost"}));
  auto a = detail::shared_client_context(opt);
  ASSERT_TRUE(a) << a.error().message;
  auto b = detail::shared_client_context(opt);
  ASSERT_TRUE(b);
  EXPECT_EQ(a->get(), b->get());
  opt.server_name = "other.example";  // set per connection: the same context
  EXPECT_EQ(detail::shared_client_context(opt)->get(), a->get());
  auto insecure = opt;
  insecure.insecure_skip_verify = true;
  EXPECT_NE(detail::shared_client_context(insecure)->get(), a->get());
  // The CA file replaced (a new certificate, written later): a new context that trusts it.
  const auto before = fs::last_write_time(ca);
  fs::remove(ca);
  fs::remove(dir_ / "key.pem");
  ASSERT_TRUE(ensure_self_signed_certificate(ca, dir_ / "key.pem", {"localhost"}));
  fs::last_write_time(ca, before + std::chrono::seconds(1));
  auto c = detail::shared_client_context(opt);
  ASSERT_TRUE(c);
  EXPECT_NE(c->get(), a->get());
  EXPECT_EQ(detail::shared_client_context(opt)->get(), c->get());
}

TEST(TlsFingerprint, NormalizeAcceptsEveryFormAndRejectsOthers) {
  const std::string canon =
      "sha256:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:"
      "67:89:AB:CD:EF";
  const std::string bare = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  EXPECT_EQ(normalize_fingerprint(canon).value(), canon);
  EXPECT_EQ(normalize_fingerprint(bare).value(), canon);
  EXPECT_EQ(normalize_fingerprint("SHA256:" + bare).value(), canon);
  std::string lower_colons = canon.substr(7);
  for (auto& c : lower_colons) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  EXPECT_EQ(normalize_fingerprint(lower_colons).value(), canon);
  EXPECT_EQ(normalize_fingerprint("  " + canon + "\n").value(), canon);

  for (const std::string& bad :
       {std::string(""), bare.substr(2), bare + "00", "sha256:" + bare.substr(1) + "g",
        "md5:" + bare, ":" + bare, bare.substr(0, 1) + ":" + bare.substr(1)}) {
    auto r = normalize_fingerprint(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, "http.bad_fingerprint");
    }
  }
  EXPECT_TRUE(fingerprints_equal(canon, bare));
  EXPECT_FALSE(fingerprints_equal(canon, "sha256:" + std::string(64, '0')));
  EXPECT_FALSE(fingerprints_equal(canon, "garbage"));
}

}  // namespace
}  // namespace openstation::http
