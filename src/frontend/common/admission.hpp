// A client's way in, the same on both protocols: counted against max_client_conn (refused with
// the protocol's own words past it), its session run to the end with internal errors logged, and
// the server side of a TLS handshake.
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <unistd.h>

#include <concepts>
#include <optional>

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "src/access/rules.hpp"
#include "src/frontend/common/worker_sessions.hpp"
#include "src/memory/slab.hpp"
#include "src/net/parked_waits.hpp"
#include "src/net/proxy_intake.hpp"
#include "src/net/tls.hpp"
#include "src/observe/stats.hpp"
#include "src/state/context.hpp"

namespace sluice::frontend {

// A client's place under max_client_conn, and under [limits] max_connections_per_address:
// given back when this goes (after its session).
class ClientSlot {
 public:
  ClientSlot() = default;
  explicit ClientSlot(state::Context& ctx) : ctx_(&ctx) {}
  ClientSlot(ClientSlot&& o) noexcept : ctx_(std::exchange(o.ctx_, nullptr)), address_(std::move(o.address_)) {}
  ClientSlot& operator=(ClientSlot&& o) noexcept {
    std::swap(ctx_, o.ctx_);
    std::swap(address_, o.address_);
    return *this;
  }
  ~ClientSlot() {
    if (ctx_) ctx_->clients.fetch_sub(1);
  }
  explicit operator bool() const { return ctx_ != nullptr; }
  void hold_address(access::Ticket t) { address_ = std::move(t); }
  state::Context* context() const { return ctx_; }

