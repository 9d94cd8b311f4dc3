// Reads that wait first (read_wait.hpp): the reactor's per-descriptor "try the read at once"
// flag, cleared for the next read.
#include "src/net/read_wait.hpp"

#include <boost/version.hpp>

namespace sluice::net {

#if BOOST_VERSION == 108100 && defined(BOOST_ASIO_HAS_EPOLL) && !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)

namespace {

using Socket = boost::asio::ip::tcp::socket;
using Reactor = boost::asio::detail::epoll_reactor;
using State = Reactor::descriptor_state;

// The socket's implementation (protected in basic_socket), through a pointer to member formed
// in a derived class.
struct SocketAccess : Socket {
  static auto& impl(Socket& s) { return s.*(&SocketAccess::impl_); }
};

// The descriptor state's try_speculative_ flags (private), through a pointer to member named in
// an explicit instantiation, where access is not checked.
struct SpeculativeTag {
  friend constexpr auto speculative_member(SpeculativeTag);
};
template <auto Member, typename Tag>
struct Expose {
  friend constexpr auto speculative_member(Tag) { return Member; }
};
template struct Expose<&State::try_speculative_, SpeculativeTag>;

}  // namespace

const bool kWaitFirstWorks = true;

void wait_first(boost::asio::ip::tcp::socket& s) {
  if (State* state = SocketAccess::impl(s).get_implementation().reactor_data_)
    (state->*speculative_member(SpeculativeTag{}))[Reactor::read_op] = false;
}

#else

const bool kWaitFirstWorks = false;
void wait_first(boost::asio::ip::tcp::socket&) {}  // another reactor: reads try first

#endif

}  // namespace sluice::net
