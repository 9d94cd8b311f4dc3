// PostgreSQL client session, the result cache step: lookup or coalesced wait, capture of a complete
// answer, invalidation when writes end.
#include "src/frontend/postgres/client_session.hpp"

namespace sluice::frontend::pg {

std::string Session::cache_key(const std::string& normalized) {
  auto& k = w();
  const auto& params = relay_->client_params;
  if (!k.cache_key_params_.same_set(params) || k.cache_key_generation_ != generation_ || k.cache_key_tail_.empty()) {
    std::string& tail = k.cache_key_tail_;
    tail.clear();
    // The cluster too: the arms of a [[pools]] split serve one database name from different data.
    const std::string* parts[] = {&database_, &user_, &pool_cfg_->cluster};
    for (const std::string* part : parts) tail.append("\x1f").append(*part);
    for (const char* p :
         {"search_path", "TimeZone", "DateStyle", "IntervalStyle", "client_encoding", "standard_conforming_strings"}) {
      tail.push_back('\x1f');
      if (auto* v = params.find(p)) tail += *v;
    }
    k.cache_key_params_ = params;
    k.cache_key_generation_ = generation_;
  }
  std::string key;
  key.reserve(normalized.size() + k.cache_key_tail_.size());
  key.append(normalized).append(k.cache_key_tail_);
  return key;
}

awaitable<bool> Session::try_cache(const wire::Frame& f) {
  wire::Reader r(f.body);
  std::string_view text = r.cstr();
  if (!r.ok()) co_return false;
  const auto& lexed = w().analysis_.of(text, sql::Dialect::Postgres);  // also for routing and invalidation
  if (!w().analysis_.classification(routing_.write_functions()).read()) co_return false;
  const StatementCheck* rc = nullptr;
  if (ctx_.firewall_on() || ctx_.rules_on()) [[unlikely]] {
    rc = &statement_check(text, false);
    if (rc->refusal) co_return false;  // forwarding answers it
  }
  auto cand = w().cache_policy_.get(ctx_).consider(lexed, database_, user_, rule_cache(rc));
  if (!cand) co_return false;
  co_return co_await lookup_or_fill(cache_key(cand->normalized), *cand, f.size());
}

awaitable<bool> Session::try_cache_extended() {
  std::size_t pos = 0;
  std::string shape, bind_rest, exec_body, query;
  auto all = buffered_bytes();
  for (;;) {
    wire::Frame m;
    if (wire::next_frame(all.subspan(pos), max_packet_, m) != wire::Decode::Ok) co_return false;  // incomplete
    pos += m.size();
    shape.push_back(m.type);
    if (m.type == wire::fe::Parse) {
      wire::ParseView pv;
      if (!wire::parse_parse(m.body, pv) || !pv.name.empty() || shape.size() != 1) co_return false;
      query = std::string(pv.query);
    } else if (m.type == wire::fe::Bind) {
      wire::BindHead bh;
      if (!wire::parse_bind_head(m.body, bh) || !bh.portal.empty() || !bind_rest.empty()) co_return false;
      if (query.empty()) {
        const pool::Statement* st = relay_->find_statement(bh.statement);
        if (!st) co_return false;
        wire::Frame pf;
        wire::ParseView pv;
        auto bytes = wire::as_bytes(st->parse_message);
        if (wire::next_frame(bytes, bytes.size(), pf) != wire::Decode::Ok || !wire::parse_parse(pf.body, pv))
          co_return false;
        query = std::string(pv.query);
      }
      bind_rest = std::string(wire::as_sv(m.body.subspan(bh.rest_offset)));
    } else if (m.type == wire::fe::Describe) {
      wire::TargetView tv;
      if (!wire::parse_target(m.body, tv) || tv.kind != 'P' || !tv.name.empty()) co_return false;
    } else if (m.type == wire::fe::Execute) {
      exec_body = std::string(wire::as_sv(m.body));
    } else if (m.type == wire::fe::Sync) {
      break;
    } else {
      co_return false;
    }
    if (shape.size() > 5) co_return false;
  }
  if (bind_rest.empty() || exec_body.empty() || query.empty()) co_return false;
  const auto& lexed = w().analysis_.of(query, sql::Dialect::Postgres);
  if (!w().analysis_.classification(routing_.write_functions()).read()) co_return false;
  const StatementCheck* rc = nullptr;
  if (ctx_.firewall_on() || ctx_.rules_on()) [[unlikely]] {
    rc = &statement_check(query, false);
    if (rc->refusal) co_return false;  // forwarding answers it
  }
  auto cand = w().cache_policy_.get(ctx_).consider(lexed, database_, user_, rule_cache(rc));
  if (!cand) co_return false;
  std::string key = cache_key(cand->normalized);
  key.append(
         "\x1f"
         "extended\x1f")
      .append(shape)
      .append("\x1f")
      .append(bind_rest)
      .append("\x1f")
      .append(exec_body);
  co_return co_await lookup_or_fill(std::move(key), *cand, pos);
}

awaitable<bool> Session::lookup_or_fill(std::string key, const cache::Candidate& cand, std::size_t consume) {
  auto wait = cache_wait_limit(snap_->config->general);
  auto started = observe::Clock::now();
  const bool shared_on = ctx_.shared_cache.on();
  if (shared_on) table_keys(cand.tables, w().cache_tables_);
  SharedAsk shared{ctx_.shared_cache, pool_cfg_->cluster, w().cache_tables_};
  const SharedAsk* ask = shared_on ? &shared : nullptr;  // (GCC 12: no ?: inside co_await)
  auto found = co_await cache_lookup(*ctx_.cache, key, pool_->name(), pool_cfg_->cluster, client_.get_executor(), wait,
                                     ryw_token(), ask);
  if (found.hit) {
    in_begin_ += consume;
    rule_memo_ = false;  // the statement was answered: judged and counted
    if (ctx_.digests_on()) [[unlikely]]  // the text the lookup analysed
      ctx_.digests.get("postgres", w().analysis_.fingerprint(), database_, user_)->cache_hit();
    auto& out = w().hit_out_;
    out.assign(*found.hit);
    wire::ready_for_query(out, 'I');
    co_await write_client(out);
    auto us = observe::micros_since(started);
    stats_->query(us);  // a query (and a transaction) the client made, answered by Sluice
    stats_->xact(us);
    info_->queries.fetch_add(1, std::memory_order_relaxed);
    co_return true;
  }
  if (!found.fill) co_return false;  // another client's fill is slow: ask the server, keep nothing
  if (!shared_on) table_keys(cand.tables, w().cache_tables_);
  w().fill_key_ = key;                   // this session fills it: end_fill when done, whatever happens
  capturing_ = true;
  w().fill_ticket_ = ctx_.cache->fill_ticket(w().cache_tables_, pool_cfg_->cluster);
  w().capture_.clear();
  w().cache_key_ = std::move(key);
  cache_ttl_ = cand.ttl;
  co_return false;
}

void Session::capture(const std::string& bytes) {
  if (w().capture_.size() + bytes.size() > snap_->config->cache.max_entry_bytes) {
    capturing_ = false;
    w().capture_.clear();
    return;
  }
  w().capture_ += bytes;
}

void Session::end_fill() {
  Work* work = work_.peek();
  if (!work || work->fill_key_.empty() || !ctx_.cache) return;  // the common case: no fill
  ctx_.cache->end_fill(work->fill_key_);
  work->fill_key_.clear();
}

void Session::finish_capture() {
  struct EndFill {
    Session* s;
    ~EndFill() { s->end_fill(); }
  } end{this};
  if (!capturing_) return;
  capturing_ = false;
  std::size_t pos = 0;
  char last = 0, status = 0;
  auto all = wire::as_bytes(w().capture_);
  for (;;) {
    wire::Frame fr;
    if (wire::next_frame(all.subspan(pos), all.size(), fr) != wire::Decode::Ok) break;
    if (fr.type == wire::be::ErrorResponse) return;
    last = fr.type;
    if (fr.type == wire::be::ReadyForQuery && fr.body.size() == 1) status = static_cast<char>(fr.body[0]);
    pos += fr.size();
  }
  if (pos != w().capture_.size() || last != wire::be::ReadyForQuery || status != 'I') return;
  // Kept with the position its server had before it ran the query (stamped at attach): served
  // only to clients whose writes that covers; a replica's kept only if it covers the writes
  // through Sluice to the tables it read.
  cache::Origin origin{routing_.route.replica, std::move(w().route_position_)};
  w().capture_.resize(w().capture_.size() - 6);  // ReadyForQuery is sent fresh on every hit
  keep_answer(*ctx_.cache, ctx_.shared_cache, w().cache_key_, std::move(w().capture_), w().cache_tables_, cache_ttl_,
              w().fill_ticket_, origin, pool_->name(), pool_cfg_->cluster, client_.get_executor());
  w().capture_.clear();
}

void Session::note_for_invalidation(const wire::Frame& f) {
  std::string_view text;
  wire::Reader r(f.body);
  if (f.type == wire::fe::Parse) r.cstr();
  text = r.cstr();
  if (!r.ok()) return;
  const auto& lexed = w().analysis_.of(text, sql::Dialect::Postgres);  // as the lookup and routing saw it
  const auto& cls = w().analysis_.classification(routing_.write_functions());
  if (temp_table_statement(lexed)) no_cache_ = true;  // its reads could name a temporary table
  if (cls.kind == sql::StatementKind::Rollback) {
    w().pending_invalidation_.clear();
    invalidate_all_ = false;
    return;
  }
  if (!cls.writes) return;
  const auto& refs = w().analysis_.tables();
  if (!refs.complete || cls.opaque_write) invalidate_all_ = true;
  for (auto& t : refs.names) w().pending_invalidation_.push_back(cache::table_key(t));
}

bool Session::temp_table_statement(const sql::Lexed& lexed) {
  sql::Token prev;
  for (const auto& t : lexed.tokens) {
    if ((t.is("temp") || t.is("temporary")) &&
        (prev.is("create") || prev.is("into") || prev.is("global") || prev.is("local")))
      return true;
    prev = t;
  }
  return false;
}

void Session::apply_invalidations(bool position_follows) {
  if (!ctx_.cache_enabled() || relay_->tx_status() != 'I') return;
  if (w().pending_invalidation_.empty() && !invalidate_all_) return;
  if (position_follows)
    ctx_.cache->write_marks().begin(pool_cfg_->cluster, w().pending_invalidation_, invalidate_all_,
                                    routing_.cluster().replayed_everywhere_by());
  if (invalidate_all_) ctx_.cache->invalidate_all();
  else
    for (auto& t : w().pending_invalidation_) ctx_.cache->invalidate_table(t);
  if (position_follows) {
    w().marked_tables_ = std::move(w().pending_invalidation_);
    marked_all_ = invalidate_all_;
    marks_pending_ = true;
  }
  w().pending_invalidation_.clear();
  invalidate_all_ = false;
}

void Session::settle_invalidations(const router::Position& at) {
  if (!marks_pending_) return;
  marks_pending_ = false;
  ctx_.cache->write_marks().settle(pool_cfg_->cluster, w().marked_tables_, marked_all_, at,
                                   routing_.cluster().replayed_everywhere_by());
  w().marked_tables_.clear();
}

void Session::stamp_route() { w().route_position_ = routing_.applied(); }

const router::Position* Session::ryw_token() const { return routing_.read_your_writes_token(); }

}  // namespace sluice::frontend::pg
