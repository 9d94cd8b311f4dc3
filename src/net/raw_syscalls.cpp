// libc's recv() and epoll_wait() are cancellation points: each call switches asynchronous thread
// cancellation on and off around its system call (about 35 instructions a call), and Asio's
// reactor makes two of each per proxied transaction. Sluice never cancels a thread. Its
// executables link with --wrap=recv and --wrap=epoll_wait (CMakeLists.txt, on sluice_core), so
// the calls in Sluice's own code (Asio is compiled into it) come here and make the system call
// directly, as net::send_raw does for sends; shared libraries keep libc's. The reactor's epoll
// events pass through net/fast_reads.hpp's filter on the way, and its registrations
// (--wrap=epoll_ctl) ask for EPOLLRDHUP too.
#include "src/net/fast_reads.hpp"
#include "src/observe/loop_clock.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>

extern "C" ssize_t __wrap_recv(int fd, void* buf, size_t n, int flags) {
  return ::syscall(SYS_recvfrom, fd, buf, n, flags, nullptr, nullptr);
}

extern "C" int __real_epoll_ctl(int epfd, int op, int fd, struct epoll_event* ev);

// Asio's reactor registers its descriptors edge-triggered for reading; Sluice adds EPOLLRDHUP, so
// that an event says whether the peer's end came with the bytes (fast_reads.cpp: a read that
// empties the socket then need not try again before the next event).
extern "C" int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event* ev) {
  constexpr std::uint32_t kEdgeRead = EPOLLIN | EPOLLET;
  if (ev && (op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) && (ev->events & kEdgeRead) == kEdgeRead) {
    epoll_event with_end = *ev;
    with_end.events |= EPOLLRDHUP;
    return __real_epoll_ctl(epfd, op, fd, &with_end);
  }
  return __real_epoll_ctl(epfd, op, fd, ev);
}

extern "C" int __wrap_epoll_wait(int epfd, struct epoll_event* events, int max_events, int timeout) {
  // epoll_pwait with no signal mask is epoll_wait (and the only one some architectures have).
  int n = static_cast<int>(::syscall(SYS_epoll_pwait, epfd, events, max_events, timeout, nullptr, _NSIG / 8));
  if (n >= 0) sluice::observe::tick();  // the worker's loop clock (observe/loop_clock.hpp)
  // The events of descriptors with a fast read waiting go to the worker's table instead. A turn
  // with no events is a turn too: what the last one passed to Asio has run since.
  return n >= 0 ? sluice::net::fast_reads::filter_events(epfd, events, n) : n;
}
