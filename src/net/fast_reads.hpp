// Reads woken without a reactor operation. Asio's async_read_some makes, per read, an operation
// object (allocated, queued under the descriptor's lock, completed through the handler's
// executor) and, when the socket wakes, a descriptor operation that the scheduler runs to find
// it: about 1,400 instructions a read (bench/RESULTS.md, "Reads woken without a reactor
// operation"). A fast read keeps its handler in a table of the worker's own, indexed by
// descriptor. The socket stays registered with Asio's reactor as before; the reactor's
// epoll_wait (Sluice's --wrap=epoll_wait, raw_syscalls.cpp) hands the events of descriptors
// with a fast read waiting to this table instead, noting on the reactor's descriptor state what
// the reactor would have noted, and one posted call per wake-up reads and completes them.
//
//   auto [ec, n] = co_await net::async_read_fast(sock, asio::buffer(buf), net::await_op);
//
// The read is async_read_some's: the same results, the same "try at once" rule (it tries when
// the last event left the socket readable, and wait_first() applies to it; except after a read
// that emptied the socket with no sign of the peer's end, see fast_reads.cpp), cancellation through
// the handler's cancellation slot (operator|| of awaitables). Rules:
// - Only on the thread of the socket's io_context (one thread each, as net::Runtime runs them).
// - One read at a time per socket, fast or Asio's: a fast read while Asio waits on the socket
//   itself, or on another reactor than Boost 1.81's epoll, is simply Asio's async_read_some.
// - sock.cancel() and sock.close() do not reach a fast read: use cancel_reads() and
//   close_socket(), which do both. A fast read left waiting on a closed socket never ends.
#pragma once

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <sys/epoll.h>

#include "src/net/held_handler.hpp"

#include <cstddef>
#include <cstdint>

namespace sluice::net {

// False where the reactor is not the one this knows: every read is then Asio's own.
extern const bool kFastReadsWork;

namespace fast_reads {

// The handler of a read while it waits (held_handler.hpp).
using HeldHandler = net::HeldHandler<boost::system::error_code, std::size_t>;

struct Pending;  // a fast read that waits (fast_reads.cpp)

// A fast read of `b` on `s` made ready to start, or null when this read must be Asio's own.
Pending* prepare(boost::asio::ip::tcp::socket& s, boost::asio::mutable_buffer b);
HeldHandler& handler_of(Pending* p);
// Fast reads the calling thread completed so far (Asio's reads in their place not counted).
std::uint64_t completed();
// Tries of the calling thread's fast reads that found nothing (EAGAIN) so far.
std::uint64_t failed_tries();
// Starts it (its handler held): it tries the socket at once when the reactor says it may
// succeed, and otherwise waits in the table.
void begin(Pending* p);
// Names a read for its cancellation: its descriptor and a number no other read of the thread
// has had. A cancellation that comes after the read ended finds another number, or none.
struct ReadId {
  int fd;
  std::uint64_t serial;
};
ReadId id_of(const Pending* p);
// Cancellation through a handler's slot: ends the read with operation_aborted, unless it ended
// or took its bytes already.
void cancel(ReadId id);

struct Canceller {
  ReadId id;
  void operator()(boost::asio::cancellation_type_t type) const {
    if (type != boost::asio::cancellation_type::none) cancel(id);
  }
};

struct Initiate {
  template <typename Handler>
  void operator()(Handler&& h, boost::asio::ip::tcp::socket* s, boost::asio::mutable_buffer b) const {
    Pending* p = prepare(*s, b);
    if (!p) return s->async_read_some(b, std::forward<Handler>(h));
    auto slot = boost::asio::get_associated_cancellation_slot(h);
    if (slot.is_connected()) slot.template emplace<Canceller>(Canceller{id_of(p)});
    handler_of(p).hold(std::forward<Handler>(h));
    begin(p);
  }
};

// The worker's epoll events, filtered (raw_syscalls.cpp's epoll_wait): those of descriptors
// with a fast read waiting go to the table; returns how many are left for Asio's reactor.
int filter_events(int epfd, epoll_event* events, int n);

}  // namespace fast_reads

template <typename Token>
auto async_read_fast(boost::asio::ip::tcp::socket& s, boost::asio::mutable_buffer b, Token&& token) {
  return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(fast_reads::Initiate{}, token,
                                                                                          &s, b);
}

// Ends every read waiting on `s`, fast or Asio's (operation_aborted, posted).
void cancel_reads(boost::asio::ip::tcp::socket& s, boost::system::error_code& ec);
// Closes `s` after ending its fast read, if one waits (Asio's own end with the close).
void close_socket(boost::asio::ip::tcp::socket& s, boost::system::error_code& ec);

}  // namespace sluice::net
