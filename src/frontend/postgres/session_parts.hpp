// The parts of a PostgreSQL client session (client_session.hpp) that come and go with its
// state: SessionWork, what only a working session needs (made on first use, dropped when it
// parks), and SessionKeep, what a sleeping session keeps for its client while the Session
// itself is gone (sleep.cpp).
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "src/frontend/common/cache_lookup.hpp"
#include "src/frontend/common/session_core.hpp"
#include "src/frontend/postgres/cancel.hpp"
#include "src/frontend/postgres/relay.hpp"

namespace sluice::frontend::pg {

// What a session needs only while it works: made on first use, dropped when it parks (an idle
// client holds none of it).
struct SessionWork {
  explicit SessionWork(const asio::any_io_executor& ex) : write_done_(ex) {}
  // What the idle wait reads into: a short request fits whole (pgbench's SELECT is 60 bytes).
  std::array<std::uint8_t, 128> first_bytes_;
  wire::StartupPacket startup_;  // login (the console also reads its application_name)
  std::string client_error_;
  // Result cache: the answer being captured for `cache_key_`, the fill this session owns, and
  // writes not yet applied (pending_invalidation_) or whose position is being learned
  // (marked_tables_, see take_write_token).
  std::string capture_, cache_key_, fill_key_;
  std::string hit_out_;  // a cache hit's answer and ReadyForQuery (its storage kept)
  CachePolicyMemo cache_policy_;
  // cache_key()'s part after the statement (database, user, cluster, the parameters that change
  // an answer), made again only when the client's parameters are another set
  // (pool::SharedParams::same_set: this copy makes every change a new one) or the configuration
  // was reloaded.
  std::string cache_key_tail_;
  pool::SharedParams cache_key_params_;
  std::uint64_t cache_key_generation_ = ~std::uint64_t{0};
  std::vector<std::string> cache_tables_, pending_invalidation_, marked_tables_;
  cache::FillTicket fill_ticket_;
  router::Position route_position_;  // a replica's replayed position when the read was routed there
  // The Query / Parse text being looked at, analysed once for the cache lookup, routing and
  // invalidation (and again only when the text changes).
  sql::Analysis analysis_;
  asio::steady_timer write_done_;
  // CREATE/DROP DATABASE: the databases to free.
  std::vector<std::string> exclusive_dbs_;
  // statement_check()'s verdict on check_text_ (valid while rule_memo_), the rules it points
  // into, and a rule's rewrite of the last message sent.
  std::string check_text_;
  StatementCheck check_;
  std::shared_ptr<const access::QueryRules> rules_held_;
  std::string rewritten_;
  asio::steady_timer statement_timer_{write_done_.get_executor()};  // a rule's statement_timeout
  // [digests]: the last Parse's statement and its digest (its Bind runs it).
  std::shared_ptr<observe::Digest> parsed_digest_;
  std::string parsed_text_;  // its text, kept only for the slow-query log's log_parameters
  std::string parsed_name_;
  std::string judged_parse_;  // the statement a Parse of this batch named (parse_judged_)
  // Nothing in it matters after the idle wait: no capture, fill or invalidation in progress.
  bool disposable() const {
    return capture_.empty() && fill_key_.empty() && pending_invalidation_.empty() && marked_tables_.empty();
  }
};

// Hibernation (frontend/common/admission.hpp, parking::Sleeper): what a parked session on
// plain TCP with nothing in progress keeps for its client while the Session itself is gone.
// Its user and database are ClientInfo's.
struct SessionKeep {
  std::shared_ptr<observe::ClientInfo> info;
  std::shared_ptr<observe::DbStats> stats;
  std::shared_ptr<const state::Snapshot> snap;
  std::shared_ptr<const pool::Credentials> creds;
  ClientLimits limits;                   // [limits] places (every client holds its user and database places) and rates
  std::unique_ptr<Relay> relay;          // the client's prepared statements, when it has any
  Relay::Kept kept;
  CancelTarget* cancel = nullptr;           // in the cancel registry until forget() or the woken session removes it
  std::unique_ptr<router::Position> token;  // read-your-writes (null: none, most clients)
  state::SplitPlace split;
  const config::Pool* pool_cfg = nullptr;
  std::uint64_t generation = 0;
  std::uint32_t pid = 0, own_notify_pid = 0;
  config::PoolMode mode = config::PoolMode::Transaction;
  int idle_ticks = 0;
  bool failed_tx = false, discard_until_sync = false, no_cache = false, idle_timed_out = false;

  bool tick();  // a janitor period: true when client_idle_timeout has passed
  std::uint64_t client_id() const { return info ? info->id : 0; }
  asio::io_context* worker() const { return info->worker; }
  static bool farewell(const unsigned char* b, std::size_t n) {
    return n == 5 && b[0] == wire::fe::Terminate && wire::load_u32(b + 1) == 4;
  }
  void forget(state::Context* ctx);  // never woken (its worker stopped): what ~Session would undo
};

}  // namespace sluice::frontend::pg
