// Server TLS contexts.
#include "src/net/tls.hpp"

#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace sluice::net {

namespace ssl = boost::asio::ssl;
using boost::asio::ip::tcp;

namespace {
// OpenSSL's error queue must be empty before an SSL call for SSL_get_error to be right. Peeking
// is cheaper than clearing, and the queue is almost always empty already.
inline void clear_errors() {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

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

std::shared_ptr<ssl::context> make_client_tls(const config::Cluster& cl, const std::string& section) {
  if (cl.server_tls == config::ServerTlsMode::Disable) return nullptr;
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  SSL_CTX* c = ctx->native_handle();
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  auto fail = [&](const char* key, const std::string& what) {
    throw config::ConfigError(fmt::format("{}.{}: {}", section, key, what));
  };
  bool verify = cl.server_tls == config::ServerTlsMode::VerifyCa || cl.server_tls == config::ServerTlsMode::VerifyFull;
  if (!cl.server_tls_ca.empty()) {
    if (SSL_CTX_load_verify_locations(c, cl.server_tls_ca.c_str(), nullptr) != 1)
      fail("server_tls_ca", fmt::format("cannot load CA certificates {}: {}", cl.server_tls_ca, openssl_error()));
  } else if (verify && SSL_CTX_set_default_verify_paths(c) != 1) {
    fail("server_tls_ca", fmt::format("no CA file given and the system's CAs cannot be loaded: {}", openssl_error()));
  }
  SSL_CTX_set_verify(c, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  if (!cl.server_tls_cert.empty()) {
    if (SSL_CTX_use_certificate_chain_file(c, cl.server_tls_cert.c_str()) != 1)
      fail("server_tls_cert", fmt::format("cannot load certificate chain {}: {}", cl.server_tls_cert, openssl_error()));
    if (SSL_CTX_use_PrivateKey_file(c, cl.server_tls_key.c_str(), SSL_FILETYPE_PEM) != 1)
      fail("server_tls_key", fmt::format("cannot load private key {}: {}", cl.server_tls_key, openssl_error()));
    if (SSL_CTX_check_private_key(c) != 1)
      fail("server_tls_key", fmt::format("{} does not match {}", cl.server_tls_key, cl.server_tls_cert));
  }
  return ctx;
}

TlsStream::TlsStream(tcp::socket& sock, std::shared_ptr<ssl::context> ctx, Role role, const std::string& host,
                     bool verify_host)
    : sock_(sock), ctx_(std::move(ctx)) {
  ssl_ = SSL_new(ctx_->native_handle());
  if (!ssl_) throw std::bad_alloc();
  boost::system::error_code ec;
  sock_.non_blocking(true, ec);
  SSL_set_fd(ssl_, sock_.native_handle());
  // Partial writes: a write returns after each record, so write_now() can report progress.
  SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Read whatever the socket has (several records in one recv) rather than a header and then a
  // body: half the read syscalls. Safe because every read asks OpenSSL before waiting.
  SSL_set_read_ahead(ssl_, 1);
  if (role == Role::Server) {
    SSL_set_accept_state(ssl_);
    return;
  }
  SSL_set_connect_state(ssl_);
  boost::asio::ip::make_address(host, ec);  // ec set: a name, not an IP address
  if (ec && !host.empty()) SSL_set_tlsext_host_name(ssl_, host.c_str());  // SNI: names only (RFC 6066)
  if (verify_host) {
    if (!ec) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), host.c_str());
    else SSL_set1_host(ssl_, host.c_str());
  }
}

TlsStream::~TlsStream() {
  if (ssl_) SSL_free(ssl_);
}

TlsStream::Want TlsStream::classify(int ret, boost::system::error_code& ec) {
  // "Wait for the socket" is told by the connection's own state (what SSL_get_error looks at
  // after the error queue), so the reads and writes of the relay need not clear the thread's
  // error queue before every call: an error some other connection left on this thread cannot
  // turn a retry into a failure. Failures still go through SSL_get_error.
  if (SSL_want_read(ssl_) && BIO_should_read(SSL_get_rbio(ssl_))) return Want::Read;
  if (SSL_want_write(ssl_) && BIO_should_write(SSL_get_wbio(ssl_))) return Want::Write;
  switch (SSL_get_error(ssl_, ret)) {
    case SSL_ERROR_WANT_READ: return Want::Read;
    case SSL_ERROR_WANT_WRITE: return Want::Write;
    case SSL_ERROR_ZERO_RETURN: ec = boost::asio::error::eof; break;
    case SSL_ERROR_SYSCALL:
      ec = errno ? boost::system::error_code(errno, boost::system::system_category()) : boost::asio::error::eof;
      break;
    default: {
      unsigned long e = ERR_peek_last_error();
      // OpenSSL 3 reports a peer that closed without close_notify as a protocol error.
      if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) ec = boost::asio::error::eof;
      else if (e == 0) ec = boost::asio::error::connection_aborted;  // a failure must never read as success
      else ec = boost::system::error_code(static_cast<int>(e), boost::asio::error::get_ssl_category());
      break;
    }
  }
  ERR_clear_error();
  return Want::Fail;
}