 private:
  state::Context* ctx_ = nullptr;
  access::Ticket address_;
};

// A slot for `sock` unless max_client_conn clients are already in; then `refusal` (the
// protocol's error) is written and the slot is empty.
boost::asio::awaitable<ClientSlot> admit(boost::asio::ip::tcp::socket& sock, state::Context& ctx,
                                         const std::string& refusal);

// How a listener's protocol turns clients away before its session starts.
struct Door {
  config::Protocol protocol = config::Protocol::Postgres;
  std::string too_many;  // past max_client_conn
  // The protocol's words for an [[access]] refusal that the client's address alone decides, or
  // null to leave every access decision to the session (PostgreSQL, whose clients speak first
  // and are refused after their startup packet, as pg_hba.conf does).
  std::string (*refused_by_address)(const access::Verdict&, std::string_view address) = nullptr;
  // The protocol's words for [limits] max_connections_per_address and
  // connections_per_second_per_address, sent at once (before the client's first byte is read).
  std::string (*refused_by_limit)(access::Limit limit, std::string_view address, std::uint32_t value) = nullptr;
};

// Who the client is (the listener's PROXY settings, net/proxy_intake.hpp), and whether the
// [[access]] rules already refuse that address: none (logged, the refusal written) when the
// connection goes no further. Past that, the address's [limits] (connections at once, new
// connections per second): the place is kept in `slot`.
boost::asio::awaitable<std::optional<net::Origin>> admit_origin(boost::asio::ip::tcp::socket& sock, state::Context& ctx,
                                                                const Door& door, ClientSlot& slot);

// At accept, before any session (net::AcceptScreen): true when [limits]
// connections_per_second_per_address already refuses this connection, its refusal (the
// protocol's words, `door`) then written without waiting and counted. A connection goes on to its
// session, and to admit() and admit_origin() in their order, when something they check first
// would answer it (max_client_conn, an [[access]] refusal by address), when its address may come
// in a PROXY header, and when the rate admits it: nothing is reserved here.
bool refuse_at_accept(int fd, const boost::asio::ip::tcp::endpoint& peer, state::Context& ctx, const Door& door);

void log_internal_error(const char* what, const std::exception& e);
void log_handed_over(std::uint64_t client_id);

// Parking: a session idle between transactions for a while ends its coroutines (run() or
// resume() returns true) and waits with a plain handler instead (wait_parked), which owns it: an
// idle client holds no coroutine frames. When the wait ends (bytes, a cancel, an error), woke()
// takes what it read and resume() goes on in a new coroutine.
namespace parking {

// Hibernation: a parked session with nothing in progress may go altogether. What it keeps for
// its client (its protocol's `Session::Keep`) waits with its descriptor in a Sleeper, which
// stands in for the session with the worker's janitor, the shutdown's kick and the console's
// KILL: each wakes it, and the session made again from what it kept does what it would have.
// A session class sleeps when it has:
//   std::optional<Keep> hibernate(int& fd, bool& v6);  // nullopt: not now; else its socket's
//                      // descriptor is in fd (v6: its family), and the session may go
//   Session(Keep&&, state::Context&, int fd, bool v6);  // fd -1: the client left while asleep
//   static constexpr const char* kWhat;  // names it in the log
// and Keep has `bool tick()` (a janitor period passed: true to wake), `client_id()`,
// `worker()`, `static bool farewell(bytes, n)` (as Waiter::farewell) and
// `forget(state::Context*)` (what the session's destructor would undo, for a keep never woken).
// The Context is the client slot's, not kept twice.
template <typename Session>
concept Hibernates = requires(Session& s, int& fd, bool& v6, const typename Session::Keep& k) {
  // The keep, and the client's descriptor released from the session's socket (and its family).
  { s.hibernate(fd, v6) } -> std::same_as<std::optional<typename Session::Keep>>;
  { k.worker() } -> std::same_as<boost::asio::io_context*>;  // the client's worker
  { Session::kWhat } -> std::convertible_to<const char*>;    // names it in the log
};

// Online upgrade (src/app/upgrade.hpp): a session class whose keep can go to the new process as
// a record (`handoff_record`), made again there by its protocol's adopt_client().
template <typename Session>
concept HandsOver = Hibernates<Session> && requires(const typename Session::Keep& k) {
  { Session::handoff_record(k) } -> std::same_as<std::string>;
  { Session::kProtocol } -> std::convertible_to<config::Protocol>;
};

// Hands the client of keep `k` (on descriptor `fd`) to the new process: true when it went (its
// descriptor here is closed, and what the keep held in this process is undone).
template <typename Session>
bool hand_over(state::Context& ctx, typename Session::Keep& k, int fd) {
  if (!ctx.hand_over) return false;
  std::string record = Session::handoff_record(k);
  if (!ctx.hand_over(Session::kProtocol, record, fd)) return false;
  log_handed_over(k.client_id());
  ::close(fd);
  k.forget(&ctx);
  return true;
}

// The same for a session class that goes as it is (no keep): `handoff_record()` (nullopt: not
// now), `handed_over()` once it went, and its socket as parking_socket().
template <typename Session>
concept HandsOverLive = !Hibernates<Session> && requires(Session & s) {
  { s.handoff_record() } -> std::same_as<std::optional<std::string>>;
  {s.handed_over()};
  { Session::kProtocol } -> std::convertible_to<config::Protocol>;
};

template <typename Session>
struct Parked {
  ClientSlot slot;  // declared first: given back after the session is gone
  std::unique_ptr<Session> session;
  const char* what;
};

// `sleep`: a session that hibernates goes (its keep waits in a Sleeper) if it can; otherwise
// the session itself waits (ParkedWaiter). Sessions park first without sleeping, and sleep
// once they have stayed parked for kSleepAfter (sleep_parked).
template <typename Session>
void park(Parked<Session> p, bool sleep = false);

template <typename Session>
boost::asio::awaitable<void> drive(Parked<Session> p, bool resumed) {
  bool parked = false;
  try {
    parked = resumed ? co_await p.session->resume() : co_await p.session->run();
  } catch (const std::exception& e) {
    log_internal_error(p.what, e);
  }
  if (parked) park(std::move(p));
}

// The parked wait: the session's socket waits in the worker's own epoll set (net/parked_waits.hpp);
// a socket that cannot go there waits with Asio.
template <typename Session>
struct ParkedWaiter final : net::ParkedWaits::Waiter {
  explicit ParkedWaiter(Parked<Session> parked) : p(std::move(parked)) {}
  void fire(boost::system::error_code ec) override {
    p.session->woke(ec, 0);
    auto ex = p.session->executor();
    boost::asio::co_spawn(ex, drive(std::move(p), true), boost::asio::detached);
  }
  bool farewell(const unsigned char* bytes, std::size_t n) const override { return p.session->farewell(bytes, n); }
  Parked<Session> p;
};

// A sleeping session: its parked wait and what it kept, in one object, registered with the
// worker's sessions in its place.
// Allocated in a slab (memory/slab.hpp): it lives as long as its client sleeps.
template <Hibernates Session>
struct Sleeper final : net::ParkedWaits::Waiter, TendedSession, memory::InSlab<Sleeper<Session>> {
  using Keep = typename Session::Keep;
  Sleeper(const boost::asio::any_io_executor& ex, Keep k, ClientSlot s)
      : TendedSession(ex), keep(std::move(k)), slot(std::move(s)) {}
  ~Sleeper() override { keep.forget(slot.context()); }
  // The wait ended (bytes, the client's end, or wake()): the session comes back and goes on.
  void fire(boost::system::error_code ec) override {
    parked = false;
    int fd = take_descriptor();
    std::unique_ptr<Session> session;
    try {
      session = std::make_unique<Session>(std::move(keep), *slot.context(), fd, v6());
    } catch (const std::exception& e) {
      log_internal_error(Session::kWhat, e);
      return;
    }
    session->woke(ec, 0);
    if (killed) session->kill();
    auto ex = session->executor();
    boost::asio::co_spawn(ex, drive(Parked<Session>{std::move(slot), std::move(session), Session::kWhat}, true),
                          boost::asio::detached);
  }
  bool farewell(const unsigned char* bytes, std::size_t n) const override { return Keep::farewell(bytes, n); }
  void janitor_tick() override {
    if (keep.tick()) wake();  // client_idle_timeout
  }
  void kick() override { wake(); }
  void kill() override {
    killed = true;
    wake();
  }
  std::uint64_t client_id() const override { return keep.client_id(); }
  // Ends the wait early: fire(operation_aborted) is posted.
  void wake() {
    if (std::exchange(parked, false)) net::ParkedWaits::of(keep.worker()->get_executor()).unpark(this);
  }
  Keep keep;
  ClientSlot slot;
  bool parked = false, killed = false;
};

template <typename Session>
void park(Parked<Session> p, bool sleep) {
  auto ex = p.session->executor();
  if constexpr (HandsOverLive<Session>) {
    state::Context* ctx = p.slot.context();
    if (ctx && ctx->upgrading.load(std::memory_order_acquire) && ctx->hand_over) {
      if (auto record = p.session->handoff_record();
          record && ctx->hand_over(Session::kProtocol, *record, p.session->parking_socket().native_handle())) {
        p.session->handed_over();
        p.session.reset();  // closes this process's copy of the descriptor; the client stays connected
        return;
      }
    }
  }
  if constexpr (Hibernates<Session>) {
    std::optional<typename Session::Keep> keep;
    int fd = -1;
    bool v6 = false;
    state::Context* ctx = p.slot.context();
    const bool moving = HandsOver<Session> && ctx && ctx->upgrading.load(std::memory_order_acquire);
    if (sleep || moving) keep = p.session->hibernate(fd, v6);
    if constexpr (HandsOver<Session>) {
      if (keep && moving && hand_over<Session>(*ctx, *keep, fd)) {
        p.session.reset();
        return;  // the slot goes with `p`
      }
    }
    if (keep) {
      p.session.reset();
      auto sleeper = std::make_unique<Sleeper<Session>>(ex, std::move(*keep), std::move(p.slot));
      Sleeper<Session>* z = sleeper.get();
      std::unique_ptr<net::ParkedWaits::Waiter> w = std::move(sleeper);
      if (net::ParkedWaits::of(ex).park_descriptor(fd, v6, w)) {
        z->parked = true;
        return;
      }
      // The worker's epoll set refused it: the session comes back and waits with Asio.
      p.slot = std::move(z->slot);
      p.session = std::make_unique<Session>(std::move(z->keep), *p.slot.context(), fd, v6);
      w.reset();
    }
  }
  Session& s = *p.session;
  std::unique_ptr<net::ParkedWaits::Waiter> w = std::make_unique<ParkedWaiter<Session>>(std::move(p));
  if (auto* handle = net::ParkedWaits::of(ex).park(s.parking_socket(), w)) {
    s.parked_as(handle);
    return;
  }
  p = std::move(static_cast<ParkedWaiter<Session>&>(*w).p);
  s.wait_parked([p = std::move(p)](boost::system::error_code ec, std::size_t n) mutable {
    p.session->woke(ec, n);
    auto ex = p.session->executor();
    boost::asio::co_spawn(ex, drive(std::move(p), true), boost::asio::detached);
  });
}

// A parked session that has stayed parked for kSleepAfter goes to sleep: its wait (`handle`, a
// ParkedWaiter's, still parked) is taken back and it parks again, sleeping. Posted by the
// session's janitor tick, outside the janitor's loop over the worker's sessions.
template <typename Session>
void sleep_parked(net::ParkedWaits::Waiter* handle, const boost::asio::any_io_executor& ex) {
  if (!net::ParkedWaits::of(ex).take_back(handle)) return;  // its wait has ended meanwhile
  std::unique_ptr<ParkedWaiter<Session>> w(static_cast<ParkedWaiter<Session>*>(handle));
  Parked<Session> p = std::move(w->p);
  w.reset();
  p.session->parked_as(nullptr);
  park(std::move(p), true);
}

}  // namespace parking

// Runs a session class constructed from (socket, context, origin) for `sock`, unless
// max_client_conn clients are already in, its PROXY header is missing or bad, or its address
// is refused (`door`, which outlives the coroutine: each protocol's is made once). The session may park (above); `what`
// names it in the log when it ends by an internal error.
template <typename Session>
boost::asio::awaitable<void> serve_admitted(boost::asio::ip::tcp::socket sock, state::Context& ctx, const Door& door,
                                            const char* what) {
  ClientSlot slot = co_await admit(sock, ctx, door.too_many);
  if (!slot) co_return;
  auto origin = co_await admit_origin(sock, ctx, door, slot);
  if (!origin) co_return;
  std::unique_ptr<Session> session;
  try {
    session = std::make_unique<Session>(std::move(sock), ctx, std::move(*origin));
  } catch (const std::exception& e) {
    log_internal_error(what, e);
    co_return;
  }
  // Built before the co_await: GCC 12 destroys an aggregate temporary in a co_await twice.
  parking::Parked<Session> parked{std::move(slot), std::move(session), what};
  co_await parking::drive(std::move(parked), false);
}

// The server side of a TLS handshake on `sock`: the stream, or null (logged) when it fails.
// Marks the client as on TLS (SHOW CLIENTS).
boost::asio::awaitable<std::unique_ptr<net::TlsStream>> accept_tls(boost::asio::ip::tcp::socket& sock,
                                                                   std::shared_ptr<boost::asio::ssl::context> tls,
                                                                   observe::ClientInfo& info);

// The console's KILL reaches this client on its worker (observe::kill_on_worker, kill_local()).
void make_killable(observe::ClientInfo& info, const boost::asio::any_io_executor& ex);
// A goodbye (the protocol's error, framed) written without waiting; skipped in the middle of
// another TLS record. The caller closes the connection next.
void write_goodbye(boost::asio::ip::tcp::socket& sock, net::TlsStream* tls, const std::string& out);

}  // namespace sluice::frontend
