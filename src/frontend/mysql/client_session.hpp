// The MySQL / MariaDB client session: one object per client connection, its state, and its
// stages, each defined in its own file: session.cpp (lifecycle, reloads, replies), handshake.cpp
// (greeting, TLS, authentication, choosing the pool), commands.cpp (reading and dispatching a
// command, relaying it and its response: the hot path), attach.cpp (routing, attach, detach),
// state_sync.cpp (bringing a server connection to the client's session state, and the commands
// that change it), prepared.cpp (server-side prepared statements), cache.cpp (the result cache
// step), kill.cpp (KILL). The response itself is followed by the sans-io ResponseTracker
// (response.hpp).
#pragma once

#include "src/frontend/mysql/session.hpp"

#include <array>
#include <unordered_map>

#include "protocols/mysql/codec.hpp"
#include "src/frontend/common/cache_lookup.hpp"
#include "src/frontend/common/session_core.hpp"
#include "src/frontend/common/on_demand.hpp"
#include "src/frontend/common/worker_sessions.hpp"
#include "src/frontend/mysql/command_state.hpp"
#include "src/frontend/mysql/refusals.hpp"
#include "src/frontend/mysql/registry.hpp"
#include "src/frontend/mysql/response.hpp"
#include "src/net/fast_reads.hpp"
#include "src/pool/mysql_io.hpp"
#include "src/pool/statements.hpp"
#include "src/sql/mysql_sql.hpp"

namespace sluice::frontend::mysql {

inline constexpr std::uint16_t kTooManyPrepared = 1461;  // ER_MAX_PREPARED_STMT_COUNT_REACHED
// Capabilities that change what the server sends or accepts: server connections are pooled
// separately per combination, so responses relay byte for byte. (SESSION_TRACK is not among them:
// Sluice always tracks and rewrites OK packets for clients that did not ask for it.)
inline constexpr std::uint32_t kFormatCaps = my::cap::DEPRECATE_EOF | my::cap::FOUND_ROWS | my::cap::MULTI_STATEMENTS |
                                             my::cap::MULTI_RESULTS | my::cap::PS_MULTI_RESULTS | my::cap::LOCAL_FILES |
                                             my::cap::IGNORE_SPACE;

struct ClientStmt {
  std::shared_ptr<const pool::Statement> stmt;
  std::string query;
  std::uint16_t params = 0, columns = 0;
  std::string types;  // parameter types from the last execute that sent them
  bool read = false;  // classified once, at prepare: may run on a replica
  sql::StatementKind kind = sql::StatementKind::Write;
  // For invalidation, found once at prepare: the tables a write names, and whether it calls one
  // of the cluster's write_functions (then it may write any table).
  sql::TableRefs writes;
  bool opaque_write = false;
  std::shared_ptr<observe::Digest> digest;  // [digests]: this statement's, found at its first execute
};

class Session final : public TendedSession {
 public:
  Session(tcp::socket sock, state::Context& ctx, net::Origin origin);
  ~Session();

  void kick() override {
    if (!idle_wait_) return;
    if (!ctx_.upgrading) return close_client();
    // An online upgrade: the wait ends and the session parks, which hands it over (when it can go).
    park_requested_ = upgrade_kicked_ = true;
    if (parked_) return unpark_now();
    error_code ec;
    net::cancel_reads(sock_, ec);  // the idle wait's read may be a fast one
  }
  // Online upgrade (handoff.cpp): a client waiting for its next command with nothing under way
  // (plain TCP, uncompressed, no server connection held, not the console) may go to the new
  // process, as its session's record; the new process makes the session again with adopt().
  static constexpr config::Protocol kProtocol = config::Protocol::Mysql;
  bool movable();
  std::optional<std::string> handoff_record();
  void handed_over();  // it went: this session ends without a word to the client
  static awaitable<void> adopt(int fd, std::string record, state::Context& ctx);
  void kill() override;
  std::uint64_t client_id() const override { return info_ ? info_->id : 0; }
  // Every janitor period: a client waiting for its next command past client_idle_timeout is
  // closed; one idle (plain TCP, no server connection) for a period or more has its wait
  // cancelled, and the session parks (frontend/common/admission.hpp). Not the console.
  void janitor_tick() override;

