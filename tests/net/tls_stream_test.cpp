// net::TlsStream over real loopback sockets: handshakes with host verification, a large transfer
// with reader and writer on one thread, a write cut short by a full socket and continued, the
// socket moved to another io_context mid-stream (what the pool does), and EOF.
#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <boost/asio.hpp>

#include "src/config/config.hpp"
#include "src/net/tls.hpp"
#include "tests/net/loopback_pair.hpp"

namespace asio = boost::asio;
using asio::ip::tcp;
using sluice::net::TlsStream;

namespace {

// A self-signed certificate (CN and SAN localhost) made in memory; freed at exit.
struct TestCert {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  TestCert() {
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509_sign(cert, key, EVP_sha256());
  }
  ~TestCert() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
};
TestCert& test_cert() {
  static TestCert c;
  return c;
}

std::shared_ptr<asio::ssl::context> server_ctx() {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX_use_certificate(ctx->native_handle(), test_cert().cert);
  SSL_CTX_use_PrivateKey(ctx->native_handle(), test_cert().key);
  return ctx;
}

std::shared_ptr<asio::ssl::context> client_ctx(bool trust) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  if (trust) X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx->native_handle()), test_cert().cert);
  SSL_CTX_set_verify(ctx->native_handle(), SSL_VERIFY_PEER, nullptr);
  return ctx;
}

using Pair = sluice::testing::LoopbackPair;

// Runs both handshakes; returns {client error, server error}.
std::pair<boost::system::error_code, boost::system::error_code> handshake(asio::io_context& io, TlsStream& c, TlsStream& s) {
  boost::system::error_code ce, se;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> { co_await c.handshake(ce); }, asio::detached);
  asio::co_spawn(io, [&]() -> asio::awaitable<void> { co_await s.handshake(se); }, asio::detached);
  io.run();
  io.restart();
  return {ce, se};
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 1000) % 26);
  return s;
}

// Reads exactly `n` bytes (or until an error).
asio::awaitable<void> read_n(TlsStream& t, std::size_t n, std::string& out, boost::system::error_code& ec) {
  std::vector<char> buf(16384);
  while (out.size() < n) {
    auto got = co_await t.read_some(asio::buffer(buf), ec);
    if (ec) co_return;
    out.append(buf.data(), got);
  }
}

}  // namespace

TEST_CASE("TlsStream: verified handshake, then 4 MiB each way with reader and writer on one thread") {
  Pair p;
  TlsStream c(p.client, client_ctx(true), TlsStream::Role::Client, "localhost", true);
  TlsStream s(p.server, server_ctx(), TlsStream::Role::Server);
  auto hs = handshake(p.io, c, s);
  auto ce = hs.first, se = hs.second;
  REQUIRE_MESSAGE(!ce, ce.message());
  REQUIRE_MESSAGE(!se, se.message());

  const std::string data = pattern(4 << 20);
  std::string at_server, at_client;
  boost::system::error_code e1, e2, e3, e4;
  asio::co_spawn(p.io, [&]() -> asio::awaitable<void> { co_await c.write(asio::buffer(data), e1); }, asio::detached);
  asio::co_spawn(p.io, [&]() -> asio::awaitable<void> { co_await s.write(asio::buffer(data), e2); }, asio::detached);
  asio::co_spawn(p.io, [&]() -> asio::awaitable<void> { co_await read_n(s, data.size(), at_server, e3); }, asio::detached);
  asio::co_spawn(p.io, [&]() -> asio::awaitable<void> { co_await read_n(c, data.size(), at_client, e4); }, asio::detached);
  p.io.run();
  CHECK(!e1);
  CHECK(!e2);
  CHECK(!e3);
  CHECK(!e4);
  CHECK(at_server == data);
  CHECK(at_client == data);
}

TEST_CASE("TlsStream: a wrong host name or an unknown CA fails the handshake with the reason") {
  {
    Pair p;
    TlsStream c(p.client, client_ctx(true), TlsStream::Role::Client, "db.example", true);
    TlsStream s(p.server, server_ctx(), TlsStream::Role::Server);
    auto ce = handshake(p.io, c, s).first;
    CHECK(ce);
    CHECK(c.verify_error().find("hostname mismatch") != std::string::npos);
  }
  {
    Pair p;
    TlsStream c(p.client, client_ctx(false), TlsStream::Role::Client, "127.0.0.1", false);
    TlsStream s(p.server, server_ctx(), TlsStream::Role::Server);
    auto ce = handshake(p.io, c, s).first;
    CHECK(ce);
    CHECK(!c.verify_error().empty());
  }
}