boost::asio::awaitable<void> TlsStream::handshake(boost::system::error_code& ec) {
  for (;;) {
    clear_errors();
    int r = SSL_do_handshake(ssl_);
    if (r == 1) co_return;
    Want w = classify(r, ec);
    if (w == Want::Fail) co_return;
    const auto wait = w == Want::Read ? tcp::socket::wait_read : tcp::socket::wait_write;
    co_await sock_.async_wait(wait, boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    if (ec) co_return;
  }
}

TlsStream::Step TlsStream::try_read(boost::asio::mutable_buffer b, std::size_t& n, boost::system::error_code& ec) {
  n = 0;  // no clear_errors(): see classify()
  if (SSL_read_ex(ssl_, b.data(), b.size(), &n) == 1) return Step::Done;
  switch (classify(0, ec)) {
    case Want::Read: return Step::WantRead;
    case Want::Write: return Step::WantWrite;
    default: return Step::Fail;
  }
}

boost::asio::awaitable<std::size_t> TlsStream::read_some(boost::asio::mutable_buffer b, boost::system::error_code& ec) {
  for (;;) {
    std::size_t n = 0;
    Step s = try_read(b, n, ec);
    if (s == Step::Done) co_return n;
    if (s == Step::Fail) co_return 0;
    const auto wait = s == Step::WantRead ? tcp::socket::wait_read : tcp::socket::wait_write;
    co_await sock_.async_wait(wait, boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    if (ec) co_return 0;
  }
}

std::size_t TlsStream::write_now(boost::asio::const_buffer b, boost::system::error_code& ec) {
  std::size_t done = 0;
  while (done < b.size()) {
    std::size_t n = 0;  // no clear_errors(): see classify()
    int r = SSL_write_ex(ssl_, static_cast<const char*>(b.data()) + done, b.size() - done, &n);
    if (r == 1) {
      done += n;
      write_pending_ = false;
      continue;
    }
    if (classify(r, ec) == Want::Fail) return done;
    write_pending_ = true;  // the record is built; the same bytes must be offered again
    return done;
  }
  return done;
}

boost::asio::awaitable<void> TlsStream::write(boost::asio::const_buffer b, boost::system::error_code& ec) {
  std::size_t done = 0;
  for (;;) {
    done += write_now(b + done, ec);
    if (ec || done == b.size()) co_return;
    // Blocked on the socket (or, rarely, on a read the protocol needs first).
    clear_errors();
    int w = SSL_want_read(ssl_) ? 1 : 0;
    const auto wait = w ? tcp::socket::wait_read : tcp::socket::wait_write;
    co_await sock_.async_wait(wait, boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    if (ec) co_return;
  }
}

void TlsStream::shutdown_quietly() {
  if (!ssl_ || write_pending_) return;
  ERR_clear_error();
  SSL_shutdown(ssl_);
  ERR_clear_error();
}

std::size_t send_now(boost::asio::ip::tcp::socket& sock, boost::asio::const_buffer b) {
  boost::system::error_code ec;
  if (!sock.non_blocking()) sock.non_blocking(true, ec);
  if (ec || b.size() == 0) return 0;
  return send_raw(sock.native_handle(), b.data(), b.size(), ec);
}

std::size_t send_raw(int fd, const void* data, std::size_t n, boost::system::error_code& ec) {
  for (;;) {
    long r = ::syscall(SYS_sendto, fd, data, n, MSG_NOSIGNAL, nullptr, 0);
    if (r >= 0) {
      ec.clear();
      return static_cast<std::size_t>(r);
    }
    if (errno == EINTR) continue;
    ec.assign(errno, boost::asio::error::get_system_category());
    return 0;
  }
}

boost::asio::awaitable<std::size_t> Channel::read_some(boost::asio::mutable_buffer b, boost::system::error_code& ec) {
  if (tls) co_return co_await tls->read_some(b, ec);
  co_return co_await sock.async_read_some(b, boost::asio::redirect_error(boost::asio::use_awaitable, ec));
}

boost::asio::awaitable<void> Channel::write(boost::asio::const_buffer b, boost::system::error_code& ec) {
  if (tls) co_return co_await tls->write(b, ec);
  // What the kernel takes now goes without an operation: Asio's write that succeeds at once
  // posts its completion, and the reactor polls (a non-blocking epoll_wait) before it runs.
  const std::size_t sent = send_now(sock, b);
  ec.clear();
  if (sent == b.size()) co_return;
  co_await boost::asio::async_write(sock, b + sent, boost::asio::redirect_error(boost::asio::use_awaitable, ec));
}

std::string TlsStream::verify_error() const {
  long v = SSL_get_verify_result(ssl_);
  if (v == X509_V_OK) return {};
  return X509_verify_cert_error_string(v);
}

}  // namespace sluice::net