  // GCC 12 miscompiled this body as "if (!co_await login()) co_return; for (;;) { if (...)
  // co_return; if (!co_await ...) break; }" (the frame's `this` was garbage on first resume);
  // results are kept in a variable instead.
  // Both true when the session parks; then wait_parked(), woke(), resume().
  awaitable<bool> run();
  awaitable<bool> resume();
  template <typename Handler>
  void wait_parked(Handler&& h) {
    idle_wait_ = true;
    info_->parked = true;
    sock_.async_wait(tcp::socket::wait_read,
                     [h = std::forward<Handler>(h)](error_code ec) mutable { h(ec, std::size_t{0}); });
  }
  // Parked in the worker's epoll set instead (net/parked_waits.hpp): `h` ends the wait early.
  tcp::socket& parking_socket() { return sock_; }
  void parked_as(net::ParkedWaits::Waiter* h) {
    parked_ = h;
    idle_wait_ = true;
    info_->parked = true;
  }
  // A parked socket back in its object now (the parked wait's end posted).
  void unpark_now() {
    if (parked_) net::ParkedWaits::of(executor()).unpark(parked_);
  }
  // A parked client's next bytes are a COM_QUIT and nothing more (plain TCP, uncompressed): it is
  // leaving.
  bool farewell(const unsigned char* b, std::size_t n) const {
    return !tls_ && !io_.compressed() && n == 5 && b[0] == 1 && b[1] == 0 && b[2] == 0 && b[3] == 0 && b[4] == 0x01;
  }
  void woke(error_code ec, std::size_t) {
    parked_ = nullptr;
    idle_wait_ = false;
    info_->parked = false;
    woke_ok_ = !ec;
  }
  asio::any_io_executor executor() { return sock_.get_executor(); }

 private:
  // What a session needs only while it works: made on first use, dropped when it parks (an idle
  // client holds none of it).
  struct Work {
    explicit Work(const asio::any_io_executor& ex) : timer_(ex) {}
    asio::steady_timer timer_;  // the login timeout
    sql::Analysis analysis_;    // the running COM_QUERY / COM_STMT_PREPARE text, lexed once (storage reused)
    std::string held_error_;    // a 1461 answer held back while Sluice makes room (com_prepare)
    // Result cache: the answer this session is filling, and writes not yet applied.
    std::string fill_key_, capture_;
    cache::FillTicket fill_ticket_;
    router::Position route_position_;  // a replica's replayed position when the read was routed there
    std::vector<std::string> cache_tables_, pending_invalidation_;
    CachePolicyMemo cache_policy_;
    // The answer being relayed, and what the last one was.
    ResponseTracker tracker_;
    ResponseSummary last_;
    std::string server_buf_, srv_out_, cli_out_;
    std::string execute_;  // COM_STMT_EXECUTE as sent to the server (com_execute)
    // What [[rules]] decided for the running command (ruled_), and the rules it points into.
    access::RuleOutcome rule_;
    std::shared_ptr<const access::QueryRules> rules_held_;
    asio::steady_timer statement_timer_{timer_.get_executor()};  // a rule's statement_timeout
    // [digests]: the running command's digest (digesting_), and whether the cache answered it.
    std::shared_ptr<observe::Digest> digest_;
    bool digest_hit_ = false;
    std::string slow_text_;  // the statement's text, kept only for the slow-query log's log_parameters
    // [[rules]] mirror: where the running COM_QUERY's copy goes, and its answer as captured.
    std::shared_ptr<router::Mirror> mirror_;
    std::string mirror_capture_;
    std::array<char, 128> first_bytes_;  // the idle wait's read: a command's start (or all of a small one)
    // Nothing in it matters after the idle wait: no capture, fill or invalidation in progress.
    bool disposable() const {
      return fill_key_.empty() && capture_.empty() && pending_invalidation_.empty() && held_error_.empty();
    }
  };
  Work& w() {
    return work_.get([this] { return std::make_unique<Work>(sock_.get_executor()); });
  }
  // About to park: the work state goes, and the capacity the I/O buffers grew to.
  void shed_for_parking();
  // A client the upgraded configuration does not serve: `out` (an error) written, then closed.
  void write_now_or_drop(const std::string& out);

  // ---- small helpers ---------------------------------------------------------------------

