// The PostgreSQL client session: one object per client connection, its state, and its stages,
// each defined in its own file: session.cpp (lifecycle), sleep.cpp (a parked session that goes
// and comes back), login.cpp (startup, authentication, login), relay_loop.cpp (the transaction
// loop: serve between transactions, and the attached phase), attach.cpp (route, attach,
// detach), cache.cpp (the result cache step), pooled_state.cpp (pins and resets in transaction
// pooling), listen.cpp (LISTEN carried by the pool's listening connection). The protocol
// itself is followed by the sans-io Relay (relay.hpp); the parts that come and go with the
// session's state are in session_parts.hpp.
#pragma once

#include "src/frontend/postgres/session.hpp"

#include <boost/asio/deferred.hpp>

#include <array>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/parallel_group.hpp>

#include "src/frontend/common/client_log.hpp"
#include "src/frontend/common/session_core.hpp"
#include "src/frontend/common/on_demand.hpp"
#include "src/frontend/common/worker_sessions.hpp"
#include "src/frontend/postgres/admin.hpp"
#include "src/frontend/postgres/auth.hpp"
#include "src/frontend/postgres/cancel.hpp"
#include "src/frontend/postgres/relay.hpp"
#include "src/frontend/postgres/session_parts.hpp"
#include "src/net/await_op.hpp"
#include "src/net/fast_reads.hpp"
#include "src/pool/pg_exchange.hpp"
#include "src/sql/database_ddl.hpp"

namespace sluice::frontend::pg {

using namespace asio::experimental::awaitable_operators;

// A CancelRequest for the server session (pid, key) at `endpoint` (55.2.7): its own connection,
// closed by the server without an answer.
awaitable<void> send_cancel_request(config::Endpoint endpoint, std::uint32_t pid, std::uint32_t key);
// Parameters a server reports that a client cannot SET; never part of state sync.
bool settable(std::string_view name);
bool valid_param_name(std::string_view n);
// Decodes "-c name=value" / "--name=value" pairs from the startup "options" parameter.
void parse_options(std::string_view opts, pool::Params& out);

inline constexpr std::size_t kAuthMaxMessage = 64 * 1024;

// CopyDone 'c', CopyData 'd' or CopyFail 'f': one comparison for every other message type.
constexpr bool is_copy_message(char type) {
  static_assert(wire::fe::CopyData == wire::fe::CopyDone + 1 && wire::fe::CopyFail == wire::fe::CopyDone + 3);
  auto d = static_cast<unsigned char>(type - wire::fe::CopyDone);
  return d <= 3 && ((0b1011u >> d) & 1u);
}
static_assert(is_copy_message('c') && is_copy_message('d') && is_copy_message('f') && !is_copy_message('e') &&
              !is_copy_message('Q') && !is_copy_message('g'));

enum class Outcome {
  Detach,
  Resume,
  ClientGone,
  ClientError,
  ServerGone,
  ServerError,
  StatementMode,
  FreeDatabases,
  CheckPins,      // quiet and pinned, after a statement that may have ended what pins: ask the server
  PrepareListen,  // a LISTEN is about to go to the server: the listening connection listens first
  RateWait,       // [limits] queue: a session-mode request waits rate_wait_ before it goes
};

class Session final : public TendedSession {
 public:
  Session(tcp::socket s, state::Context& ctx, net::Origin origin);
  ~Session();
  // Both true when the session parks (admission.hpp): idle between transactions, nothing
  // buffered, for a janitor period or more.
  awaitable<bool> run();
  awaitable<bool> resume();
  // The parked wait: for readability (the read itself comes after resume(), into a buffer taken
  // then). `h(ec, n)`, n always 0; the session stays idle_wait_ (a kick or a notification cancels it).
  template <typename Handler>
  void wait_parked(Handler&& h) {
    idle_wait_ = true;
    info_->parked = true;
    client_.async_wait(tcp::socket::wait_read,
                       [h = std::forward<Handler>(h)](error_code ec) mutable { h(ec, std::size_t{0}); });
  }
  // Parked in the worker's epoll set instead (net/parked_waits.hpp): `h` ends the wait early.
  tcp::socket& parking_socket() { return client_; }
  void parked_as(net::ParkedWaits::Waiter* h) {
    parked_ = h;
    idle_wait_ = true;
    info_->parked = true;
  }
  // A parked client's next bytes are a Terminate and nothing more (plain TCP): it is leaving.
  bool farewell(const unsigned char* b, std::size_t n) const {
    return !tls_ && n == 5 && b[0] == wire::fe::Terminate && wire::load_u32(b + 1) == 4;
  }
  void woke(error_code ec, std::size_t n);
  asio::any_io_executor executor() { return client_.get_executor(); }
  void register_client(const net::Origin& origin);
  void log_end();

