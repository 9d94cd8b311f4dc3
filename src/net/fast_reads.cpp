// Reads woken without a reactor operation (fast_reads.hpp): the worker's table, the filter on
// the reactor's epoll events, and the one posted call that completes the reads they woke.
#include "src/net/fast_reads.hpp"

#include "src/memory/slab.hpp"
#include "src/net/asio_reactor.hpp"

#include <sys/socket.h>

#include <boost/asio/error.hpp>

#include <algorithm>
#include <cerrno>
#include <vector>

#ifdef SLUICE_REACTOR_KNOWN
#include <boost/asio/detail/scheduler.hpp>
#endif

namespace sluice::net {

namespace asio = boost::asio;
using boost::system::error_code;

namespace fast_reads {

struct Pending {
  HeldHandler handler;
  reactor::State* state = nullptr;
  void* data = nullptr;
  std::size_t size = 0;
  int fd = -1;
  std::uint64_t gen = 0;  // the table's serial number of this read (ReadId)
  bool waiting = false;
  bool queued = false;   // in the table's list of reads to complete or try
  bool aborted = false;  // cancelled: ends with operation_aborted
  bool has_result = false;
  error_code ec;
  std::size_t n = 0;
};

}  // namespace fast_reads

const bool kFastReadsWork = reactor::kReactorKnown;

namespace {
thread_local std::uint64_t t_completed = 0;
thread_local std::uint64_t t_failed_tries = 0;
}

#ifdef SLUICE_REACTOR_KNOWN

namespace {

using fast_reads::Pending;

// The worker's table: an io_context service, reached from its thread through t_table.
class Table : public asio::execution_context::service {
 public:
  using key_type = Table;
  static inline asio::execution_context::id id;

  explicit Table(asio::execution_context& ctx)
      : service(ctx),
        ctx_(static_cast<asio::io_context&>(ctx)),
        scheduler_(asio::use_service<asio::detail::scheduler>(ctx)),
        epfd_(reactor::epoll_fd(ctx_)),
        reactor_(static_cast<const unsigned char*>(reactor::address(ctx_))),
        completer_(this) {}
  ~Table() override;

  const void* reactor() const { return reactor_; }
  int epfd() const { return epfd_; }

  Pending* prepare(reactor::State* st, asio::mutable_buffer b) {
    int fd = reactor::descriptor(st);
    if (fd < 0 || shut_down_) return nullptr;
    if (static_cast<std::size_t>(fd) >= by_fd_.size()) by_fd_.resize(static_cast<std::size_t>(fd) + 64, nullptr);
    if (by_fd_[fd]) return nullptr;  // a read waits already: Asio's would fail the same way
    Pending* p = take();
    p->state = st, p->fd = fd, p->data = b.data(), p->size = b.size();
    p->gen = ++serial_;
    return p;
  }

  void begin(Pending* p) {
    scheduler_.work_started();  // as Asio's own operations: the io_context runs while it waits
    ++waiting_;
    p->waiting = true;
    by_fd_[p->fd] = p;
    // It tries at once when the reactor says it may succeed, or when an event of this turn
    // went to Asio for the descriptor: the reactor's descriptor operation for it may not have
    // run yet, and with no operation of Asio's to perform it would wake nobody (read_wait.hpp's
    // wait_first() may even have cleared the flag since).
    bool seen = std::find(passed_.begin(), passed_.end(), p->fd) != passed_.end();
    if ((seen || reactor::read_may_succeed(p->state)) && try_read(p)) queue(p);
  }

  void cancel(Pending* p, std::uint64_t gen) {
    // A read that already took its bytes (its completion queued) completes with them, as an
    // Asio read whose completion is posted: the bytes are out of the socket.
    if (p->gen != gen || !p->waiting || p->aborted || p->has_result) return;
    p->aborted = true;
    queue(p);
  }

  // The read waiting on `fd` (with that serial number, when one is given).
  void cancel_fd(int fd, std::uint64_t serial = 0) {
    if (fd >= 0 && static_cast<std::size_t>(fd) < by_fd_.size())
      if (Pending* p = by_fd_[fd]; p && (serial == 0 || p->gen == serial)) cancel(p, p->gen);
  }

