// TLS: contexts (Asio's ssl::context over OpenSSL) for client-facing listeners and for Sluice's
// own connections to servers, and the TLS stream both kinds of connection use.
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include <memory>
#include <optional>
#include <string>

#include "src/config/config.hpp"

namespace sluice::net {

// Builds a server-side context from a listener's [section] tls keys: certificate chain, key
// (checked against the certificate), minimum version, TLS 1.2 cipher list, and the CA that
// verifies client certificates when given. Throws config::ConfigError naming the key.
// Returns null when tls = "disable".
std::shared_ptr<boost::asio::ssl::context> make_server_tls(const config::ListenerTls& tls, const std::string& section);

// The common name of the client's certificate when it sent one and it verified against tls_ca.
std::optional<std::string> verified_peer_cn(SSL* ssl);

// The client-certificate rule of a login: the listener's tls_client_cert and `auth = "cert"`.
// `ssl` is null for a plaintext connection. `cn` is set to the certificate's name when there is one.
enum class CertVerdict { Ok, Missing, WrongUser };
CertVerdict check_client_cert(SSL* ssl, config::ClientCert mode, bool cert_user, const std::string& user,
                              std::optional<std::string>& cn);

// tls-server-end-point channel binding data (RFC 5929): the hash of the server certificate's
// DER encoding, with SHA-256 for MD5/SHA-1 signed certificates.
std::string server_end_point(boost::asio::ssl::context& ctx);

// A client-side context for Sluice's connections to a cluster's servers ([clusters.X]
// server_tls, server_tls_ca, server_tls_cert, server_tls_key). Null when server_tls = "disable".
// Throws config::ConfigError naming the key.
std::shared_ptr<boost::asio::ssl::context> make_client_tls(const config::Cluster& c, const std::string& section);

// TLS over a connected, non-blocking TCP socket: OpenSSL reads and writes the socket itself
// (no intermediate buffers), and waits for readiness through Asio, so a handshake or a slow peer
// never blocks a worker thread. The socket may move to another worker's io_context (the pool
// does that): the stream follows, because it holds the socket by reference and OpenSSL only
// knows the descriptor number, which stays the same.
//
// Reads and writes may be in flight at the same time (one coroutine reading, another writing,
// on one thread). A write that could not finish must be continued with the same bytes first:
// write()/write_now() callers keep unwritten bytes at the front of their buffer.
class TlsStream {
 public:
  enum class Role { Server, Client };
  // `host`, for a client: sent as SNI (names only) and, when `verify_host`, checked against the
  // certificate's names or IP addresses.
  TlsStream(boost::asio::ip::tcp::socket& sock, std::shared_ptr<boost::asio::ssl::context> ctx, Role role,
            const std::string& host = {}, bool verify_host = false);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  SSL* native_handle() const { return ssl_; }
  // An idle connection (nothing pending either way): OpenSSL's record buffers (about 16 KiB
  // each way) go back until the next read or write needs them. False when they are in use.
  bool release_buffers() { return SSL_free_buffers(ssl_) == 1; }
  boost::asio::awaitable<void> handshake(boost::system::error_code& ec);
  // Some bytes (at least one) or an error; eof when the peer closed.
  boost::asio::awaitable<std::size_t> read_some(boost::asio::mutable_buffer b, boost::system::error_code& ec);
  // One read attempt without waiting: Done with `n` bytes, WantRead/WantWrite (wait for the
  // socket, then try again), or Fail with `ec` set. Hot paths use it with a socket wait of their
  // own, which costs an operation where read_some costs a coroutine frame as well.
  enum class Step { Done, WantRead, WantWrite, Fail };
  Step try_read(boost::asio::mutable_buffer b, std::size_t& n, boost::system::error_code& ec);
  // All of `b`.
  boost::asio::awaitable<void> write(boost::asio::const_buffer b, boost::system::error_code& ec);
  // Writes what the kernel takes now without waiting; returns the bytes of `b` consumed. An
  // error only when the connection is broken (not for "try later").
  std::size_t write_now(boost::asio::const_buffer b, boost::system::error_code& ec);
  // Whether a write stopped half-way (its bytes must go first, so nothing else may be written).
  bool write_pending() const { return write_pending_; }
  // Sends close_notify if it fits now; never waits.
  void shutdown_quietly();
  // A human-readable reason for the last handshake failure (certificate verification detail).
  std::string verify_error() const;

 private:
  enum class Want { Done, Read, Write, Fail };
  Want classify(int ret, boost::system::error_code& ec);
  boost::asio::ip::tcp::socket& sock_;
  std::shared_ptr<boost::asio::ssl::context> ctx_;  // kept alive as long as the SSL uses it
  SSL* ssl_ = nullptr;
  bool write_pending_ = false;
};

// A connection's byte stream: the socket itself, or TLS over it once `tls` is set.
// A plain socket's send without waiting: the bytes the kernel takes now (0 when it takes none,
// or on an error, which the asynchronous write that sends the rest then reports).
std::size_t send_now(boost::asio::ip::tcp::socket& sock, boost::asio::const_buffer b);
// send(2) on a non-blocking descriptor as a bare system call: libc's send() is a cancellation
// point and brackets the call with two of its own (Sluice never cancels threads). EAGAIN comes
// back as asio::error::would_block in `ec`, with 0.
std::size_t send_raw(int fd, const void* data, std::size_t n, boost::system::error_code& ec);

struct Channel {
  boost::asio::ip::tcp::socket& sock;
  TlsStream* tls = nullptr;
  boost::asio::awaitable<std::size_t> read_some(boost::asio::mutable_buffer b, boost::system::error_code& ec);
  boost::asio::awaitable<void> write(boost::asio::const_buffer b, boost::system::error_code& ec);
};

}  // namespace sluice::net