  // The virtual database "sluice": admin and stats users get the console, others are refused.
  awaitable<void> serve_console();

  // PAUSE: hold this client's next query (no error) until RESUME.
  awaitable<void> wait_while_paused();

  // A reload happened: take the new settings for this client's pool (between transactions).
  void refresh_config();

  // The pool, cluster and routing of this client's [[pools]] entry (login, and after a reload).
  // `cfg` is snap_'s config: the session keeps pointing into it.
  void bind_pool(const config::Config& cfg, const config::Pool& pc);
  void kick() override;
  void kill() override;
  std::uint64_t client_id() const override { return info_ ? info_->id : 0; }

  // Hibernation (frontend/common/admission.hpp, parking::Sleeper): what a parked session keeps
  // for its client while the Session itself is gone (session_parts.hpp).
  using Keep = SessionKeep;
  // What is kept, when nothing else is left (nullopt: this session stays while parked); the
  // Session is then destroyed without undoing its login. The session made again from it: on
  // the client's descriptor `fd` (-1: the client left while it slept).
  std::optional<Keep> hibernate(int& fd, bool& v6);
  static constexpr const char* kWhat = "session";
  // Whether hibernate() would keep it now: plain TCP, nothing in progress, no LISTEN.
  bool sleepable() const;
  Session(Keep&& k, state::Context& ctx, int fd, bool v6);
  // Online upgrade (handoff.cpp): what `k` keeps, as a record for the new process (which makes
  // the session again from it with adopt_client()).
  static constexpr config::Protocol kProtocol = config::Protocol::Postgres;
  static std::string handoff_record(const Keep& k);

 private:
  using Work = SessionWork;  // what only a working session needs (session_parts.hpp)
  Work& w() {
    return work_.get([this] { return std::make_unique<Work>(client_.get_executor()); });
  }
  // About to park: the work state goes, and the capacity the relay's buffers grew to.
  void shed_for_parking();

  // ---- client I/O ---------------------------------------------------------------------------

  // The client's unread input is in_[in_begin_, in_end_): a buffer of the worker's pool, or,
  // while in_first_, the idle wait's first_bytes_ (in_ empty): a request that came whole in
  // that read is served from there, with no pooled buffer taken and given back around it.
  std::size_t buffered() const { return in_end_ - in_begin_; }
  const std::uint8_t* in_data() const { return in_first_ ? work_.peek()->first_bytes_.data() : in_.data(); }
  wire::Bytes buffered_bytes() const { return {in_data() + in_begin_, buffered()}; }
  // The input into a pooled buffer, before anything is read or put back into it.
  void own_input() {
    if (!in_first_) [[likely]]
      return;
    in_first_ = false;
    if (in_.empty()) in_ = net::client_buffers().take();
    if (in_.size() < buffered()) in_.resize(net::client_buffers().buffer_size());
    std::memcpy(in_.data(), work_.peek()->first_bytes_.data() + in_begin_, buffered());
    in_end_ -= in_begin_;
    in_begin_ = 0;
  }

  // Puts `bytes` back in front of the unread client input (a read to run again elsewhere;
  // serve_rare.cpp).
  void unread(const std::string& bytes);