  void count_command(std::uint8_t cmd, observe::Clock::time_point started);
  // [digests]: the running command is `text` (COM_QUERY, as analysed) or statement `cs`
  // (COM_STMT_EXECUTE); count_command() records it.
  void digest_query(sql::Analysis& text);
  void digest_execute(ClientStmt& cs);
  void record_digest(std::uint64_t us);

  // No server connection for this client: said as on PostgreSQL (describe_lease_failure), with
  // MySQL's codes (1040 in line too long, the server's own errno, 2013-style unreachable).
  awaitable<void> report_lease_failure(const pool::LeaseResult& r);

  // PAUSE: hold this client's next command (no error) until RESUME.
  awaitable<void> wait_while_paused() { co_await ctx_.controls.wait_resumed(served_db_, sock_, *info_); }

  // A reload happened: take the new settings for this client's pool (between transactions).
  void refresh_config();

  // The pool, cluster and routing of this client's [[pools]] entry (login, and after a reload).
  void bind_pool(const config::Pool& pc);
  // The settings of this client's pools (its [[pools]] entry, capabilities and charset at bind_pool).
  pool::PoolSettings pool_settings() const;

  void close_client() {
    unpark_now();
    error_code ec;
    net::close_socket(sock_, ec);  // ends the idle wait's fast read too
  }

  // An error the server or a lease failure said, relayed with its own code.
  awaitable<bool> send_err(std::uint16_t code, std::string_view sqlstate, std::string_view message);

  // One of Sluice's own errors (refusals.hpp): false when it ends the client's connection, else
  // whether it was written.
  template <class... A>
  awaitable<bool> refuse(Refusal r, const A&... args) {
    return send_refusal(r, refusal_text(r, args...));
  }
  awaitable<bool> send_refusal(Refusal r, std::string text);

  // The client's address as MySQL's access errors show it.
  std::string peer_address() const;

  awaitable<bool> send_ok(std::uint64_t affected = 0, std::string_view info = {});

  awaitable<bool> access_denied(Refusal r, bool with_password) {
    return refuse(r, user_, peer_address(), with_password ? "YES" : "NO");
  }

  // ---- login -----------------------------------------------------------------------------

  awaitable<bool> login();

  // The greeting is the primary's (version, capabilities Sluice relays, MariaDB's extended
  // capabilities, default collation), probed before the very first client is greeted.
  awaitable<my::Handshake> greeting();

  config::Endpoint primary_for_default() const;

  awaitable<bool> handshake();

  // The compressed protocol, when the client asked: from its first command on, whatever the
  // server connections do (they are not compressed). Both flags set: zlib (as servers do).
  void start_compression(const my::HandshakeResponse& resp);

  // A failed login, counted per client address; past the burst, its answer waits.
  awaitable<void> throttle_failed_login() {
    co_await state::hold_failed_login(ctx_, cfg_->general, info_, sock_.get_executor());
  }

  // The user's credentials (configured, or learned from the server), its client certificate,
  // then the proof of its password (ClientAuth, client_auth.hpp) with this connection's I/O.
  // `method`: what an [[access]] rule asks for instead of the user's own `auth`.
  awaitable<bool> authenticate(std::string client_plugin, std::string response,
                               std::optional<config::AuthMethod> method = std::nullopt);
  // [[access]] (src/access/rules.hpp) for user_ and `db`: true when a rule lets the client in
  // (`method`: the auth method it names, if any); otherwise error 1130 is sent. Logins and
  // COM_CHANGE_USER alike.
  awaitable<bool> check_access(const std::string& db, std::optional<config::AuthMethod>& method);
  // [limits] at login and COM_CHANGE_USER: places under the user and database limits (refused
  // with 1203 / 1040 past them).
  awaitable<bool> take_connection_places(const std::string& db);
  // [limits] per COM_QUERY / COM_STMT_EXECUTE: false when refused (1226 sent; the client stays),
  // after waiting when the action is "queue".
  awaitable<bool> rate_limit();
  // [firewall] and [[rules]] for the COM_QUERY / COM_STMT_PREPARE in io_, or the statement a
  // COM_STMT_EXECUTE runs (rules only): false when denied (1142 sent; the client stays).
  // Otherwise what the rules decide holds for this command (rule()), and a rewrite is applied
  // to io_'s payload.
  awaitable<bool> statement_allowed(std::uint8_t cmd);
  // The client's program_name connect attribute (SHOW CLIENTS' application_name).
  std::string application_name() const {
    std::lock_guard lock(info_->mu);
    return info_->application_name;
  }
  // A rule's statement_timeout for the command about to be sent: past `d`, KILL QUERY on the
  // server thread (the client gets the server's error 1317); disarmed when the answer is in.
  void arm_statement_timeout(config::Duration d);
  // [[rules]] mirror for the running COM_QUERY: true when a copy is to go (a read, or the rule
  // mirrors writes; Work::mirror_ set), after the answer, to offer_mirror() with the captured one.
  bool prepare_mirror();
  void offer_mirror(const std::string* answer, bool relayed);
  static constexpr std::size_t kMirrorCapture = 1 << 20;  // larger answers are not compared
  // All of them, as they apply to command `cmd` (COM_QUERY: rate, firewall, rules;
  // COM_STMT_EXECUTE: rate, rules; COM_STMT_PREPARE: firewall, rules): false when one refused it
  // (answered; the client stays).
  awaitable<bool> front_door(std::uint8_t cmd);
  // The running command's [[rules]] decision, when a rule matched it.
  const access::RuleOutcome* rule() { return ruled_ ? &w().rule_ : nullptr; }
  cache::RuleCache rule_cache() {
    if (!ruled_) return {};
    if (!w().rule_.cluster.empty()) return cache::RuleCache{false, {}};  // not this cluster's data
    return cache::RuleCache{w().rule_.cache, w().rule_.cache_ttl};
  }

