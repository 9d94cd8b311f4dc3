// MySQL result cache step: lookup or coalesced wait, capture with a limit, store if still current,
// invalidate at commit, forget at rollback.
#include "src/frontend/mysql/client_session.hpp"

namespace sluice::frontend::mysql {

awaitable<int> Session::try_cache(const sql::Lexed& text, std::optional<std::string_view> params) {
  auto cand = w().cache_policy_.get(ctx_).consider(text, schema_, user_, rule_cache());
  if (!cand) co_return 0;
  // Key: normalized text + schema + user + what shapes the answer's bytes and values.
  std::string key =
      fmt::format("{}\x1f{}\x1f{}\x1f{:x}/{:x}\x1f{}\x1f{:x}\x1f{}", cand->normalized, schema_, user_,
                  caps_ & (kFormatCaps | my::cap::SESSION_TRACK), mariadb_caps_, charset_, vars_.fingerprint,
                  pool_cfg_->cluster);  // the arms of a [[pools]] split serve one schema from different data
  if (params)
    key.append(
           "\x1f"
           "binary\x1f")
        .append(*params);
  const router::Position* token = routing_.read_your_writes_token();
  const bool shared_on = ctx_.shared_cache.on();
  if (shared_on) table_keys(cand->tables, w().cache_tables_);
  SharedAsk shared{ctx_.shared_cache, pool_cfg_->cluster, w().cache_tables_};
  const SharedAsk* ask = shared_on ? &shared : nullptr;  // (GCC 12: no ?: inside co_await)
  auto found = co_await cache_lookup(*ctx_.cache, key, pool_->name(), pool_cfg_->cluster, sock_.get_executor(),
                                     cache_wait_limit(cfg_->general), token, ask);
  if (found.hit) {
    // Stored as sent after a command with sequence 0, so the ids already fit.
    error_code ec;
    if (auto awaited = co_await io_.write_raw(*found.hit); !awaited) ec = asio::error::broken_pipe;
    if (stats_) stats_->bytes_out.fetch_add(found.hit->size(), std::memory_order_relaxed);
    co_return ec ? 0 : 1;
  }
  if (!found.fill) co_return 0;  // another client's fill is slow: ask the server, keep nothing
  if (!shared_on) table_keys(cand->tables, w().cache_tables_);
  w().fill_key_ = std::move(key);
  cache_ttl_ = cand->ttl;
  w().fill_ticket_ = ctx_.cache->fill_ticket(w().cache_tables_, pool_cfg_->cluster);
  capture_limit_ = snap_->config->cache.max_entry_bytes;
  co_return 2;
}

void Session::end_fill() {
  Work* work = work_.peek();
  if (!work || work->fill_key_.empty() || !ctx_.cache) return;  // the common case: no fill
  ctx_.cache->end_fill(work->fill_key_);
  work->fill_key_.clear();
}

void Session::finish_capture(bool relayed) {
  if (relayed && !server_lost_ && !w().last_.error && w().last_.warnings == 0 && !w().last_.local_infile &&
      !cmd_.in_transaction() && w().capture_.size() <= capture_limit_ && !w().capture_.empty()) {
    cache::Origin origin{routing_.split() && routing_.route.replica, std::move(w().route_position_)};
    keep_answer(*ctx_.cache, ctx_.shared_cache, w().fill_key_, std::move(w().capture_), w().cache_tables_, cache_ttl_,
                w().fill_ticket_, origin, pool_->name(), pool_cfg_->cluster, sock_.get_executor());
  }
  w().capture_.clear();
  end_fill();
}

void Session::note_for_invalidation(sql::StatementKind kind, bool opaque, const sql::TableRefs* written) {
  if (!ctx_.cache_enabled() || w().last_.error) return;
  using K = sql::StatementKind;
  if (kind == K::Rollback) {
    w().pending_invalidation_.clear();
    invalidate_all_ = false;
    return;
  }
  if (written) {  // a Write, or a text with one inside (BEGIN; UPDATE …; COMMIT)
    if (!written->complete || opaque) invalidate_all_ = true;
    for (auto& t : written->names) w().pending_invalidation_.push_back(cache::table_key(t));
  }
  if (cmd_.in_transaction()) return;
  if (w().pending_invalidation_.empty() && !invalidate_all_) return;
  // Replicas' answers to these tables are kept again once they cover the commit's GTID (or,
  // when the server did not report one, once every replica surely has it).
  auto& marks = ctx_.cache->write_marks();
  std::chrono::steady_clock::time_point horizon{};
  if (routing_.split()) {
    horizon = routing_.cluster().replayed_everywhere_by();
    marks.begin(pool_cfg_->cluster, w().pending_invalidation_, invalidate_all_, horizon);
  }
  if (invalidate_all_) ctx_.cache->invalidate_all();
  else
    for (auto& t : w().pending_invalidation_) ctx_.cache->invalidate_table(t);
  if (routing_.split())
    marks.settle(pool_cfg_->cluster, w().pending_invalidation_, invalidate_all_,
                 gtid_seen_ && !server_lost_ ? routing_.token : router::Position::unreachable(), horizon);
  w().pending_invalidation_.clear();
  invalidate_all_ = false;
}

}  // namespace sluice::frontend::mysql