  // One attempt to read more client bytes without waiting, growing the buffer for a large
  // message up to max_packet_size. WantRead/WantWrite: wait with client_ready(), then try again.
  using Step = net::TlsStream::Step;
  Step try_read_client() {
    if (in_first_) own_input();
    else if (in_.empty()) in_ = net::client_buffers().take();  // given back while nothing is buffered
    if (in_begin_ > 0 && (in_begin_ == in_end_ || in_begin_ > in_.size() / 2)) {
      std::memmove(in_.data(), in_.data() + in_begin_, buffered());
      in_end_ -= in_begin_;
      in_begin_ = 0;
    }
    // Room for the rest of the message being received. Only typed messages say their length at
    // bytes 1-4 (already checked against the limit by the caller); the untyped startup packet
    // stays within PostgreSQL's 10000-byte bound.
    std::size_t want = 4096;
    if (typed_messages_ && buffered() >= 5) {
      std::size_t len = wire::load_u32(in_.data() + in_begin_ + 1);
      if (len + 1 > buffered()) want = std::max(want, len + 1 - buffered());
    }
    std::size_t cap = typed_messages_ ? max_packet_ + 64 : wire::kMaxStartupPacket;
    if (in_.size() - in_end_ < want)
      in_.resize(std::min<std::size_t>(in_end_ + std::max(want, in_.size()), std::max(cap, in_.size())));
    error_code ec;
    std::size_t n = 0;
    auto room = asio::buffer(in_.data() + in_end_, in_.size() - in_end_);
    if (tls_) {
      Step st = tls_->try_read(room, n, ec);
      if (st != Step::Done) return give_back_idle_input(st);
    } else {
      n = client_.read_some(room, ec);  // the socket is non-blocking
      if (ec == asio::error::would_block || ec == asio::error::try_again) return give_back_idle_input(Step::WantRead);
    }
    if (ec || n == 0) return Step::Fail;
    in_end_ += n;
    if (stats_) stats_->bytes_in.fetch_add(n, std::memory_order_relaxed);
    return Step::Done;
  }

  // About to wait for the client with nothing of it buffered: the read buffer goes back to the
  // worker's pool until bytes come (an idle client holds none).
  Step give_back_idle_input(Step st) {
    if (buffered() == 0 && st != Step::Fail) {
      if (!in_.empty()) net::client_buffers().give(in_);
      in_first_ = false;
      in_begin_ = in_end_ = 0;
    }
    return st;
  }

  // Bytes the idle wait read into first_bytes_ (nothing else buffered) become the client's
  // input, where they are.
  void take_first_bytes(std::size_t n) {
    if (!in_.empty()) net::client_buffers().give(in_);
    in_first_ = true;
    in_begin_ = 0;
    in_end_ = n;
    if (stats_) stats_->bytes_in.fetch_add(n, std::memory_order_relaxed);
  }

  // The client socket's readiness for a read that said WantRead (or, over TLS, WantWrite): an
  // operation awaited in the caller's own frame (`ec = std::get<0>(co_await client_ready(st))`).
  auto client_ready(Step st) {
    return client_.async_wait(st == Step::WantWrite ? tcp::socket::wait_write : tcp::socket::wait_read, net::await_op);
  }

  // Reads more client bytes (at least one); false when the client is gone. The hot paths
  // (serve, relay_attached) inline this loop to save its coroutine frame.
  // `login`: a startup or authentication message is awaited. On plain TCP with nothing buffered
  // it is read into the session's few bytes (the login's messages are small: no pooled buffer is
  // held while the client works out its proof): at once when it is there, else by a fast read
  // that waits for the socket's next edge. That wait costs no epoll_ctl (Asio's async_wait
  // re-arms the descriptor with one) and no second failed recv; a read that completed at once
  // would cost a posted completion (and the reactor a poll before it), hence the try here first.
  // Whatever ends such a read must reach it: net::close_socket, net::cancel_reads.
  awaitable<bool> read_client(bool login = false);  // login.cpp

  // One attempt to read server bytes into relay_->server_in without waiting (as try_read_client).
  [[gnu::always_inline]] Step try_read_server(std::size_t& n, error_code& ec) {
    n = 0;
    if (relay_->server_in.empty()) relay_->server_in = net::server_buffers().take();  // given back at detach
    if (server_->tls) return server_->tls->try_read(asio::buffer(relay_->server_in), n, ec);
    n = server_->sock.read_some(asio::buffer(relay_->server_in), ec);  // non-blocking
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      ec.clear();
      return Step::WantRead;
    }
    return ec ? Step::Fail : Step::Done;
  }

  awaitable<bool> write_client(std::string& buf) {
    if (stats_) stats_->bytes_out.fetch_add(buf.size(), std::memory_order_relaxed);
    error_code ec;
    if (tls_) co_await tls_->write(asio::buffer(buf), ec);
    else if (std::size_t sent = net::send_now(client_, asio::buffer(buf)); sent < buf.size())  // as Channel::write
      co_await asio::async_write(client_, asio::buffer(buf) + sent, asio::redirect_error(use_awaitable, ec));
    buf.clear();
    co_return !ec;
  }