  // Finds the pool for `db` (or a default one without a database) and checks that the server
  // knows the schema, as a direct login would.
  awaitable<bool> choose_pool(const std::string& db);

  // ---- routing, attach / detach (attach.cpp) ---------------------------------------------

  // The text of the COM_QUERY / COM_STMT_PREPARE being run, classified once (routing, the cache,
  // invalidation, tokens) and read by command_is_read() while the command runs. Not classified
  // when neither routing nor the cache needs it (kind() is then Write).
  class CommandClassification {
   public:
    // Of the text last given to the session's analysis_.
    explicit CommandClassification(Session& s) : s_(s) {
      if (s.routing_.split() || s.ctx_.cache_enabled()) {
        cls = s.w().analysis_.classification(s.write_functions());
        s.command_cls_ = &*cls;
      }
    }
    ~CommandClassification() { s_.command_cls_ = nullptr; }
    CommandClassification(const CommandClassification&) = delete;
    CommandClassification& operator=(const CommandClassification&) = delete;
    sql::StatementKind kind() const { return cls ? cls->kind : sql::StatementKind::Write; }
    std::optional<sql::Classification> cls;

   private:
    Session& s_;
  };
  // With the cluster's write functions when reads split.
  sql::Classification classify(std::string_view text) const;
  const std::vector<std::string>& write_functions() const;

  // Whether the command in io_ may run on a replica (statements classified once, at prepare),
  // as a [[rules]] route says when one matched; classified_read() without the rules.
  bool command_is_read();
  bool classified_read();
  // [[rules]] cluster: the command runs on that cluster (pool_ set to this client's pool there),
  // or back on the home cluster when its rule has none.
  void route_to_rule_cluster();
  // attach()'s wait for a server connection: on the route (with fallback), or in the line of the
  // pool a [[rules]] cluster chose.
  awaitable<pool::LeaseResult> lease_for_attach(std::shared_ptr<pool::ServerConn> conn);

  // After each statement, the read-your-writes token: the GTID the server reported for a
  // commit; without one (a server that does not report it), a sentinel no replica covers, so the
  // client's reads stay on the primary. Writes inside a transaction count at its COMMIT.
  void after_statement(sql::StatementKind kind, bool was_read);

  void choose_route();

  // Makes sure a server connection works for this client, its state synced. On failure the
  // client has had its ERR; returns false only when the client connection must end.
  awaitable<bool> attach();
  // attach()'s common case without a coroutine frame: attached already, or an idle connection of
  // this worker leased now with nothing before it to do (no pause, reload, replica route or
  // rule) and its state in sync. False: `co_await attach()` does the rest.
  bool attach_now();
  void adopt_server(std::shared_ptr<pool::ServerConn> conn, std::optional<observe::Clock::time_point> wait_start);
  // True when the client holds a server connection it may keep for this command.
  bool attached_for_command() {
    if (server_ && routing_.route.replica && cmd_.may_leave_replica() && !command_is_read())
      detach(true);  // held on a replica (warnings), but this command belongs on the primary
    return server_ != nullptr;
  }