TEST_CASE("TlsStream: write_now stops at a full socket; the rest follows; the socket moves to another io_context") {
  Pair p;
  TlsStream c(p.client, client_ctx(true), TlsStream::Role::Client, "127.0.0.1", false);
  TlsStream s(p.server, server_ctx(), TlsStream::Role::Server);
  auto hs = handshake(p.io, c, s);
  auto ce = hs.first, se = hs.second;
  REQUIRE(!ce);
  REQUIRE(!se);

  // Nobody reads: the kernel buffers fill and write_now returns what it took.
  const std::string data = pattern(32 << 20);
  boost::system::error_code ec;
  std::size_t first = c.write_now(asio::buffer(data), ec);
  CHECK(!ec);
  CHECK(first < data.size());

  // The client socket moves to another io_context (as the pool moves a connection between
  // workers); the stream follows it. The rest is written from there while the server reads.
  asio::io_context other;
  int fd = p.client.release();
  p.client = tcp::socket(other, tcp::v4(), fd);
  std::string at_server;
  boost::system::error_code we, re;
  asio::co_spawn(other, [&]() -> asio::awaitable<void> { co_await c.write(asio::buffer(data) + first, we); },
                 asio::detached);
  asio::co_spawn(p.io, [&]() -> asio::awaitable<void> { co_await read_n(s, data.size(), at_server, re); }, asio::detached);
  std::thread t([&] { other.run(); });
  p.io.run();
  t.join();
  CHECK(!we);
  CHECK(!re);
  CHECK(!c.write_pending());
  CHECK(at_server.size() == data.size());
  CHECK(at_server == data);

  // The client closes: the server's read ends.
  c.shutdown_quietly();
  p.client.close();
  p.io.restart();
  std::string rest;
  asio::co_spawn(p.io, [&]() -> asio::awaitable<void> { co_await read_n(s, 1, rest, re); }, asio::detached);
  p.io.run();
  // close_notify reads as EOF; the kernel may report a reset first instead, because the client
  // never read the server's session tickets before closing.
  CHECK((re == asio::error::eof || re == asio::error::connection_reset));
}

TEST_CASE(
    "Channel::write on plain TCP: what the kernel takes at once, the rest after the reader drains; a closed peer's "
    "error") {
  sluice::testing::LoopbackPair p;
  int small = 65536;
  ::setsockopt(p.client.native_handle(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  ::setsockopt(p.server.native_handle(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  std::string big(4u << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 4093);
  boost::system::error_code wec;
  bool wrote = false;
  asio::co_spawn(
      p.io,
      [&]() -> asio::awaitable<void> {
        co_await sluice::net::Channel{p.client}.write(asio::buffer(big), wec);
        wrote = true;
      },
      asio::detached);
  p.io.poll();
  CHECK_FALSE(wrote);  // the socket filled up: the rest waits for room
  std::string got;
  std::array<char, 65536> buf{};
  p.server.non_blocking(true);
  for (int i = 0; i < 5000 && got.size() < big.size(); ++i) {  // bounded: 4 MiB comes in well under a second
    boost::system::error_code ec;
    for (std::size_t n; (n = p.server.read_some(asio::buffer(buf), ec)) > 0;) got.append(buf.data(), n);
    p.io.restart();
    p.io.run_for(std::chrono::milliseconds(2));
  }
  INFO("got ", got.size(), " of ", big.size(), ", ec ", wec.message());
  CHECK(wrote);
  CHECK_FALSE(wec);
  CHECK(got == big);
  // A small write, the socket empty again.
  wrote = false;
  asio::co_spawn(
      p.io,
      [&]() -> asio::awaitable<void> {
        co_await sluice::net::Channel{p.client}.write(asio::buffer(std::string_view("hello")), wec);
        wrote = true;
      },
      asio::detached);
  p.io.restart();
  p.io.poll();
  CHECK(wrote);
  CHECK_FALSE(wec);
  // The peer gone: the error reaches the writer.
  p.server.close();
  std::string more(1u << 20, 'x');
  wrote = false;
  asio::co_spawn(
      p.io,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 8 && !wec; ++i) co_await sluice::net::Channel{p.client}.write(asio::buffer(more), wec);
        wrote = true;
      },
      asio::detached);
  p.io.restart();
  p.io.run_for(std::chrono::seconds(2));
  CHECK(wrote);
  CHECK(wec);
}