  // Sends an ErrorResponse; FATAL ones end the session.
  // Parameters are owning strings: coroutine frames must not hold views of caller temporaries.
  awaitable<void> send_error(std::string severity, std::string code, std::string message, std::string hint = {}) {
    if (severity == "FATAL") {
      if (logged_in_) end_reason_ = fmt::format("{} {}", code, message);
      else
        log::event(log::Level::Info, "client_refused", client_fields(*info_, user_, database_, message),
                   "client {} {}:{} refused: user {} database {}: {} {}", info_->id, info_->addr, info_->port,
                   user_.empty() ? "?" : user_, database_.empty() ? "?" : database_, code, message);
    }
    std::string out;
    wire::error_response(out, severity, code, message, {}, hint);
    co_await write_client(out);
  }

  // Reads one typed message during authentication.
  // During authentication only PasswordMessage ('p') may come: any other first byte (a second
  // StartupMessage's length, say) is answered at once, without waiting for the body its length
  // would announce. Such a frame comes back with its type and no body.
  awaitable<std::optional<wire::Frame>> read_auth_message() {
    for (;;) {
      wire::Frame f;
      if (auto b = buffered_bytes(); !b.empty() && b[0] != wire::fe::Password) {
        f.type = static_cast<char>(b[0]);
        co_return f;
      }
      auto d = wire::next_frame(buffered_bytes(), kAuthMaxMessage, f);
      if (d == wire::Decode::Ok) {
        in_begin_ += f.size();
        co_return f;
      }
      if (d == wire::Decode::Malformed) {
        co_await send_error("FATAL", "08P01", "invalid message length during authentication");
        co_return std::nullopt;
      }
      if (auto awaited = co_await read_client(true); !awaited) co_return std::nullopt;
    }
  }

  // ---- stage: startup -----------------------------------------------------------------------
  awaitable<bool> startup();
  awaitable<void> forward_cancel(std::uint32_t pid, std::uint32_t key);

  // ---- stage: auth --------------------------------------------------------------------------

  // A failed login, counted per client address; past the burst, its answer waits.
  awaitable<void> throttle_failed_login();
  // [[access]] (src/access/rules.hpp): true when a rule lets the client in (`method`: the auth
  // method it names, if any); otherwise the 28000 refusal is sent.
  awaitable<bool> check_access(std::optional<config::AuthMethod>& method);
  // [limits] after authentication: places under the user and database limits (53300 past them).
  awaitable<bool> take_connection_places();
  // [limits] rate, for a request starting between transactions (frame `f`, not yet consumed):
  // true when it was refused (53400 sent, the request dropped as the server drops a failed
  // one); otherwise it may go, after waiting when the action is "queue".
  awaitable<bool> rate_limited(const wire::Frame& f);
  // Whether the request rates apply to request `f` at all (then rate_limited() decides).
  bool rate_checked(const wire::Frame& f) const {
    return !retrying_ && !failed_tx_ &&
           (f.type == wire::fe::Query || f.type == wire::fe::Parse || f.type == wire::fe::Bind ||
            f.type == wire::fe::Execute) &&
           limits_.limited(snap_->config->limits);
  }
  // [firewall] and [[rules]] for Query or Parse `f`, or [[rules]] for the Bind of a statement
  // parsed in an earlier batch (attached): true when it was refused (the
  // relay answers it as a failed statement; the frame is not sent). A rule's rewrite makes `f`
  // the rewritten message (held in the work state until the next one).
  bool refused_by_rules(wire::Frame& f);
  // The firewall's and the rules' verdict on statement `text`, worked out once per statement
  // however many steps ask (the cache, the route, forwarding): kept until `consume`.
  // `firewall`: the firewall looks too (not for the Bind of a statement it judged at Parse).
  const StatementCheck& statement_check(std::string_view text, bool consume, bool firewall = true);
  // The statement just sent has a rule's statement_timeout: past it, a CancelRequest for its
  // server session (the client gets the server's 57014). Disarmed at the next boundary (its
  // ReadyForQuery) or detach.
  void arm_statement_timeout();
  // [digests]: Query, Parse or Bind `f` is about to be queued: the relay's next request gets the
  // digest of its statement (the first one named since the last request wins).
  void name_digest(const wire::Frame& f);
  // [[rules]] mirror: the Query about to be queued (its text as the server gets it) is copied to
  // the rule's mirror when it is a read, or the rule mirrors writes too.
  void mirror_next(const access::RuleOutcome& r, std::string_view text);
  // [[rules]] cluster: the request's first statement runs on that cluster (pool_ set to this
  // client's pool there), or back on the home cluster when it has none.
  void route_to_rule_cluster();
  void disarm_statement_timeout() {
    timeout_armed_ = false;
    w().statement_timer_.cancel();
  }
  cache::RuleCache rule_cache(const StatementCheck* c) const {
    if (!c) return {};
    if (!c->rules.cluster.empty()) return cache::RuleCache{false, {}};  // not this cluster's data
    return cache::RuleCache{c->rules.cache, c->rules.cache_ttl};
  }
  // [limits] rate for a request a session-mode client starts outside a transaction (attached,
  // between transactions): the relay refuses it (53400) or the wait is set for RateWait.
  std::optional<Outcome> rate_limit_attached(const wire::Frame& f);
  // The ErrorResponse (53400) for a refused request.
  std::string rate_refusal(const ClientLimits::Rate& r) const;
  awaitable<bool> authenticate();