  // Brings the server connection's session to this client's: reset if it holds state Sluice
  // cannot describe, then schema, multi-statement option and variables.
  awaitable<bool> sync_state();
  // Nothing for sync_state() to do (the common case): checked first, so that the coroutine, whose
  // frame is too large for Asio to recycle, runs only when there is.
  bool state_in_sync() const {
    bool server_multi = (server_->capabilities & my::cap::MULTI_STATEMENTS) != 0;
    return !server_->dirty && (schema_.empty() || server_->schema == schema_) &&
           server_->multi_statements.value_or(server_multi) == multi_statements_ &&
           server_->params.fingerprint == vars_.fingerprint;
  }

  // The server connection broke while Sluice prepared it for the client's command: the command
  // did not run. A read may run elsewhere (the caller retries); otherwise the client is told.
  awaitable<bool> server_lost();

  // COM_RESET_CONNECTION, then tracking again (the reset restores global session settings).
  awaitable<bool> reset_server();

  // Returns the server connection to the pool (reusable: its state is known).
  void detach(bool reusable);

  bool kill_in_flight() {
    std::lock_guard lock(handle_->mu);
    return handle_->kill_holds > 0;
  }

  // At a transaction boundary in transaction (and statement) mode.
  void maybe_detach();

  // The client leaves: the server connection goes back clean, or is closed.
  awaitable<void> leave();

  // ---- talking to the server ---------------------------------------------------------------

  // Sends one command (sequence 0) and follows the response. With `to_client`, the response
  // streams to the client; otherwise it is consumed here. What the response said (the
  // tracker's summary: valid until the next exchange), or null when the server connection broke
  // (it is then detached and closed).
  // `into`: where the summary goes instead of the tracker's own (the client's command: last_).
  awaitable<const ResponseSummary*> exchange(std::string_view payload, ResponseKind kind, bool to_client,
                                             std::uint32_t client_stmt_id = 0, std::string* capture = nullptr,
                                             ResponseSummary* into = nullptr);

  // LOCAL INFILE: the client's packets go to the server until the empty one.
  awaitable<bool> forward_infile();

  // The server connection failed (or ended) under a command. A read outside a transaction whose
  // answer has not started is run again by the caller (retry_pending_). Otherwise, in a pooled
  // mode the client keeps its connection and gets an ERR saying what happened, in place of the
  // rest of the answer when the protocol allows one there (`err_seq`: the sequence id it takes).
  awaitable<const ResponseSummary*> broken_server(bool to_client, bool mid_response,
                                                  std::optional<std::uint8_t> err_seq = std::nullopt);

  // Applies what the server reported about the session (OK packets' session state).
  void absorb(const ResponseSummary& s);

  // ---- result cache ---------------------------------------------------------------------------

  // 1: answered from the cache; 2: a miss this session fills (capture the answer); 0: neither.
  // `params`: for COM_STMT_EXECUTE, the parameter block (null bitmap, types, values): binary
  // answers are keyed apart from text ones and by every parameter byte.
  awaitable<int> try_cache(const sql::Lexed& text, std::optional<std::string_view> params = std::nullopt);

  void end_fill();

  // Keeps a complete answer without error or warnings that left no transaction open. A replica's
  // answer is stamped with the GTID position the replica had before it ran the query: served only
  // to clients whose writes that covers, kept only if it covers the writes to its tables.
  void finish_capture(bool relayed);

  // Writes drop the tables they touch: at once outside a transaction, at COMMIT inside one.
  // `written`: the tables named by a text that writes (null otherwise); `opaque`: it calls a
  // write function.
  void note_for_invalidation(sql::StatementKind kind, bool opaque, const sql::TableRefs* written);

  void pin(const char* why);

  // ---- commands ----------------------------------------------------------------------------

  // Session mode: while the client owes its next command, the server's socket is watched with a
  // plain callback. A MySQL server sends nothing unasked but the end of the session (wait_timeout,
  // KILL, shutdown: an error packet such as 4031 or 1927 when it has one, then EOF): that is
  // passed on and the client closed, as directly, instead of the client learning of it at its
  // next command. In pooled modes the server connection is Sluice's: a loss there is answered at
  // the client's next command and the client stays (see "Failures" in docs/design-decisions.md).
  void watch_server();
  void unwatch_server();

