// Reads that wait first (read_wait.hpp): the reactor's per-descriptor "try the read at once"
// flag, cleared for the next read.
#include "src/net/read_wait.hpp"

#include "src/net/asio_reactor.hpp"

namespace sluice::net {

const bool kWaitFirstWorks = reactor::kReactorKnown;

void wait_first(boost::asio::ip::tcp::socket& s) {
  if (reactor::State* st = reactor::state_of(s)) reactor::set_read_may_succeed(st, false);
}

}  // namespace sluice::net
