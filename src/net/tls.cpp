// Server TLS contexts.
#include "src/net/tls.hpp"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace sluice::net {

namespace ssl = boost::asio::ssl;

namespace {
std::string openssl_error() {
  unsigned long e = ERR_get_error();
  if (!e) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}
}  // namespace

std::shared_ptr<ssl::context> make_server_tls(const config::ListenerTls& tls, const std::string& section) {
  if (tls.mode == config::TlsMode::Disable) return nullptr;
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* c = ctx->native_handle();
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(c, tls.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
  auto fail = [&](const char* key, const std::string& what) {
    throw config::ConfigError(fmt::format("{}.{}: {}", section, key, what));
  };
  if (SSL_CTX_use_certificate_chain_file(c, tls.cert.c_str()) != 1)
    fail("tls_cert", fmt::format("cannot load certificate chain {}: {}", tls.cert, openssl_error()));
  if (SSL_CTX_use_PrivateKey_file(c, tls.key.c_str(), SSL_FILETYPE_PEM) != 1)
    fail("tls_key", fmt::format("cannot load private key {}: {}", tls.key, openssl_error()));
  if (SSL_CTX_check_private_key(c) != 1) fail("tls_key", fmt::format("{} does not match {}", tls.key, tls.cert));
  if (!tls.ciphers.empty() && SSL_CTX_set_cipher_list(c, tls.ciphers.c_str()) != 1)
    fail("tls_ciphers", fmt::format("no usable cipher in \"{}\"", tls.ciphers));
  if (!tls.ca.empty()) {
    if (SSL_CTX_load_verify_locations(c, tls.ca.c_str(), nullptr) != 1)
      fail("tls_ca", fmt::format("cannot load CA certificates {}: {}", tls.ca, openssl_error()));
    // Ask for a client certificate; verify it when sent (authentication decides whether one is
    // required).
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
    if (auto* names = SSL_load_client_CA_file(tls.ca.c_str())) SSL_CTX_set_client_CA_list(c, names);
  }
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
  static const unsigned char sid[] = "sluice";
  SSL_CTX_set_session_id_context(c, sid, sizeof sid - 1);
  return ctx;
}

std::optional<std::string> verified_peer_cn(SSL* s) {
  X509* cert = SSL_get_peer_certificate(s);
  if (!cert) return std::nullopt;
  std::optional<std::string> out;
  if (SSL_get_verify_result(s) == X509_V_OK) {
    char cn[256] = {0};
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
    if (n >= 0) out = std::string(cn, static_cast<std::size_t>(n));
  }
  X509_free(cert);
  return out;
}

CertVerdict check_client_cert(SSL* s, config::ClientCert mode, bool cert_user, const std::string& user,
                              std::optional<std::string>& cn) {
  if (!cert_user && mode == config::ClientCert::None) return CertVerdict::Ok;
  cn = s ? verified_peer_cn(s) : std::nullopt;
  if (!cn) return CertVerdict::Missing;
  if ((cert_user || mode == config::ClientCert::VerifyFull) && *cn != user) return CertVerdict::WrongUser;
  return CertVerdict::Ok;
}

std::string server_end_point(ssl::context& ctx) {
  X509* cert = SSL_CTX_get0_certificate(ctx.native_handle());
  if (!cert) return {};
  int md_nid = 0, pk_nid = 0;
  const EVP_MD* md = nullptr;
  if (OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid, &pk_nid) && md_nid != NID_md5 && md_nid != NID_sha1)
    md = EVP_get_digestbynid(md_nid);
  if (!md) md = EVP_sha256();
  unsigned char buf[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, md, buf, &len) != 1) return {};
  return std::string(reinterpret_cast<char*>(buf), len);
}

}  // namespace sluice::net
