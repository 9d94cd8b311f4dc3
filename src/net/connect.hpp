// Opening a stream to an endpoint that is either "host:port" (TCP, resolved) or the path of a
// Unix-domain socket ("/run/postgresql/.s.PGSQL.5432", "/run/mysqld/mysqld.sock"). A Unix
// connection lives in a tcp::socket too: reads, writes, readiness waits and closing are the same
// system calls, so every session, pool and relay handles both without knowing. What differs
// (no peer address, no TCP options) is asked with is_unix().
#pragma once

#include <optional>

#include <boost/asio.hpp>

#include <string>

#include "src/config/config.hpp"

namespace sluice::net {

// Connects the closed `sock` to `ep`; "" or what failed ("cannot resolve: ...", the error).
boost::asio::awaitable<std::string> connect_stream(boost::asio::ip::tcp::socket& sock, config::Endpoint ep);

// Whether the descriptor in `sock` is a Unix-domain socket.
bool is_unix(const boost::asio::ip::tcp::socket& sock);

// The socket's own address (getsockname) or its peer's (getpeername), each in one system call:
// none when it fails; a Unix-domain socket's is `unix_socket` (and no endpoint).
struct SocketAddress {
  bool unix_socket = false;
  boost::asio::ip::tcp::endpoint ep;
};
std::optional<SocketAddress> local_address(const boost::asio::ip::tcp::socket& sock);
std::optional<SocketAddress> peer_address(const boost::asio::ip::tcp::socket& sock);

}  // namespace sluice::net