  // ---- stage: login (pool choice, ParameterStatus, BackendKeyData) --------------------------
  awaitable<bool> login();
  awaitable<void> report_lease_failure(const pool::LeaseResult& r);

  // ---- stages: attach / relay / detach ------------------------------------------------------

  // Reads whole messages from the attached server connection until `readies` ReadyForQuery
  // (pool::read_until_ready).
  template <typename Each>
  awaitable<bool> read_until_ready(std::size_t readies, Each each) {
    return pool::read_until_ready(server_->channel(), readies, std::move(each));
  }
  // Runs a statement of Sluice's own on the server, swallowing the replies: true when it succeeded
  // and left no transaction open. With `status`, the final transaction status is stored there and
  // errors are expected (not logged).
  awaitable<bool> run_internal(const std::string& sql, bool forward_param_changes, char* status = nullptr);

  // Makes the server connection's session parameters the client's. Each SET goes as its own
  // Query, all in one write: one the server refuses (a name it does not know, a value it rejects,
  // a parameter that cannot change now) fails alone. The client gets the server's error as a
  // WARNING, the parameter is dropped from what Sluice re-applies, and the client goes on.
  // False only when the server connection itself failed.
  awaitable<bool> sync_params();
  void set_cancel_target(bool attached);

  // ---- result cache ---------------------------------------------------------------------------

  // Key: normalized text + database + user + the settings that change results.
  std::string cache_key(const std::string& normalized);

  // A simple-protocol read outside a transaction: served from the cache, or marked so that its
  // answer is kept when it completes.
  awaitable<bool> try_cache(const wire::Frame& f);

  // An extended-protocol batch, complete in the buffer: [Parse (unnamed)] Bind [Describe portal]
  // Execute Sync. Keyed by its statement text, the message shape, the Bind parameters and formats
  // and the Execute row limit.
  awaitable<bool> try_cache_extended();

  // A hit is written to the client (the request's `consume` bytes are used up); a miss marks this
  // session as the one filling `key`, or waits (bounded) for another session's fill.
  awaitable<bool> lookup_or_fill(std::string key, const cache::Candidate& cand, std::size_t consume);
  void capture(const std::string& bytes);
  void end_fill();

  // Keeps a complete, error-free answer that ended outside a transaction.
  void finish_capture();

  // Writes forwarded to the server: the tables they touch lose their cached reads when the
  // transaction (or the autocommit statement) ends; a ROLLBACK forgets them.
  void note_for_invalidation(const wire::Frame& f);

  // CREATE TEMP[ORARY] TABLE / SELECT ... INTO TEMP: from then on this client's reads may name a
  // table only its session has, so none of them is cached or answered from the cache.
  static bool temp_table_statement(const sql::Lexed& lexed);

  // Writes forwarded to the server are done (the transaction, or the autocommit statement, ended):
  // drop their tables' cached answers. With `position_follows`, the write's replication position
  // is about to be learned (take_write_token): until settle_invalidations(), no replica's answer
  // to those tables is kept.
  void apply_invalidations(bool position_follows);
  void settle_invalidations(const router::Position& at);
  // The answer about to be captured: the position its server has surely applied before running
  // it (the last health check's, or what a verification read; on the primary also this client's
  // own last write).
  void stamp_route();
  // The read-your-writes token a cached answer must cover for this client (null: any).
  const router::Position* ryw_token() const;

  // Chooses the member for the next batch from its first message: reads (and read-only
  // transactions) to a replica that has the client's writes, everything else to the primary.
  void choose_route();

  // After a write reached the primary and the client is between transactions: the primary's
  // WAL position, which a replica must have replayed before it serves this client's reads.
  // After a write outside a transaction, under read-your-writes: the primary's position.
  bool needs_write_token() const;
  awaitable<void> take_write_token();

