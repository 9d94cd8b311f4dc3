// Asio's record of a socket's non-blocking mode, for a descriptor wrapped again: moved to another
// worker's io_context (a pooled server connection), or back from a parked wait. The mode belongs
// to the descriptor's open file, so when the socket that held the descriptor before was
// non-blocking, so is the new one, and non_blocking(true) would only repeat its ioctl: one system
// call per move between workers, and per parked client's wake-up.
#pragma once

#include <boost/asio/ip/tcp.hpp>

namespace sluice::net {

// Makes `s` non-blocking, as s.non_blocking(true, ec) does. `was`: its descriptor is known to be
// non-blocking already (the socket that held it before said so): then only Asio's flag is set.
void set_non_blocking(boost::asio::ip::tcp::socket& s, bool was, boost::system::error_code& ec);

}  // namespace sluice::net
