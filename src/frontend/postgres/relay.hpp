// The PostgreSQL relay core, independent of sockets: translates client messages for the
// current server connection (renaming prepared statements, re-preparing them where missing) and
// filters the server's byte stream back to the client, tracking which request each response
// answers (docs 55.2.3 "Extended Query": responses come in request order; after an error the
// server skips everything up to Sync). Large messages (DataRow, CopyData) stream through in
// pieces, never buffered whole.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "protocols/postgres/codec.hpp"
#include "src/frontend/common/fifo.hpp"
#include "src/frontend/postgres/request_trail.hpp"
#include "src/observe/stats.hpp"
#include "src/pool/server_conn.hpp"
#include "src/pool/shared_params.hpp"
#include "src/pool/statements.hpp"
#include "src/sql/session_sql.hpp"

namespace sluice::frontend::pg {

namespace wire = sluice::pg;

// Parameters tracked per client and re-applied on whichever server connection it is handed.
// (The reported ones come from ParameterStatus; search_path and startup extras are tracked here.)
bool is_tracked_reported_param(std::string_view name);
// Whether a Query or Parse text may change session state (session_effects.cpp): cheap, so that
// ordinary statements never pay for sql::session_effects. `tx_words`: COMMIT/ROLLBACK matter.
bool may_change_session(std::string_view q, bool tx_words);

class Relay {
 public:
  enum class Verdict { Ok, Terminate, ProtocolError };

  pool::SharedParams client_params;  // what this client's session should look like on any server (shared while equal)
  // The session's I/O of the requests this relay follows (pg::Session): bytes for the client,
  // for the server and of Sluice's own making, the journal of a read that may run again, and
  // the server's answer being read. Held here so that a parked session drops them with the
  // relay (all empty then).
  std::string client_out, server_out, synth_out, journal;
  std::vector<std::uint8_t> server_in;

  // Client -> server. `f` is one complete client message; output goes to `server_out`.
  Verdict client_message(const wire::Frame& f, pool::ServerConn& server, std::string& server_out);
  // Query or an extended-protocol message `f` refused by Sluice (the firewall, a rate limit) with
  // ErrorResponse `error`, answered as the server answers a failed request: in a transaction a
  // stand-in that fails goes to the server (so the transaction fails there too) and its error is
  // replaced by `error`; outside one an extended request is answered here; what follows is
  // skipped until Sync.
  void refuse(const wire::Frame& f, std::string error, std::string& server_out);
  // Server -> client: consumes `chunk`, appends what the client must see to `client_out`.
  Verdict server_bytes(wire::Bytes chunk, pool::ServerConn& server, std::string& client_out);
  // Emits responses Sluice answers itself when they are next in line (e.g. ParseComplete for a
  // statement the server connection already had).
  void drain_synthetic(std::string& client_out);