  // Attaching to a server connection. The common case (an idle connection on this worker, same
  // session parameters) never suspends: prepare_attach() + attach_ready(); attach_rest() waits in
  // line, probes, verifies a read-your-writes position or applies parameters.
  void prepare_attach();
  bool attach_ready();
  void finish_attach();
  awaitable<bool> attach_rest();

  // ", the server said: FATAL 57P01: ..." when the server announced its end.
  std::string end_note() const;

  // The server connection died with this client's requests unanswered, in a pooled mode. The
  // client's connection to Sluice is fine and stays: each request gets the error the server gives
  // a failed statement, and a transaction that was open is failed (the client rolls it back, as
  // after any error). Only a message half-sent to the client leaves no way on: then it is closed.
  awaitable<bool> fail_in_flight();

  // The client was told its transaction failed: the next server connection gets a failed
  // transaction too, so whatever the client sends until it ends the transaction is answered by the
  // server itself (25P02, and ROLLBACK or COMMIT ending it).
  awaitable<bool> recreate_failed_tx();
  void detach(bool reusable);

  // ---- transaction pooling: LISTEN --------------------------------------------------------------

  // The LISTENs just translated reach the server only once the pool's listening connection
  // listens on their channels: nothing committed after the client's LISTEN can be missed. When
  // that connection cannot be had, the client keeps its server connection instead (pinned), and
  // hears its notifications there.
  awaitable<void> prepare_listen();

  // Between transactions: the notifications that came for this client, written now. False when
  // the client is gone, or was closed because the listening connection was lost (it got the
  // server's FATAL, as it would directly).
  awaitable<bool> deliver_notifications();

  // ---- transaction pooling: pinned and untracked session state --------------------------------

  // Whether what pinned this client is gone (asked of the server: no advisory lock, temporary
  // object, holdable cursor or SQL-prepared statement left in the session; LISTEN does not pin).
  awaitable<bool> pins_released();
  void publish_pins();

  // DISCARD ALL on the attached server connection: what Sluice tracks of it starts over.
  awaitable<bool> reset_server_session();

  // Runs `sql` on the attached server connection; the first column of its first row.
  awaitable<std::optional<std::string>> run_scalar(const std::string& sql);

  // Client left (or was dropped) while attached: return the server connection in a known state.
  awaitable<void> release_server_after_client();

  // The first direction to finish records why and stops the other one. Cancellation alone is not
  // enough: an operation that already completed still resumes its coroutine.
  Outcome stop(Outcome o) {
    stopping_ = true;
    return o;
  }
  static bool is_work_before_send(Outcome o) {
    return o == Outcome::FreeDatabases || o == Outcome::PrepareListen || o == Outcome::RateWait;
  }
  awaitable<void> work_before_send(Outcome o);
  awaitable<Outcome> client_to_server();
  awaitable<Outcome> server_to_client();

  // What to do at a quiet point: nothing (stay attached), detach, or refuse (statement mode).
  std::optional<Outcome> boundary_outcome();

  // Translates every complete buffered client message; nullopt while all is well.
  std::optional<Outcome> forward_buffered();

  // CREATE DATABASE (its template), DROP DATABASE, ALTER DATABASE ... RENAME: the server refuses
  // them (55006) while other sessions use those databases, and Sluice's idle pooled connections
  // would be such sessions. Sets exclusive_dbs_; true when there are any.
  bool needs_free_databases(const wire::Frame& f);

  // Closes the idle server connections (of any pool, any user) to exclusive_dbs_ on this
  // client's server, and waits (at most 5 s, as the server itself does) for busy ones to come
  // back and be closed too. Whatever still holds them then makes the statement fail as directly.
  awaitable<void> free_databases();

  // Writes as much as the kernel takes now, without suspending. Returns false on error.
  // Over TLS: as many records as fit; the rest (and a record cut short) goes by the async path.
  bool write_now(tcp::socket& sock, net::TlsStream* tls, std::string& buf);
  awaitable<bool> flush_client();

  // The attached phase. Half duplex in the common case: the whole request goes to the kernel at
  // once, so the server can never block on us while we read its answer. Requests that do not
  // fit, COPY FROM STDIN and replies Sluice must make itself go full duplex until quiet again.
  // serve() runs the common turns in its own frame and calls this for the rest, at the top of
  // a turn (`work`: what forward_buffered() asked for first).
  awaitable<Outcome> relay_attached(std::optional<Outcome> work = std::nullopt);
  // Both directions at once until quiet again (Resume) or done.
  awaitable<Outcome> full_duplex();
  // The server's answer: a read of it starts (the buffer, the janitor's watch of the client),
  // and what it read goes through the relay to the client, written at once as far as the socket
  // takes it (the rest stays in client_out). An outcome ends the attached phase.
  void begin_server_read() {
    if (relay_->server_in.empty()) relay_->server_in = net::server_buffers().take();  // given back at detach
    waiting_server_ = true;
    wait_ticks_ = 0;
  }
  std::optional<Outcome> server_read_done(std::size_t n, error_code ec);

