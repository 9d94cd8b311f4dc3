// The parts of Asio's epoll reactor (Boost 1.81) that Sluice reads and writes directly, for
// reads that wait first (read_wait.hpp) and reads woken without a reactor operation
// (fast_reads.hpp). Everything here is for the calling thread's own io_context (one thread
// each, as net::Runtime runs them): the reactor's per-descriptor state is touched without its
// lock. Where the reactor is not the one this knows (another Boost), kReactorKnown is false and
// callers keep to Asio's public interface.
// Inline, for the epoll filter's sake (a few instructions per event); only net/'s own .cpp files
// include it. Private members are reached through pointers to members named in explicit
// instantiations, where access is not checked (the tags are per translation unit); the socket's
// implementation (protected in basic_socket) through a pointer to member formed in a derived
// class.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/version.hpp>

#include <cstddef>
#include <cstdint>

// Asio's io_uring backend (BOOST_ASIO_HAS_IO_URING with BOOST_ASIO_DISABLE_EPOLL) is refused: on
// Boost 1.81 and Linux 6.18 it cost 1.5x the CPU per transaction of epoll, and under pgbench the
// process's heap was corrupted within seconds (bench/RESULTS.md, "Asio's io_uring backend"; the
// cause was not found: there a read runs in the kernel after it starts, and Sluice mixes its own
// non-blocking reads with Asio's operations on one socket). SLUICE_REACTOR_FALLBACK builds epoll
// without the hooks below, to measure what they buy (the unit tests that check them fail there).
#ifdef BOOST_ASIO_HAS_IO_URING_AS_DEFAULT
#error "Asio's io_uring backend is not supported (see src/net/asio_reactor.hpp)"
#endif

#if BOOST_VERSION == 108100 && defined(BOOST_ASIO_HAS_EPOLL) && !defined(SLUICE_REACTOR_FALLBACK)
#define SLUICE_REACTOR_KNOWN 1
#include <sys/epoll.h>

#include <boost/asio/detail/epoll_reactor.hpp>
#endif

namespace sluice::net::reactor {

// The reactor's state for one descriptor (opaque here): what its epoll events point to.
struct State;

#ifdef SLUICE_REACTOR_KNOWN

inline constexpr bool kReactorKnown = true;

namespace {

using Reactor = boost::asio::detail::epoll_reactor;
using Native = Reactor::descriptor_state;

struct SocketAccess : boost::asio::ip::tcp::socket {
  static auto& impl(boost::asio::ip::tcp::socket& s) { return s.*(&SocketAccess::impl_); }
};

// One tag per private member; Expose's friend function returns the member pointer.
struct EpollFdTag {
  friend constexpr auto member(EpollFdTag);
};
struct ReactorTag {
  friend constexpr auto member(ReactorTag);
};
struct DescriptorTag {
  friend constexpr auto member(DescriptorTag);
};
struct OpsTag {
  friend constexpr auto member(OpsTag);
};
struct SpeculativeTag {
  friend constexpr auto member(SpeculativeTag);
};
template <auto Member, typename Tag>
struct Expose {
  friend constexpr auto member(Tag) { return Member; }
};
template struct Expose<&Reactor::epoll_fd_, EpollFdTag>;
template struct Expose<&Native::reactor_, ReactorTag>;
template struct Expose<&Native::descriptor_, DescriptorTag>;
template struct Expose<&Native::op_queue_, OpsTag>;
template struct Expose<&Native::try_speculative_, SpeculativeTag>;

inline Native* native(State* st) { return reinterpret_cast<Native*>(st); }
inline const Native* native(const State* st) { return reinterpret_cast<const Native*>(st); }

}  // namespace

// The io_context's epoll descriptor.
inline int epoll_fd(boost::asio::io_context& ctx) {
  return boost::asio::use_service<Reactor>(ctx).*member(EpollFdTag{});
}
// The reactor object itself (its address, and its extent: its interrupter's and timer's epoll
// events point inside it), and the reactor a descriptor's state belongs to.
inline const void* address(boost::asio::io_context& ctx) { return &boost::asio::use_service<Reactor>(ctx); }
inline constexpr std::size_t kExtent = sizeof(Reactor);
inline const void* reactor_of(const State* st) { return native(st)->*member(ReactorTag{}); }

// The socket's state in the reactor, or null (not open, or not registered).
inline State* state_of(boost::asio::ip::tcp::socket& s) {
  return reinterpret_cast<State*>(SocketAccess::impl(s).get_implementation().reactor_data_);
}
inline int descriptor(const State* st) { return native(st)->*member(DescriptorTag{}); }
// Whether Asio has an operation of its own waiting on the descriptor (a read, write or wait).
inline bool has_operations(const State* st) {
  const auto& ops = native(st)->*member(OpsTag{});
  return !ops[0].empty() || !ops[1].empty() || !ops[2].empty();
}
// The reactor's "try the read at once" flag (set by a readiness event, cleared by a read that
// emptied the socket).
inline bool read_may_succeed(const State* st) { return (native(st)->*member(SpeculativeTag{}))[Reactor::read_op]; }
inline void set_read_may_succeed(State* st, bool v) { (native(st)->*member(SpeculativeTag{}))[Reactor::read_op] = v; }
// Sets Asio's "the user made it non-blocking" flag on the socket, as non_blocking(true) does
// after its ioctl, without the ioctl: for a descriptor whose open file is non-blocking already.
inline bool note_user_non_blocking(boost::asio::ip::tcp::socket& s) {
  SocketAccess::impl(s).get_implementation().state_ |= boost::asio::detail::socket_ops::user_set_non_blocking;
  return true;
}
// What the reactor would note when an epoll event with no operation waiting reaches it: each
// kind of operation the event readies tries at once next time.
inline void note_readiness(State* st, std::uint32_t events) {
  auto& tries = native(st)->*member(SpeculativeTag{});
  const std::uint32_t any = EPOLLERR | EPOLLHUP;
  if (events & (EPOLLIN | any)) tries[Reactor::read_op] = true;
  if (events & (EPOLLOUT | any)) tries[Reactor::write_op] = true;
  if (events & (EPOLLPRI | any)) tries[Reactor::except_op] = true;
}

#else

inline constexpr bool kReactorKnown = false;
inline void set_read_may_succeed(State*, bool) {}
inline State* state_of(boost::asio::ip::tcp::socket&) { return nullptr; }
inline bool note_user_non_blocking(boost::asio::ip::tcp::socket&) { return false; }

#endif

}  // namespace sluice::net::reactor
