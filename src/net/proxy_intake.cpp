// Reading a PROXY header off a new connection (proxy_intake.hpp).
#include "src/net/proxy_intake.hpp"

#include "src/net/address_text.hpp"

#include <sys/socket.h>

#include <array>
#include <cerrno>

#include "protocols/common/proxy_header.hpp"
#include "src/net/connect.hpp"

namespace sluice::net {

namespace asio = boost::asio;

namespace {

bool trusted(const config::ListenerProxy& proxy, const std::string& addr) {
  auto a = config::IpAddress::parse(addr);
  if (!a) return false;
  for (auto& c : proxy.trusted)
    if (c.contains(*a)) return true;
  return false;
}

// Bytes already waiting on the socket, left there (MSG_PEEK); -1 on error or none yet.
ssize_t peek(int fd, std::uint8_t* buf, std::size_t n) { return ::recv(fd, buf, n, MSG_PEEK | MSG_DONTWAIT); }

}  // namespace

Origin peer_origin(const asio::ip::tcp::socket& sock) {
  Origin o;
  auto peer = peer_address(sock);
  if (!peer) {
    o.addr = is_unix(sock) ? "unix" : "unknown";  // e.g. a Unix client already gone
  } else if (peer->unix_socket) {  // a Unix-domain socket's client has no address: "unix", as SHOW CLIENTS says
    o.addr = "unix";
  } else {
    o.addr = client_address_text(peer->ep.address());
    o.port = peer->ep.port();
  }
  return o;
}

asio::awaitable<std::optional<Origin>> take_origin(asio::ip::tcp::socket& sock, const config::ListenerProxy& proxy,
                                                   config::Duration timeout, std::string& why) {
  Origin peer = peer_origin(sock);
  if (proxy.trusted.empty() || peer.addr == "unix") co_return peer;  // the PROXY protocol is for TCP
  std::array<std::uint8_t, proxy::kMaxV2> buf;
  const int fd = sock.native_handle();
  if (!trusted(proxy, peer.addr)) {
    if (proxy.only) {
      why = "not a trusted PROXY protocol peer (proxy_protocol_only)";
      co_return std::nullopt;
    }
    // A header from anyone else never names the client; one already here is refused outright.
    ssize_t n = peek(fd, buf.data(), 16);
    if (n > 0 && proxy::looks_like_header({buf.data(), static_cast<std::size_t>(n)})) {
      why = "PROXY protocol header from an untrusted peer";
      co_return std::nullopt;
    }
    co_return peer;
  }
  // Trusted: the header must come first. Bytes are peeked; while the header is incomplete every
  // byte seen belongs to it and is taken, so the wait below always waits for new bytes.
  bool timed_out = false;
  asio::steady_timer timer(sock.get_executor(), timeout);
  timer.async_wait([&sock, &timed_out](boost::system::error_code ec) {
    if (ec) return;
    timed_out = true;
    boost::system::error_code ignored;
    sock.cancel(ignored);
  });
  std::size_t have = 0;
  for (;;) {
    boost::system::error_code ec;
    co_await sock.async_wait(asio::socket_base::wait_read, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || timed_out) {
      why = timed_out ? "no PROXY protocol header in time" : "connection lost before its PROXY protocol header";
      break;
    }
    ssize_t n = peek(fd, buf.data() + have, buf.size() - have);
    if (n == 0) {
      why = "connection closed before its PROXY protocol header";
      break;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      why = "connection lost before its PROXY protocol header";
      break;
    }
    proxy::Header h;
    auto r = proxy::parse({buf.data(), have + static_cast<std::size_t>(n)}, h, why);
    if (r == proxy::Parse::Invalid) break;
    // Take the header's bytes (all that was peeked, while it is incomplete).
    std::size_t take = r == proxy::Parse::Done ? h.length - have : static_cast<std::size_t>(n);
    if (::recv(fd, buf.data() + have, take, MSG_DONTWAIT) != static_cast<ssize_t>(take)) {
      why = "connection lost in its PROXY protocol header";
      break;
    }
    have += take;
    if (r == proxy::Parse::Done) {
      timer.cancel();
      if (!h.has_address) co_return peer;  // LOCAL / UNKNOWN: the balancer speaks for itself
      Origin o;
      o.addr = h.src_addr;
      o.port = h.src_port;
      o.via = peer.addr;
      co_return o;
    }
    if (have == buf.size()) {
      why = "PROXY protocol header too long";
      break;
    }
  }
  timer.cancel();
  co_return std::nullopt;
}

}  // namespace sluice::net