  // True when every request sent has been fully answered and no message is half-read.
  bool quiescent() const { return pending_.empty() && quiescent_stream(); }
  // True between server messages (no message half-forwarded).
  bool quiescent_stream() const { return hdr_len_ == 0 && body_left_ == 0; }
  // True at a point where the server connection may change hands: everything answered, and no
  // extended-protocol batch open (messages after the last Sync keep an implicit transaction).
  bool at_boundary() const { return quiescent() && !unsynced_ && !copy_in_; }
  // Extended-protocol messages went to the server after the last Sync or Flush: the server may
  // answer nothing until the client sends more, so the client must be read meanwhile.
  bool server_may_be_silent() const { return unsynced_ && !flushed_; }
  // The server is in COPY FROM STDIN: the client streams data while the server stays silent.
  bool in_copy_in() const { return copy_in_; }
  bool has_pending() const { return !pending_.empty(); }
  bool only_synthetic_pending() const;
  char tx_status() const { return tx_status_; }
  // Set when the server connection must not be reused (FATAL, protocol desync).
  bool server_broken() const { return server_broken_; }
  // The statement a client prepared under `name`, or null.
  const pool::Statement* find_statement(std::string_view name) const {
    auto it = statements_.find(std::string(name));
    return it == statements_.end() ? nullptr : it->second.stmt.get();
  }
  void mark_server_broken() { server_broken_ = true; }
  const std::string& error() const { return error_; }
  // The SQLSTATE for error(): 08P01 (protocol violation) or 54000 (a limit).
  const char* error_code() const { return error_code_; }
  // Named prepared statements this client may hold ([general] max_client_prepared_statements).
  void set_statement_limit(std::uint32_t n) { max_statements_ = n; }
  // An idle client's pipeline made only of named Parse messages and a final Sync, all for
  // statements some server already accepted, is answered here without a server connection
  // (ParseComplete per Parse, then ReadyForQuery). Returns the bytes consumed, or 0.
  std::size_t try_answer_locally(wire::Bytes buffered, std::size_t max_len, std::string& client_out);
  // Pooled modes: the channels this client listens on, as committed (LISTEN and UNLISTEN wait
  // for the COMMIT of their transaction). Notifications reach it from the pool's listening
  // connection, so the server connection's own NotificationResponses are not passed on (unless
  // pass_notifications: a client pinned for LISTEN when that connection could not be had).
  const std::set<std::string>& listening() const { return listening_; }
  bool take_listen_changed() { return std::exchange(listen_changed_, false); }
  // Channels named by LISTEN in messages translated since the last call: the session has the
  // listening connection listen on them before those messages reach the server.
  bool has_new_listens() const { return !new_listens_.empty(); }
  std::vector<std::string> take_new_listens() { return std::exchange(new_listens_, {}); }
  // A NOTIFY (or pg_notify) of this client succeeded since the last call.
  bool take_notified() { return std::exchange(notified_, false); }
  void set_pass_notifications(bool pass) { pass_notifications_ = pass; }
  void pin(std::string_view why) {
    if (pins_.find(why) == std::string::npos) pins_ += (pins_.empty() ? "" : ", ") + std::string(why);
  }
  // Transaction pooling: state this client left on its server session that cannot be carried to
  // another one (advisory locks, temporary tables, WITH HOLD cursors, SQL PREPARE, SET
  // SESSION AUTHORIZATION): it stays on this server connection while pinned() (why: pin_reasons()).
  bool pinned() const { return !pins_.empty(); }
  const std::string& pin_reasons() const { return pins_; }
  // A statement that may have ended the pinning state ran: the session checks the server.
  bool take_may_unpin() { return std::exchange(may_unpin_, false); }
  void unpin() { pins_.clear(); }
  // The session changed in a way not followed (a DO block, set_config of an expression): the
  // server connection is reset (DISCARD ALL) before another client gets it.
  bool untracked() const { return untracked_; }
  void clear_untracked() { untracked_ = false; }
  // Forget in-flight tracking (after the server connection was dropped).
  void reset_server_side();

  // Pooled modes (transaction, statement): the client does not own the server session, so the
  // messages with which a server announces its end (an ErrorResponse of severity FATAL or PANIC,
  // a NoticeResponse of class 57P: "terminating connection ...") are not passed on; the server
  // connection is marked broken and the session answers for it (retry, or fail_outstanding).
  // ErrorResponse and small NoticeResponse messages are then held until complete.
  void set_pooled(bool pooled) { pooled_ = pooled; }
  // Why the server ended the connection, when it said so (empty otherwise).
  const std::string& server_end_message() const { return server_end_; }
  // Its SQLSTATE, and the message itself as the server sent it.
  const std::string& server_end_code() const { return server_end_code_; }
  const std::string& server_end_bytes() const { return server_end_msg_; }
  // A message is half-forwarded to the client (a large DataRow, say): the client's stream cannot
  // take anything else now.
  bool mid_message_to_client() const { return hdr_len_ == 5 && body_left_ > 0 && forward_ && partial_.empty(); }
  // Messages shorter than this reach the client whole (larger ones stream in pieces).
  static constexpr std::size_t kWholeBelow = 64 * 1024;
  // The server connection ended with requests unanswered: answers them the way the server answers
  // failed ones. Each request group (up to a Sync, or a simple Query) gets an ErrorResponse
  // (`sqlstate`, `message`, `hint`) and ReadyForQuery(`status`). Returns true when the last group
  // has no Sync yet: the client's messages are then to be dropped until its Sync, which gets
  // ReadyForQuery(`status`) (55.2.3: after an error the server discards messages until Sync).
  bool fail_outstanding(std::string_view sqlstate, std::string_view message, std::string_view hint, char status,
                        std::string& client_out);
  // The number of request groups (Sync, simple Query) still unanswered.
  std::size_t outstanding_groups() const;
  // Sets the transaction status the client was last told (a failed transaction re-created on a
  // new server connection).
  void set_tx_status(char status) { tx_status_ = status; }