  // Reading the next command, in steps around the wait, which serve() awaits in its own frame:
  // before the wait; after it
  // (false: no command to run, and command_unread() says why: the wait cancelled to park, the
  // client's end, a packet over the limit, an empty command).
  void begin_command_wait();
  bool command_read(bool ok);
  awaitable<bool> command_unread(bool ok);
  // The command loop (after login, and after a parked wait): true when the session parks.
  awaitable<bool> serve(bool ok);

  awaitable<bool> dispatch();
  // Whether command `cmd` goes through front_door() first ([limits] rates, [firewall], [[rules]]).
  bool front_door_on(std::uint8_t cmd) const {
    return (cmd == my::com::QUERY || cmd == my::com::STMT_EXECUTE || cmd == my::com::STMT_PREPARE) &&
           (limits_.limited(cfg_->limits) || ctx_.firewall_on() || ctx_.rules_on() || ruled_);
  }

  // Runs the client's command (already in io_.payload(), possibly rewritten in `payload`) on
  // the attached server and streams the response.
  awaitable<bool> relay(std::string_view payload, ResponseKind kind, std::uint32_t client_stmt_id = 0,
                        std::string* capture = nullptr);

  awaitable<bool> com_query();

  awaitable<bool> forward_simple(std::uint8_t cmd);

  // Statements the server connection holds can be closed to make room when no cursor or long
  // data of this client lives on one (they are prepared again on demand).
  bool evictable() const { return server_ && !server_->statement_ids.empty() && !cmd_.cursor_open && !cmd_.long_data; }

  // The server refused a prepare for its max_prepared_stmt_count (1461): close every statement
  // this server connection holds (the closes go out before the next command) so the retry fits.
  bool evict_prepared();

  // Prepares `cs` on the attached server unless it has it. false: the client got an ERR (or
  // the server broke).
  awaitable<bool> ensure_prepared(const ClientStmt& cs);
  // ensure_prepared()'s common case without a coroutine frame: the attached server has it.
  bool prepared_on_server(const ClientStmt& cs) {
    if (!server_->statement_ids.count(cs.stmt->id)) return false;
    server_->prepared.touch(cs.stmt->id);
    return true;
  }

  void remember_server_stmt(std::uint64_t id, std::uint32_t server_id);

  awaitable<bool> com_prepare();

  // A cached prepare response is stored as the first client saw it; all clients of one pool
  // share its capabilities, so only SESSION_TRACK could differ, and PREPARE responses carry no
  // OK packets. Kept as a seam for future formats.
  static std::string rewrite_prepare_for_client(std::string bytes) { return bytes; }

  bool statement_is_read(const CommandClassification& c) const;
  // A client's statement as prepared now, from the text Work::analysis_ holds.
  // The registry's statement for `query` as this session prepares it (its schema, capabilities,
  // character set and variables are part of the key).
  std::shared_ptr<const pool::Statement> intern_statement(const std::string& query) const;
  ClientStmt new_client_stmt(std::shared_ptr<const pool::Statement> stmt, const std::string& query,
                             std::uint16_t params, std::uint16_t columns, const CommandClassification& c);

  ClientStmt* find_stmt(my::Bytes payload, std::uint32_t& id);

  awaitable<bool> unknown_stmt(std::uint32_t id, std::string_view where);

  awaitable<bool> com_execute();

  awaitable<bool> com_long_data();

  bool com_close();

  awaitable<bool> com_stmt_reset();

  awaitable<bool> com_fetch();

  awaitable<bool> com_set_option();

  void forget_client_state();

  awaitable<bool> com_reset_connection();

  awaitable<bool> com_change_user();

  // KILL [QUERY] n: n is a Sluice connection id (the handshake's), or a server thread id as
  // CONNECTION_ID() returned it: the client working on that thread, or else the one that last
  // did (ClientRegistry::find_by_thread). The target's server connection cannot change hands
  // while the KILL is in flight (kill_holds), so it reaches that thread and nothing else.
  awaitable<bool> kill(sql::MysqlKill k);
  // KILL CONNECTION of another client: its socket closed on its own worker.
  static void close_on_worker(const ClientHandle& target);