  // ---- watches: plain callbacks on the other socket, cheaper than racing two coroutines ------
  // A handler that comes late (cancelled, or a watch replaced) finds its generation stale; one
  // that outlives the session finds `alive` expired.

  // While the client owes the next request (relay_attached): the server's socket. A message
  // there wakes the client wait (server_spoke_); otherwise the watch lapses at the next answer.
  void watch_server();
  void unwatch_server();

  // While a request waits on the server for a while (armed by janitor_tick): the client's socket.
  // A client that closed (or sent Terminate first) ends the wait.
  void watch_client();
  void unwatch_client();

 public:
  // Every janitor period (per worker): a request waiting on the server for two periods or more
  // gets its client watched.
  void janitor_tick() override;

 private:
  // The next unread client message is a Terminate: the client leaves without waiting.
  bool client_leaving() const;

  // The server sent something while the client owed the next request: passed on (as the relay
  // filters it), or the server connection ended.
  awaitable<std::optional<Outcome>> server_spoke();
  // The transaction loop; true when it parks (the idle wait was cancelled for parking). Its
  // common turns are in its own frame; the rare ones below are coroutines of their own
  // (serve_rare.cpp), because each co_await in serve() is a slot of its frame, and clang
  // computes the address of every slot each time the frame resumes (twice a transaction).
  awaitable<bool> serve();
  enum class Next { Again, Attach, Stop, Park };  // what serve() does after a rare turn
  // Between transactions, unless it is the plain idle wait for a request or a request that may
  // go: the goodbye at shutdown, a malformed message, notifications, reads over TLS or after a
  // partial message, Terminate, messages dropped until Sync, the rate limits. Attach: the
  // buffered request goes on.
  awaitable<Next> between_requests();
  // The idle wait ended without bytes: a kick, a notification, client_idle_timeout, parking,
  // or the client's end.
  awaitable<Next> idle_wait_ended();
  // After the attached phase, all but a plain detach (serve() does that): pins, a session to
  // reset, the read-your-writes token, UNLISTEN, the losses and errors. False ends the session.
  awaitable<bool> after_relay(Outcome o);
  // Ends the idle wait between transactions (parked or not) early: a kick, a notification,
  // client_idle_timeout, parking. Its handler sees operation_aborted.
  void cancel_idle_wait() {
    if (parked_) return unpark_now();
    error_code ec;
    net::cancel_reads(client_, ec);
  }
  // A parked socket back in its object now (the parked wait's end posted).
  void unpark_now() {
    if (parked_) net::ParkedWaits::of(executor()).unpark(parked_);
  }
  // client_idle_timeout passed (janitor_tick): the client is told, then closed.
  awaitable<void> idle_timeout_goodbye();