  // Running a read again elsewhere. begin_request(true) starts keeping what the client is sent
  // while that is only the answer's preamble (ParseComplete, BindComplete, ParameterDescription,
  // RowDescription, NoData, CloseComplete): a server that dies before the first row leaves the
  // request replayable(). begin_retry() then expects the new server to send that same preamble
  // first and drops it (the client has it); an answer that differs there is a protocol error.
  // A chunk that brings the server's goodbye while the read is replayable (rows flushed with the
  // FATAL or 57P warning of a backend that exits) is dropped whole: the read stays replayable.
  void begin_request(bool record) {
    seen_.clear();
    skip_.clear();
    recording_ = record;
  }
  void begin_retry() {
    skip_ = seen_;
    skip_pos_ = 0;
    recording_ = true;
  }
  bool replayable() const { return recording_; }
  // Between transactions (a session about to park): the storage the last requests' answers grew
  // these to goes back; nothing in them is needed until the next request begins.
  void release_request_storage() {
    for (auto* s : {&seen_, &skip_, &captured_, &partial_, &error_}) std::string().swap(*s);
    std::vector<std::string>().swap(replacement_errors_);
    skip_pos_ = 0;
    pending_.release_if_empty();
    effects_.release_if_empty();
    synthetic_errors_.release_if_empty();
    if (parsing_.empty()) std::vector<std::shared_ptr<const pool::Statement>>().swap(parsing_);
    if (batch_effects_.empty()) std::vector<sql::SessionEffect>().swap(batch_effects_);
  }
  // The preamble kept for that (a wider one makes the read not replayable).
  static constexpr std::size_t kMaxPreamble = 64 * 1024;
  // Where to count queries (one per ReadyForQuery ending a client request), transactions (a
  // ReadyForQuery back to idle) and their times.
  void set_stats(observe::DbStats* stats, std::atomic<std::uint64_t>* client_queries) {
    stats_ = stats;
    client_queries_ = client_queries;
  }

  // What outlives the relay itself when its session parks (RelaySlot): the client's parameters
  // and the session's settings.
  struct Kept {
    pool::SharedParams client_params;
    observe::DbStats* stats = nullptr;
    std::atomic<std::uint64_t>* client_queries = nullptr;
    std::uint32_t max_statements = 10'000;
    bool pooled = false, pass_notifications = false;
  };
  // Nothing in it outlives the last transaction: no request, transaction, prepared statement,
  // LISTEN, pin or parameter change under way. A parked session then drops it (RelaySlot).
  bool disposable() const;
  Kept kept() && {
    return Kept{std::move(client_params), stats_, client_queries_, max_statements_, pooled_, pass_notifications_};
  }
  // The same, left in place (an online upgrade's record of a relay that stays whole).
  Kept peek_kept() const {
    return Kept{client_params, stats_, client_queries_, max_statements_, pooled_, pass_notifications_};
  }
  void restore(Kept&& k) {
    client_params = std::move(k.client_params);
    set_stats(k.stats, k.client_queries);
    max_statements_ = k.max_statements;
    pooled_ = k.pooled;
    pass_notifications_ = k.pass_notifications;
  }
  // Online upgrade (handoff.cpp): the client's prepared statements, by its names, and the same
  // given to a new relay.
  template <typename F>
  void each_statement(F f) const {
    for (auto& [name, cs] : statements_) f(name, *cs.stmt);
  }
  void adopt_statement(std::string name, std::shared_ptr<const pool::Statement> stmt) {
    statements_[std::move(name)] = {std::move(stmt), pool::prepare_sequence()};
  }
  // Number of ReadyForQuery messages seen (each completes a request cycle).
  std::uint64_t cycles() const { return cycles_; }
  // [digests]: the request about to be queued is of digest `d` (its first statement's).
  void digest_next(std::shared_ptr<observe::Digest> d, observe::DigestRoute route, observe::SlowWho who = {}) {
    trail_.next(std::move(d), route, std::move(who));
  }
  bool digest_armed() const { return trail_.digest_armed(); }
  // [[rules]] mirror: the request about to be queued is copied to `mirror`.
  void mirror_next(std::shared_ptr<router::Mirror> mirror, router::MirrorCopy copy) {
    trail_.next_mirror(std::move(mirror), std::move(copy));
  }

