#include "src/net/socket_flags.hpp"

#include "src/net/asio_reactor.hpp"

namespace sluice::net {

void set_non_blocking(boost::asio::ip::tcp::socket& s, bool was, boost::system::error_code& ec) {
  if (was && s.is_open() && reactor::note_user_non_blocking(s)) {
    ec.clear();
    return;
  }
  s.non_blocking(true, ec);
}

}  // namespace sluice::net