  int filter(epoll_event* ev, int n) {
    passed_.clear();
    int kept = 0;
    bool woke = false;
    for (int i = 0; i < n; ++i) {
      auto* ptr = static_cast<unsigned char*>(ev[i].data.ptr);
      if (ptr < reactor_ || ptr >= reactor_ + reactor::kExtent) {
        auto* st = reinterpret_cast<reactor::State*>(ptr);
        // Noted now, not only when the reactor's descriptor operation runs: a fast read that
        // begins before then (a handler of this same turn) must see that it may succeed, or it
        // would wait for an edge that already came.
        reactor::note_readiness(st, ev[i].events);
        int fd = reactor::descriptor(st);
        note_seen(fd, st, ev[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR));
        if (fd >= 0 && static_cast<std::size_t>(fd) < by_fd_.size() && (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
          if (Pending* p = by_fd_[fd]; p && p->state == st) {
            woke |= enqueue(p);
            if (!reactor::has_operations(st)) continue;  // nothing of Asio's waits on it: the table's alone
          }
        passed_.push_back(fd);  // goes to Asio's reactor this turn
      }
      ev[kept++] = ev[i];
    }
    if (woke) {
      // A wake-up that was the table's alone completes its reads here, in the reactor's turn
      // (nothing of Asio's is held then: the reactor waits unlocked, and what the handlers post
      // goes to the thread's private queue, as from any handler). With events left for Asio,
      // whose descriptor states a handler could close before the reactor reads them, the reads
      // complete in a posted call after them.
      if (kept == 0 && !posted_) run_queued();
      else post();
    }
    return kept;
  }

 private:
  // The posted call: a scheduler operation of the table's own, queued at most once.
  struct Completer : asio::detail::scheduler_operation {
    explicit Completer(Table* t) : scheduler_operation(&Completer::complete), table(t) {}
    static void complete(void* owner, scheduler_operation* base, const error_code&, std::size_t) {
      Table* t = static_cast<Completer*>(base)->table;
      t->posted_ = false;
      if (owner) t->run_queued();  // else the scheduler is shutting down and destroys its queue
    }
    Table* table;
  };

  void shutdown() override;

  // Reads are made when they start and kept for reuse, a few: the table holds no memory for
  // the idle clients of a burst once they have parked.
  static constexpr std::size_t kKeep = 64;
  // Records beyond those come from a slab of their own (memory/slab.hpp): made during a burst
  // of logins, they would otherwise sit between the sessions' own blocks and keep those pages
  // after they go.
  static_assert(alignof(Pending) <= memory::Slab::kGranule && sizeof(Pending) <= memory::Slab::kMaxBlock);
  static memory::Slab& slab() {
    static memory::Slab& s = memory::Slab::of_size(sizeof(Pending));
    return s;
  }
  static void destroy(Pending* p) {
    p->~Pending();
    slab().deallocate(p);
  }
  Pending* take() {
    if (free_.empty()) return new (slab().allocate()) Pending;
    Pending* p = free_.back();
    free_.pop_back();
    return p;
  }
  void recycle(Pending* p) {
    if (free_.size() < kKeep) free_.push_back(p);
    else destroy(p);
  }

  // What this worker's events said of each descriptor: the reactor's state they were for, and
  // (the low bit) whether the peer's end or an error came with one since. A read that did not
  // fill its buffer emptied the socket of bytes; if no event for it said that the peer's end
  // came too, nothing is left to read and the next read waits for an event (no failed recv):
  // bytes or the end that come later make a new edge (the reactor's sockets are registered with
  // EPOLLRDHUP, raw_syscalls.cpp). Anything unknown (no event seen here, another state, the
  // records given back) keeps Asio's rule: the next read tries at once.
  std::vector<std::uintptr_t> seen_;
  // Kept for the descriptors by_fd_ covers (those fast reads were made on), and given back with
  // it: a burst of descriptors read only by Asio (a parked client's wake-up, its end) grows
  // neither.
  void note_seen(int fd, reactor::State* st, bool end) {
    if (fd < 0 || static_cast<std::size_t>(fd) >= by_fd_.size()) return;
    if (static_cast<std::size_t>(fd) >= seen_.size()) seen_.resize(by_fd_.size(), 0);
    auto key = reinterpret_cast<std::uintptr_t>(st);
    std::uintptr_t& rec = seen_[static_cast<std::size_t>(fd)];
    if ((rec & ~std::uintptr_t(1)) != key) rec = key;  // another descriptor state: a record of its own
    if (end) rec |= 1;                                 // and it stays said
  }
  bool nothing_left(const Pending* p) const {
    auto fd = static_cast<std::size_t>(p->fd);
    return fd < seen_.size() && seen_[fd] == reinterpret_cast<std::uintptr_t>(p->state);
  }
  void forget_seen(int fd) {
    if (fd >= 0 && static_cast<std::size_t>(fd) < seen_.size()) seen_[static_cast<std::size_t>(fd)] = 0;
  }

  // A read on the socket now: true when it ended (bytes, the end of the stream, an error).
  bool try_read(Pending* p) {
    ssize_t r;
    do r = ::recv(p->fd, p->data, p->size, MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      ++t_failed_tries;
      reactor::set_read_may_succeed(p->state, false);
      return false;
    }
    p->has_result = true;
    if (r < 0) {
      p->ec = error_code(errno, asio::error::get_system_category());
      p->n = 0;
    } else if (r == 0 && p->size > 0) {
      p->ec = asio::error::eof;
      p->n = 0;
    } else {
      p->ec = {};
      p->n = static_cast<std::size_t>(r);
    }
    // As Asio's read, the end of the stream or an error stops the next read from trying at
    // once. A read that did not fill its buffer may still have left the peer's FIN (or reset)
    // behind it, which came with the same readiness event (no new one will come for it): it
    // stops the next try only when the events said no such end came (note_seen).
    if (r <= 0) {
      reactor::set_read_may_succeed(p->state, false);
      forget_seen(p->fd);
    } else if (static_cast<std::size_t>(r) < p->size && nothing_left(p)) {
      reactor::set_read_may_succeed(p->state, false);
    }
    return true;
  }

  // Into the list of reads to complete or try; true when it was not there yet.
  bool enqueue(Pending* p) {
    if (p->queued) return false;
    p->queued = true;
    queued_.push_back({p, p->gen});
    return true;
  }
  void post() {
    if (posted_) return;
    posted_ = true;
    scheduler_.post_immediate_completion(&completer_, true);
  }
  void queue(Pending* p) {
    if (enqueue(p)) post();
  }

  void run_queued() {
    running_.swap(queued_);
    for (auto [p, gen] : running_) {
      if (p->gen != gen || !p->waiting) continue;
      p->queued = false;
      if (p->aborted) finish(p, asio::error::operation_aborted, 0);
      else if (p->has_result || try_read(p)) finish(p, p->ec, p->n);
    }
    running_.clear();
  }

  void finish(Pending* p, error_code ec, std::size_t n) {
    by_fd_[p->fd] = nullptr;  // the handler may start the next read on the descriptor at once
    p->waiting = p->aborted = p->has_result = false;
    p->state = nullptr;
    ++t_completed;
    p->handler.call(ec, n);
    recycle(p);  // nothing refers to it any more: its one queue entry was this one
    ++ended_since_shrink_;
    if (--waiting_ == 0 && ended_since_shrink_ >= kShrinkAfter && by_fd_.size() > kShrinkAbove) {
      std::vector<Pending*>().swap(by_fd_);
      std::vector<std::uintptr_t>().swap(seen_);  // unknown again: reads try at once until events come
      ended_since_shrink_ = 0;
    }
    scheduler_.work_finished();
  }

  asio::io_context& ctx_;
  asio::detail::scheduler& scheduler_;
  int epfd_;
  const unsigned char* reactor_;
  Completer completer_;
  bool posted_ = false;
  bool shut_down_ = false;
  std::vector<Pending*> by_fd_;
  // The descriptors whose events of the reactor's last turn (epoll_wait) went to Asio: their
  // descriptor operations run before the next turn. At most one epoll_wait's worth.
  std::vector<int> passed_;
  // Reads waiting now, and reads ended since by_fd_ was last given back: a table grown for a
  // burst of clients is given back once none waits (they have parked or left), but not more
  // often than once per kShrinkAfter reads, so that growing it again costs a read next to
  // nothing.
  static constexpr std::size_t kShrinkAbove = 4096, kShrinkAfter = 1024;
  std::size_t waiting_ = 0, ended_since_shrink_ = 0;
  std::uint64_t serial_ = 0;
  std::vector<Pending*> free_;
  std::vector<std::pair<Pending*, std::uint64_t>> queued_, running_;
};

thread_local Table* t_table = nullptr;

Table::~Table() {
  if (t_table == this) t_table = nullptr;
  for (Pending* p : free_) destroy(p);
}

void Table::shutdown() {
  // The io_context goes: waiting reads are dropped with their handlers (and the coroutines
  // these hold), as Asio destroys its own pending operations.
  shut_down_ = true;
  for (Pending*& slot : by_fd_) {
    Pending* p = std::exchange(slot, nullptr);
    if (!p) continue;
    p->waiting = false;
    p->handler.drop();
    destroy(p);
  }
  queued_.clear();
  if (t_table == this) t_table = nullptr;
}

// The calling thread's table when `st` is a descriptor of the reactor of the io_context this
// thread runs; null for a socket of another worker's (a server connection not moved to this
// worker yet): its read is Asio's, which completes through the reader's executor.
Table* table_for(asio::ip::tcp::socket& s, reactor::State* st) {
  Table* t = t_table;
  if (t && t->reactor() == reactor::reactor_of(st)) return t;
  auto& ctx = static_cast<asio::io_context&>(asio::query(s.get_executor(), asio::execution::context));
  if (!ctx.get_executor().running_in_this_thread()) return nullptr;
  t = &asio::use_service<Table>(ctx);
  if (t->reactor() != reactor::reactor_of(st)) return nullptr;
  t_table = t;
  return t;
}

Table& owner(const Pending*) { return *t_table; }  // a pending read is always the thread's

}  // namespace

namespace fast_reads {

Pending* prepare(asio::ip::tcp::socket& s, asio::mutable_buffer b) {
  reactor::State* st = reactor::state_of(s);
  if (!st || reactor::has_operations(st)) return nullptr;
  Table* t = table_for(s, st);
  return t ? t->prepare(st, b) : nullptr;
}

HeldHandler& handler_of(Pending* p) { return p->handler; }
ReadId id_of(const Pending* p) { return {p->fd, p->gen}; }
std::uint64_t completed() { return t_completed; }
std::uint64_t failed_tries() { return t_failed_tries; }
void begin(Pending* p) { owner(p).begin(p); }
void cancel(ReadId id) {
  if (t_table) t_table->cancel_fd(id.fd, id.serial);
}

int filter_events(int epfd, epoll_event* events, int n) {
  Table* t = t_table;
  return t && epfd == t->epfd() ? t->filter(events, n) : n;
}

}  // namespace fast_reads

void cancel_reads(asio::ip::tcp::socket& s, error_code& ec) {
  if (reactor::State* st = reactor::state_of(s); st && t_table && t_table->reactor() == reactor::reactor_of(st))
    t_table->cancel_fd(reactor::descriptor(st));
  s.cancel(ec);
}

#else  // another reactor: every read is Asio's

namespace fast_reads {

Pending* prepare(asio::ip::tcp::socket&, asio::mutable_buffer) { return nullptr; }
HeldHandler& handler_of(Pending* p) { return p->handler; }
std::uint64_t completed() { return t_completed; }
std::uint64_t failed_tries() { return t_failed_tries; }
ReadId id_of(const Pending* p) { return {p->fd, p->gen}; }
void begin(Pending*) {}
void cancel(ReadId) {}
int filter_events(int, epoll_event*, int n) { return n; }

}  // namespace fast_reads

void cancel_reads(asio::ip::tcp::socket& s, error_code& ec) { s.cancel(ec); }

#endif

void close_socket(asio::ip::tcp::socket& s, error_code& ec) {
  error_code ignored;
  if (s.is_open()) cancel_reads(s, ignored);
  s.close(ec);
}

}  // namespace sluice::net