 private:
  enum class Kind : std::uint8_t { Simple, Parse, Bind, DescribeStmt, DescribePortal, Execute, Close, Sync };
  enum class Mode : std::uint8_t { Forward, Swallow, Synthetic };
  struct Entry {
    Kind kind;
    Mode mode = Mode::Forward;
    std::uint64_t stmt_id = 0;    // Parse: statement prepared on the server by this entry
    const pool::Statement* stmt = nullptr;  // Parse: to mark it validated on ParseComplete (kept in parsing_)
    std::int32_t effects = -1;    // Simple: index into effects_ when it changes session state
    bool failed = false;
    bool replace_error = false;  // its ErrorResponse is replaced by the first of replacement_errors_
    std::uint16_t digest = 0;    // Simple / Sync: its RequestTrail id (0: none)
  };

  // A statement as this client prepared it: `since` is the prepare_sequence() of its Parse.
  struct ClientStatement {
    std::shared_ptr<const pool::Statement> stmt;
    std::uint64_t since = 0;
  };
  void push(Entry e) {
    if (trail_.armed() && (e.kind == Kind::Simple || e.kind == Kind::Sync)) [[unlikely]]
      e.digest = trail_.open();
    pending_.push_back(e);
  }
  // The digest id of the request whose answer is coming (the first Simple / Sync pending).
  std::uint16_t answering_digest() const;
  // Makes sure `cs` exists on `server`, prepared since the client's Parse, queueing a Parse
  // (answer swallowed) if not.
  void ensure_prepared(const ClientStatement& cs, pool::ServerConn& server, std::string& server_out);
  void prepare_on_server(const std::shared_ptr<const pool::Statement>& stmt, pool::ServerConn& server,
                         std::string& server_out, Mode mode);
  void on_message_start(char type, pool::ServerConn& server, std::string& client_out);
  Verdict on_message_end(pool::ServerConn& server, std::string& client_out);
  bool announces_end(char type);
  void rename_statements_back(std::string& client_out);
  // What was appended to `out` from `start` on: dropped where it repeats the preamble the client
  // already has (a retry), kept in seen_ while replayable. False when a retry's answer differs.
  bool output_from(std::string& out, std::size_t start);
  // Where the run of whole messages that pass through, starting at message boundary `i` of
  // `chunk`, ends (`i` when there is none): they go to the client without a look at each. A
  // message passes through when on_message_start() and on_message_end() would only forward it:
  // a DataRow (no mirror hashing it), or a simple query's RowDescription or CommandComplete (no
  // digest or mirror reading its tag); and only when nothing synthetic is due before it, no COPY
  // is on, and no retry is recording what the client saw. None of that changes within a run, so
  // it is decided once per run.
  std::size_t run_end(wire::Bytes chunk, std::size_t i) const {
    if (copy_in_ || recording_ || pending_.empty() || pending_.front().mode == Mode::Synthetic) return i;
    const bool rows = !trail_.hashing();
    const bool tags = pending_.front().kind == Kind::Simple && !trail_.any();
    std::size_t j = i;
    while (chunk.size() - j >= 5) {
      const auto type = static_cast<char>(chunk[j]);
      if (!(type == wire::be::DataRow
                ? rows
                : tags && (type == wire::be::RowDescription || type == wire::be::CommandComplete)))
        break;
      std::uint32_t len = wire::load_u32(chunk.data() + j + 1);
      if (len < 4 || chunk.size() - j - 1 < len) break;
      j += 1 + len;
    }
    return j;
  }
  void drain_synthetic_internal(std::string& client_out) {  // at every server message: inline check
    if (!pending_.empty() && pending_.front().mode == Mode::Synthetic) [[unlikely]]
      drain_synthetic_slow(client_out);
  }
  void drain_synthetic_slow(std::string& client_out);
  void apply_effects(const std::vector<sql::SessionEffect>& effects, pool::ServerConn& server, char before);
  void apply_param(const sql::SessionEffect& e, pool::ServerConn& server);
  void note_listens(const std::vector<sql::SessionEffect>& effects);
  Verdict desync(std::string what);

