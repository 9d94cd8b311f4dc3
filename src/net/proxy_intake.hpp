// Who a client is: the address it connected from, or, from a trusted load balancer, the one its
// PROXY protocol header names (protocols/common/proxy_header.hpp). The header is read without
// taking a byte past it, so the session reads the client's first message as if nothing came
// before.
#pragma once

#include <boost/asio.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "src/config/config.hpp"

namespace sluice::net {

struct Origin {
  std::string addr;  // the client's address (the header's source when proxied)
  std::uint16_t port = 0;
  std::string via;  // the balancer's address when the header named the client; "" otherwise
};

// The connection's own peer as an Origin ("unknown" when the socket has none).
Origin peer_origin(const boost::asio::ip::tcp::socket& sock);

// Applies the listener's PROXY settings to a new connection: untrusted peers are taken as they
// are (refused when `only`, or when what they sent first is a PROXY header); trusted peers must
// send a header within `timeout`. None (and `why`, for the log) when the connection is refused.
boost::asio::awaitable<std::optional<Origin>> take_origin(boost::asio::ip::tcp::socket& sock,
                                                          const config::ListenerProxy& proxy, config::Duration timeout,
                                                          std::string& why);

}  // namespace sluice::net
