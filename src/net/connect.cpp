// TCP or Unix-domain connections behind one tcp::socket.
#include "src/net/connect.hpp"

#include <cstring>

#include <sys/socket.h>

namespace sluice::net {

namespace asio = boost::asio;
using asio::ip::tcp;

asio::awaitable<std::string> connect_stream(tcp::socket& sock, config::Endpoint ep) {
  boost::system::error_code ec;
  if (ep.unix_socket()) {
    asio::local::stream_protocol::socket local(sock.get_executor());
    co_await local.async_connect(asio::local::stream_protocol::endpoint(ep.host),
                                 asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return ec.message();
    int fd = local.release(ec);
    if (ec) co_return ec.message();
    sock.assign(tcp::v4(), fd, ec);  // the protocol tag is Asio's; the descriptor stays AF_UNIX
    if (ec) {
      ::close(fd);
      co_return ec.message();
    }
    sock.non_blocking(true, ec);
    co_return std::string();
  }
  tcp::resolver resolver(sock.get_executor());
  auto results =
      co_await resolver.async_resolve(ep.host, std::to_string(ep.port), asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return "cannot resolve: " + ec.message();
  co_await asio::async_connect(sock, results, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return ec.message();
  co_return std::string();
}

namespace {
std::optional<SocketAddress> socket_address(const tcp::socket& sock, bool peer) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  auto& s = const_cast<tcp::socket&>(sock);
  if (!s.is_open()) return std::nullopt;
  auto* sa = reinterpret_cast<sockaddr*>(&ss);
  if ((peer ? ::getpeername(s.native_handle(), sa, &len) : ::getsockname(s.native_handle(), sa, &len)) != 0)
    return std::nullopt;
  SocketAddress out;
  if (ss.ss_family == AF_UNIX) {
    out.unix_socket = true;
    return out;
  }
  if ((ss.ss_family != AF_INET && ss.ss_family != AF_INET6) || len > out.ep.capacity()) return std::nullopt;
  std::memcpy(out.ep.data(), &ss, len);
  out.ep.resize(len);
  return out;
}
}  // namespace

std::optional<SocketAddress> local_address(const tcp::socket& sock) { return socket_address(sock, false); }
std::optional<SocketAddress> peer_address(const tcp::socket& sock) { return socket_address(sock, true); }

bool is_unix(const tcp::socket& sock) {
  auto a = local_address(sock);
  return a && a->unix_socket;
}

}  // namespace sluice::net
