// The sockets of parked clients in the worker's own epoll set (parked_waits.hpp).
#include "src/net/parked_waits.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>

#include <array>
#include <cerrno>
#include <system_error>

#include "src/net/socket_flags.hpp"

namespace sluice::net {

namespace asio = boost::asio;
using asio::ip::tcp;

ParkedWaits::ParkedWaits(asio::execution_context& ctx)
    : asio::execution_context::service(ctx), watch_(static_cast<asio::io_context&>(ctx)) {
  int efd = ::epoll_create1(EPOLL_CLOEXEC);
  if (efd < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  watch_.assign(efd);
}

ParkedWaits::~ParkedWaits() { shutdown(); }

ParkedWaits::Waiter::~Waiter() {
  if (kept_fd_ >= 0) ::close(kept_fd_);
}

ParkedWaits& ParkedWaits::of(const asio::any_io_executor& ex) {
  return asio::use_service<ParkedWaits>(asio::query(ex, asio::execution::context));
}

ParkedWaits::Waiter* ParkedWaits::park(tcp::socket& sock, std::unique_ptr<Waiter>& w) {
  boost::system::error_code ec;
  auto local = sock.local_endpoint(ec);
  if (ec) return nullptr;
  bool v6 = local.address().is_v6();
  const bool non_blocking = sock.non_blocking();
  int fd = sock.release(ec);
  if (ec || fd < 0) return nullptr;
  Waiter* p = park_descriptor(fd, v6, w);
  if (!p) {
    sock.assign(v6 ? tcp::v6() : tcp::v4(), fd, ec);
    set_non_blocking(sock, non_blocking, ec);
    return nullptr;
  }
  p->sock_ = &sock;
  p->non_blocking_ = non_blocking;
  return p;
}

ParkedWaits::Waiter* ParkedWaits::park_descriptor(int fd, bool v6, std::unique_ptr<Waiter>& w) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
  ev.data.ptr = w.get();
  if (::epoll_ctl(watch_.native_handle(), EPOLL_CTL_ADD, fd, &ev) != 0) return nullptr;
  Waiter* p = w.release();
  p->sock_ = nullptr;
  p->non_blocking_ = false;
  p->fd_ = fd;
  p->v6_ = v6;
  p->next_ = head_;
  if (head_) head_->prev_ = p;
  head_ = p;
  ++count_;
  arm();
  return p;
}

bool ParkedWaits::release(Waiter* w, bool close_it) {
  if (w->fd_ < 0) return false;
  ::epoll_ctl(watch_.native_handle(), EPOLL_CTL_DEL, w->fd_, nullptr);
  boost::system::error_code ec;
  if (!w->sock_) {
    if (close_it) ::close(w->fd_);
    else w->kept_fd_ = w->fd_;  // still non-blocking
  } else {
    if (!close_it) w->sock_->assign(w->v6_ ? tcp::v6() : tcp::v4(), w->fd_, ec);
    if (close_it || ec) ::close(w->fd_);  // the socket stays closed: the session's next read fails
    else set_non_blocking(*w->sock_, w->non_blocking_, ec);
  }
  w->fd_ = -1;
  if (w->prev_) w->prev_->next_ = w->next_;
  else head_ = w->next_;
  if (w->next_) w->next_->prev_ = w->prev_;
  w->prev_ = w->next_ = nullptr;
  --count_;
  return true;
}

bool ParkedWaits::leaving(const Waiter& w) {
  std::array<unsigned char, Waiter::kPeek> b;
  ssize_t n = ::recv(w.fd_, b.data(), b.size(), MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return true;                                                      // the peer closed
  if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;  // reset: gone too
  if (!w.farewell(b.data(), static_cast<std::size_t>(n))) return false;
  // Read, so that the close is a FIN: unread bytes would make it a reset.
  (void)::recv(w.fd_, b.data(), static_cast<std::size_t>(n), MSG_DONTWAIT);
  return true;
}

void ParkedWaits::unpark(Waiter* w) {
  if (!w || !release(w)) return;
  asio::post(watch_.get_executor(), [own = std::unique_ptr<Waiter>(w)] { own->fire(asio::error::operation_aborted); });
}

void ParkedWaits::arm() {
  if (armed_ || count_ == 0) return;
  armed_ = true;
  watch_.async_wait(asio::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
    armed_ = false;
    if (ec) return;  // cancelled: the service is shutting down
    ready();
    arm();
  });
}

void ParkedWaits::ready() {
  std::array<epoll_event, 64> evs;
  for (;;) {
    int n = ::epoll_wait(watch_.native_handle(), evs.data(), static_cast<int>(evs.size()), 0);
    if (n <= 0) return;
    for (int i = 0; i < n; ++i) {
      auto* w = static_cast<Waiter*>(evs[static_cast<std::size_t>(i)].data.ptr);
      if (w->fd_ < 0) continue;
      bool gone = leaving(*w);
      if (!release(w, gone)) continue;
      std::unique_ptr<Waiter> own(w);
      own->fire(gone ? boost::system::error_code(asio::error::eof) : boost::system::error_code());
    }
    if (n < static_cast<int>(evs.size())) return;
  }
}

void ParkedWaits::shutdown() {
  while (head_) {
    Waiter* w = head_;
    release(w);
    delete w;
  }
  boost::system::error_code ec;
  watch_.close(ec);
}

}  // namespace sluice::net
