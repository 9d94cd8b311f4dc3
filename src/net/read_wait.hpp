// A read that waits for readiness before it tries. Asio's reactor (Boost 1.81, epoll) tries every
// read at once ("speculatively") after any readiness event on the socket, and a read only stops
// that when it sees the end of the stream: a read issued right after sending a request therefore
// costs a recv that fails with EAGAIN, then the wait. A caller that knows no byte it has not read
// can have arrived since the socket last woke it (the peer only answers, and the request just
// went) calls wait_first() before async_read_some: the read then waits for the answer's own
// readiness event, saving that failed recv (docs/design-decisions.md, "Reads that wait first").
//
// Only for a socket of the calling thread's io_context (one thread each, as net::Runtime runs
// them): the flag is the reactor's per-descriptor state, touched without its lock. Bytes that did
// arrive unread (a server's notice while idle) are read with the answer, whose arrival wakes the
// read; a peer that closed answers the request with a reset, which wakes it too.
#pragma once

#include <boost/asio/ip/tcp.hpp>

namespace sluice::net {

// False where the reactor is not the one this knows (another Boost, or a build with
// SLUICE_REACTOR_FALLBACK): a no-op there.
extern const bool kWaitFirstWorks;
void wait_first(boost::asio::ip::tcp::socket& s);

}  // namespace sluice::net