  tcp::socket sock_;
  std::unique_ptr<net::TlsStream> tls_;  // after SSLRequest, on a TLS listener
  state::Context& ctx_;
  std::shared_ptr<const state::Snapshot> snap_;
  const config::Config* cfg_;
  std::shared_ptr<observe::ClientInfo> info_;
  std::shared_ptr<observe::DbStats> stats_;
  std::uint64_t generation_ = ctx_.generation();
  bool connected_ = false, console_ = false, in_xact_ = false;
  // Parking: the idle wait cancelled for it, the session parking, and how its parked wait ended;
  // janitor periods since the wait for the next command began.
  bool park_requested_ = false, parking_ = false, woke_ok_ = false;
  bool sync_due_ = false;                       // attach_now() attached a connection whose state attach() must sync
  bool upgrade_kicked_ = false;                 // an online upgrade's kick ended the wait (not the client)
  net::ParkedWaits::Waiter* parked_ = nullptr;  // parked in the worker's epoll set (until woke())
  int idle_ticks_ = 0;
  admin::Caller console_caller_;
  observe::Clock::time_point xact_start_{};
  std::string end_reason_;
  pool::MysqlIo io_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::shared_ptr<ClientHandle> handle_;

  std::string nonce_, user_, schema_;
  state::SplitPlace split_;  // the arm of a [[pools]] split this client was placed on
  bool ruled_ = false;
  bool on_rule_cluster_ = false;  // pool_ is on a cluster a [[rules]] cluster sent the command to   // a [[rules]]
                                  // entry matched the running command: w().rule_
  bool timeout_armed_ = false;  // statement_timer_ runs for the statement in flight
  bool digesting_ = false;      // Work::digest_ is the running command's
  std::uint32_t caps_ = 0;
  std::uint32_t mariadb_caps_ = 0;  // MariaDB extended capabilities the client negotiated
  bool learned_ = false;            // creds_ came from the server ([mysql] auth_user)
  ClientLimits limits_;             // [limits]: connection places, request rate
  std::uint8_t charset_ = 45;
  std::uint8_t pool_charset_ = 45;  // charset_ when the pool was bound (a change of user may change it)
  std::shared_ptr<const pool::Credentials> creds_;
  std::shared_ptr<pool::Pool> pool_;
  config::PoolMode mode_ = config::PoolMode::Transaction;
  std::shared_ptr<pool::ServerConn> server_;

  pool::Params vars_;                                 // session variables the client changed (server-reported values)
  const sql::Classification* command_cls_ = nullptr;  // the running command's (CommandClassification)
  CommandState cmd_;  // what the commands left on the server connection (command_state.hpp)
  bool multi_statements_ = false;
  bool logged_in_ = false, idle_wait_ = false, client_gone_ = false, broken_ = false;
  bool server_watch_ = false;    // watch_server() armed
  std::uint32_t watch_gen_ = 0;  // its generation: a handler of an older one does nothing
  std::unordered_map<std::uint32_t, ClientStmt> stmts_;
  std::uint32_t next_stmt_id_ = 1;
  std::vector<std::uint32_t> pending_closes_;

  // Routing (read_write_split): the member the current command runs on, this client's last write.
  ClientRouting routing_;  // cluster, member pools, route of the current command, read-your-writes token
  const config::Pool* pool_cfg_ = nullptr;  // in snap_'s config
  std::string served_db_;                   // the database operators know this client by (served_database)
  LeaseRoute route_;  // the member the current command runs on (read/write split)
  bool retry_allowed_ = false, retry_pending_ = false;
  // A read outside a transaction runs again on another member at most this often when its
  // server connection dies before any of its answer reached the client.
  static constexpr int kMaxReadRetries = 2;
  bool cmd_read_ = false;     // the command in flight is a read (for what a lost server means)
  bool server_lost_ = false;  // its server connection was lost under it (outcome unknown)
  std::string server_end_;    // what the server said when it ended its connection
  bool gtid_seen_ = false, ro_next_tx_ = false, pending_write_ = false;

  std::size_t capture_limit_ = 1u << 20;
  config::Duration cache_ttl_{0};
  bool invalidate_all_ = false;

  std::vector<std::uint8_t> rbuf_;  // server reads, while attached (net::server_buffers)
  OnDemand<Work> work_;
};

}  // namespace sluice::frontend::mysql
