// The sockets of parked clients (frontend/common/admission.hpp), per worker: each leaves Asio's
// reactor, whose per-descriptor state and wait operation cost about 400 bytes a client, for one
// epoll set of the worker's own that Asio watches as a single descriptor. A parked socket costs
// the waiter its owner makes, and the kernel's entry.
// An io_context service: the waiters still parked when the worker's io_context shuts down are
// destroyed then, as Asio destroys the handlers of its own pending operations.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <memory>
#include <utility>

namespace sluice::net {

class ParkedWaits : public boost::asio::execution_context::service {
 public:
  class Waiter {
   public:
    virtual ~Waiter();  // closes a descriptor given back and never taken
    // The wait ended: the socket is readable or closed by the peer (ec clear), or unpark() ended
    // it (operation_aborted). The socket is back in Asio's reactor, non-blocking.
    virtual void fire(boost::system::error_code ec) = 0;
    // The first bytes waiting on a socket that became readable (peeked, at most kPeek): true
    // when they are all the client will say, a goodbye that needs no answer (PostgreSQL's
    // Terminate, MySQL's COM_QUIT). The socket is then closed here and fire() gets eof: a
    // client that leaves while parked never goes back into Asio's reactor (whose per-descriptor
    // state, once made, is kept for good).
    virtual bool farewell(const unsigned char* /*bytes*/, std::size_t /*n*/) const { return false; }
    static constexpr std::size_t kPeek = 16;

   protected:
    // After forget_socket(): the descriptor the wait gave back (-1 when it closed it), taken
    // once, and its family.
    int take_descriptor() { return std::exchange(kept_fd_, -1); }
    bool v6() const { return v6_; }

   private:
    friend class ParkedWaits;
    boost::asio::ip::tcp::socket* sock_ = nullptr;  // null: the descriptor goes back to kept_fd_
    Waiter *prev_ = nullptr, *next_ = nullptr;      // the service's list of parked waiters
    int fd_ = -1;                                   // -1: not parked (any more)
    int kept_fd_ = -1;
    bool v6_ = false;
    bool non_blocking_ = false;  // sock_ was non-blocking when parked (its descriptor stays so)
  };

  using key_type = ParkedWaits;
  static inline boost::asio::execution_context::id id;
  explicit ParkedWaits(boost::asio::execution_context& ctx);
  ~ParkedWaits() override;

  // The service of the io_context behind `ex`.
  static ParkedWaits& of(const boost::asio::any_io_executor& ex);

  // Waits for `sock` (its owner's, non-blocking, no operation pending) to become readable: its
  // descriptor leaves Asio's reactor until then, or until unpark(). Returns the waiter (owned here
  // until it fires) as the handle for unpark(), or null when the socket could not be parked: then
  // `w` is untouched and the socket as it was.
  Waiter* park(boost::asio::ip::tcp::socket& sock, std::unique_ptr<Waiter>& w);
  // The same for a descriptor no socket object holds (a sleeping session's, non-blocking): when
  // the wait ends it stays with the waiter (Waiter::take_descriptor). Null when it could not be
  // parked: `w` and the descriptor are then the caller's again.
  Waiter* park_descriptor(int fd, bool v6, std::unique_ptr<Waiter>& w);
  // Ends a parked wait now: the socket is back in its object at once, and fire(operation_aborted)
  // is posted. Nothing when it already ended.
  void unpark(Waiter* w);
  // Ends a parked wait without firing it: the socket is back in its object (or the descriptor
  // with the waiter), and the caller owns `w` again. False when the wait had already ended
  // (then `w` may be gone: the caller must know it is not, e.g. through its session).
  bool take_back(Waiter* w) { return w && release(w); }
  std::size_t parked() const { return count_; }

 private:
  void shutdown() override;
  void arm();
  void ready();
  // Takes `w` out of the set and gives its socket back (or, `close_it`, closes it); true when
  // it was parked.
  bool release(Waiter* w, bool close_it = false);
  // The client left (its end of the connection, or a farewell, is all that waits).
  static bool leaving(const Waiter& w);

  boost::asio::posix::stream_descriptor watch_;
  Waiter* head_ = nullptr;
  std::size_t count_ = 0;
  bool armed_ = false;
};

}  // namespace sluice::net