  static constexpr const char* kAdminDatabase = "sluice";
  // The members. One whose value must outlive a transaction must also go through SessionKeep
  // (hibernate() and the Session(Keep&&) constructor in sleep.cpp): a sleeping session keeps
  // nothing else, and the parking tests only catch what they exercise.
  tcp::socket client_;
  std::unique_ptr<net::TlsStream> tls_;  // after SSLRequest, on a TLS listener
  state::Context& ctx_;
  std::shared_ptr<observe::ClientInfo> info_;
  std::shared_ptr<observe::DbStats> stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::uint64_t generation_ = 0;
  bool logged_in_ = false;
  std::string end_reason_;
  std::shared_ptr<const state::Snapshot> snap_;
  std::vector<std::uint8_t> in_;
  std::size_t in_begin_ = 0, in_end_ = 0;
  bool in_first_ = false;  // the input is in w().first_bytes_ (buffered_bytes())
  // The I/O strings (client_out, server_out, synth_out, journal) and server_in are the relay's.
  std::size_t max_packet_ = 0;
  std::string user_, database_;
  std::shared_ptr<const pool::Credentials> creds_;
  ClientLimits limits_;  // [limits]: connection places, request rate
  std::size_t rate_checked_at_ = std::string::npos;  // the buffer offset of the request last counted
  std::chrono::nanoseconds rate_wait_{0};
  std::shared_ptr<pool::Pool> pool_;
  config::PoolMode mode_ = config::PoolMode::Transaction;
  std::shared_ptr<pool::ServerConn> server_;
  RelaySlot relay_;  // dropped while parked (its Kept part stays)
  std::uint32_t pid_ = 0;
  // Routing (read_write_split): the member each batch runs on, and this client's last write.
  ClientRouting routing_;  // cluster, member pools, route of the current command, read-your-writes token
  const config::Pool* pool_cfg_ = nullptr;  // in snap_'s config
  std::string server_db_;
  LeaseRoute route_;  // the member the current command runs on (read/write split)
  bool batch_sent_ = false, wrote_ = false;
  state::SplitPlace split_;  // the arm of a [[pools]] split this client was placed on
  bool rule_memo_ = false;
  bool on_rule_cluster_ = false;  // pool_ is on a cluster a [[rules]] cluster sent the request to
  bool parse_judged_ = false;  // Work::judged_parse_ holds this batch's Parse (until its Sync)  // Work::check_ holds
                               // the verdict on Work::check_text_ (statement_check)
  // A rule's statement_timeout: for the message being forwarded, and armed for one sent.
  config::Duration pending_timeout_{0};
  bool timeout_armed_ = false;
  // A read outside a transaction: the client messages sent for it since attaching, kept (up to
  // kMaxJournal bytes) so that it can run again on another member if its server dies first.
  static constexpr std::size_t kMaxJournal = 64 * 1024;
  static constexpr int kMaxReadRetries = 2;
  bool journal_on_ = false, retryable_read_ = false;
  int retries_ = 0;
  bool retrying_ = false;  // the next attach runs a read again (the client has its preamble)
  // After a request failed because its server connection died: messages are dropped until Sync
  // (the failure came in the middle of an extended-protocol batch), and a transaction the client
  // had open is re-created, failed, on its next server connection; until then nothing is
  // answered without a server (cache, known statements): there the server refuses everything.
  bool discard_until_sync_ = false, failed_tx_ = false;
  // Result cache (the rest is in Work).
  bool capturing_ = false, invalidate_all_ = false, no_cache_ = false;
  // Every table's writes' position is being learned (take_write_token; else Work::marked_tables_).
  bool marked_all_ = false, marks_pending_ = false;
  config::Duration cache_ttl_{0};  // of the answer being captured (capturing_; not kept asleep)
  CancelTarget* cancel_ = nullptr;  // in the cancel registry until ~Session removes it
  bool server_writing_ = false, client_writing_ = false, idle_wait_ = false, stopping_ = false;
  bool typed_messages_ = false;
  // Watches (watch_server, watch_client) and what they saw.
  std::uint32_t server_watch_gen_ = 0, client_watch_gen_ = 0;
  bool server_watch_ = false, client_watch_ = false, server_spoke_ = false, client_gone_ = false;
  bool idle_attached_ = false, waiting_server_ = false;
  bool server_dead_ = false;  // the server closed while a pooled client idles in its transaction
  int wait_ticks_ = 0;
  // Parking and client_idle_timeout (janitor_tick): the idle wait may be cancelled for them,
  // was, and how it ended; janitor periods since the idle wait began.
  bool park_ok_ = false, park_requested_ = false, woke_ok_ = false, idle_timed_out_ = false;
  int idle_ticks_ = 0;
  // CREATE/DROP DATABASE: the message the databases (Work::exclusive_dbs_) were freed for.
  std::size_t exclusive_checked_at_ = std::string::npos;
  std::string published_pins_;  // what SHOW CLIENTS says pins this client
  // LISTEN in pooled modes: this client's notifications, by way of its pool's listening connection.
  std::shared_ptr<pool::NotifyMailbox> mailbox_;
  std::shared_ptr<pool::NotifyHub> hub_;
  bool notified_ = false;             // the mailbox woke this session
  OnDemand<Work> work_;
  net::ParkedWaits::Waiter* parked_ = nullptr;  // parked in the worker's epoll set (until woke())
  bool sleep_requested_ = false;                // janitor_tick asked for sleep_parked()
  bool upgrade_kicked_ = false;                 // an online upgrade's kick ended the idle wait
  bool listen_pending_ = false;       // a LISTEN waits for its transaction's end
  std::uint32_t own_notify_pid_ = 0;  // the server process of this client's last NOTIFY
};

}  // namespace sluice::frontend::pg