  std::unordered_map<std::string, ClientStatement> statements_;  // by client name
  Fifo<std::string> synthetic_errors_;                           // ErrorResponses of failed Synthetic entries, in order
  Fifo<Entry> pending_;
  // The statements of Parse entries in flight, alive until their answers came (the client may
  // close its own copy meanwhile, and the registry keeps statements only weakly).
  std::vector<std::shared_ptr<const pool::Statement>> parsing_;
  Fifo<std::vector<sql::SessionEffect>> effects_;
  std::vector<sql::SessionEffect> batch_effects_;  // of Parses since the last Sync
  std::vector<sql::SessionEffect> deferred_;       // parameter changes of the open transaction
  // What deliberately failing stand-ins answer with, in order (a 42P05 Parse in a transaction, a
  // statement the firewall refused).
  std::vector<std::string> replacement_errors_;
  std::string pins_;                               // why pinned, comma-separated; empty: not pinned
  std::set<std::string> listening_;                // LISTEN channels, committed
  std::vector<std::string> new_listens_;
  bool listen_changed_ = false, notified_ = false, pass_notifications_ = false;
  bool may_unpin_ = false, untracked_ = false;
  std::int32_t effects_base_ = 0;

  // Server stream parser state.
  std::uint8_t hdr_[5]{};
  std::size_t hdr_len_ = 0;
  std::size_t body_left_ = 0;
  char type_ = 0;
  bool forward_ = true;
  bool capture_ = false;
  std::string captured_;

  char tx_status_ = 'I';
  bool unsynced_ = false;
  bool skipping_ = false;  // the server discards client messages until the next Sync
  bool flushed_ = false;   // the last extended-protocol message was a Flush
  bool copy_in_ = false;
  bool client_copy_done_ = false;  // the client sent CopyDone/CopyFail for the current COPY
  bool server_broken_ = false;
  bool taken_back_ = false;  // a replayable answer's last chunk was dropped: nothing more may follow
  std::string error_;
  const char* error_code_ = "08P01";
  std::uint32_t max_statements_ = 10'000;
  std::uint64_t cycles_ = 0;
  observe::DbStats* stats_ = nullptr;
  std::atomic<std::uint64_t>* client_queries_ = nullptr;
  bool in_query_ = false, in_xact_ = false;
  std::string seen_, skip_;  // replay: the preamble the client has; what a retry must repeat
  std::size_t skip_pos_ = 0;
  bool recording_ = false;
  std::string partial_;                 // a small message's start, held until the rest arrives
  std::size_t msg_start_ = 0;           // where the current message starts in this chunk's client_out (npos: earlier)
  bool pooled_ = false, hold_ = false;  // hold_: this Error/Notice is forwarded when complete (or dropped)
  std::string server_end_, server_end_code_, server_end_msg_;
  observe::Clock::time_point query_start_{}, xact_start_{};
  RequestTrail trail_;
};

// A session's relay: made on first use, dropped when the session parks with a disposable relay.
// An idle client then holds only Relay::Kept (docs/design-decisions.md, "A parked session keeps
// only what it owes its client").
class RelaySlot {
 public:
  Relay* operator->() const {
    if (!relay_) [[unlikely]]
      make();
    return relay_.get();
  }
  Relay& operator*() const { return *operator->(); }
  bool made() const { return relay_ != nullptr; }
  // Hibernation: the relay (when one is left: prepared statements) and what a dropped one kept
  // go with the sleep, and come back from it.
  std::unique_ptr<Relay> take_relay() { return std::move(relay_); }
  Relay::Kept take_kept() { return std::exchange(kept_, {}); }
  void restore(std::unique_ptr<Relay> r, Relay::Kept&& k) {
    relay_ = std::move(r);
    kept_ = std::move(k);
  }
  // About to park: the relay goes when nothing in it outlives the last transaction.
  void drop_if_disposable() {
    if (relay_ && relay_->disposable()) {
      kept_ = std::move(*relay_).kept();
      relay_.reset();
    }
  }

 private:
  [[gnu::noinline]] void make() const {
    relay_ = std::make_unique<Relay>();
    relay_->restore(std::move(kept_));
    kept_ = {};
  }
  mutable std::unique_ptr<Relay> relay_;
  mutable Relay::Kept kept_;
};

}  // namespace sluice::frontend::pg
