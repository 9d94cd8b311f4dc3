// MySQL routing (read/write split, read-your-writes tokens) and the server connection's
// lease: attach with replica fallback and token verification, detach at transaction boundaries,
// and leaving.
#include "src/frontend/mysql/client_session.hpp"
#include "src/observe/loop_clock.hpp"

namespace sluice::frontend::mysql {

sql::Classification Session::classify(std::string_view text) const {
  return sql::classify(text, sql::Dialect::Mysql, write_functions());
}

const std::vector<std::string>& Session::write_functions() const { return routing_.write_functions(); }

bool Session::command_is_read() {
  bool read = classified_read();
  if (ruled_ && w().rule_.route != config::RouteTo::Default) [[unlikely]]
    read = w().rule_.route == config::RouteTo::Replica;
  return read;
}

bool Session::classified_read() {
  const auto& p = io_.payload();
  if (p.empty()) return false;
  auto cmd = static_cast<std::uint8_t>(p[0]);
  sql::Classification cls;
  if (cmd == my::com::QUERY || cmd == my::com::STMT_PREPARE) {
    cls = command_cls_ ? *command_cls_ : classify(std::string_view(p).substr(1));
  } else if (cmd == my::com::STMT_EXECUTE) {
    std::uint32_t id = 0;
    ClientStmt* cs = find_stmt(io_.bytes(), id);
    return cs && cs->read;
  } else {
    return false;
  }
  if (cls.hint == sql::Hint::Primary) return false;
  if (cls.hint == sql::Hint::Replica) return true;
  // SET TRANSACTION READ ONLY makes the next transaction read-only: it and that transaction's
  // START go to one replica (the SET holds the connection for the next command).
  if (cls.kind == sql::StatementKind::SetTransaction && cls.read_only) return true;
  if (cls.kind == sql::StatementKind::Begin && ro_next_tx_) return true;
  return cls.read() || (cls.kind == sql::StatementKind::Begin && cls.read_only);
}

void Session::after_statement(sql::StatementKind kind, bool was_read) {
  if (!routing_.split() || w().last_.error ||
      routing_.cluster().config().consistency != config::Consistency::ReadYourWrites)
    return;
  if (gtid_seen_) {
    pending_write_ = false;
    return;
  }
  using K = sql::StatementKind;
  if (kind == K::Commit) {
    if (pending_write_) routing_.token = router::Position::unreachable();
    pending_write_ = false;
    return;
  }
  if (kind == K::Rollback) pending_write_ = false;
  if (was_read || kind != K::Write) return;  // reads sent to the primary (hints, fallback) are not writes
  if (cmd_.in_transaction()) pending_write_ = true;
  else routing_.token = router::Position::unreachable();
}

awaitable<pool::LeaseResult> Session::lease_for_attach(std::shared_ptr<pool::ServerConn> conn) {
  auto ex = sock_.get_executor();
  // On a cluster a rule sent the command to: that pool's line; else the route's, with fallback.
  if (on_rule_cluster_) co_return co_await pool_->lease(ex, cfg_->general.query_wait_timeout);
  auto r = co_await routing_.lease(std::move(conn), config::Protocol::Mysql, ex, cfg_->general.query_wait_timeout);
  pool_ = routing_.pool(routing_.route.member);
  co_return r;
}

void Session::route_to_rule_cluster() {
  const config::Pool* target = nullptr;
  auto cmd = io_.payload().empty() ? 0 : static_cast<std::uint8_t>(io_.payload()[0]);
  bool statement = cmd == my::com::QUERY || cmd == my::com::STMT_EXECUTE || cmd == my::com::STMT_PREPARE;
  if (ruled_ && statement && !w().rule_.cluster.empty()) {
    const config::Pool* home = cfg_->find_pool(config::Protocol::Mysql, pool_cfg_->database);
    target = home ? home->on_rule_cluster(w().rule_.cluster) : nullptr;
  }
  if (!target) {
    if (on_rule_cluster_) {  // back home
      on_rule_cluster_ = false;
      if (!routing_.split()) pool_ = routing_.primary();
    }
    return;
  }
  // Its primary, as this client's pool there; no read-your-writes bookkeeping for it.
  auto settings = pool_settings();
  auto tls = snap_->server_tls.find(target->cluster);
  settings.tls = tls == snap_->server_tls.end() ? pool::ServerTls{} : tls->second;
  auto p = ctx_.pools.get(*target, cfg_->clusters.at(target->cluster).primary, creds_, "", settings);
  if (learned_) p->set_credentials(creds_);
  pool_ = std::move(p);
  on_rule_cluster_ = true;
  routing_.route = LeaseRoute{};
}

void Session::choose_route() {
  bool read = command_is_read();
  pool_ = routing_.choose(read, ruled_ ? w().rule_.route_tags : nullptr);
}

bool Session::attach_now() {
  if (attached_for_command()) return true;
  // Only when the steps before the lease have nothing to do: attach() takes the rest.
  if (ctx_.controls.any_paused() || ctx_.generation() != generation_ || routing_.split() || ruled_ || on_rule_cluster_)
    return false;
  auto conn = pool_->try_lease_local(sock_.get_executor());
  if (!conn) return false;
  adopt_server(std::move(conn), std::nullopt);
  if (state_in_sync()) return true;
  sync_due_ = true;  // attach() syncs before it says ready
  return false;
}

awaitable<bool> Session::attach() {
  if (attached_for_command()) {
    if (!std::exchange(sync_due_, false)) co_return true;
    co_return co_await sync_state();
  }
  if (ctx_.controls.any_paused()) co_await wait_while_paused();
  if (ctx_.generation() != generation_) refresh_config();
  if (routing_.split()) choose_route();
  if ((ruled_ || on_rule_cluster_) && !cmd_.in_transaction()) [[unlikely]]
    route_to_rule_cluster();
  auto ex = sock_.get_executor();
  std::shared_ptr<pool::ServerConn> conn;
  // While a login's token waits for the primary's position, the lease goes through the routing
  // (which reads it there), not the pool's fast path.
  if (!routing_.split() || !routing_.login_pending()) conn = pool_->try_lease_local(ex);
  std::optional<observe::Clock::time_point> wait_start;
  if (!conn) {
    wait_start = observe::loop_now();
    info_->set_state(observe::ClientState::Waiting);
  }
  if (!conn && !on_rule_cluster_ && !routing_.route.replica && !routing_.route.verify && !routing_.login_pending()) {
    // The common wait: a turn in the pool's line, awaited in this frame (no coroutine frame of
    // the routing's or the pool's).
    auto deadline = *wait_start + cfg_->general.query_wait_timeout;
    auto turn = co_await pool_->async_take_turn(ex, deadline, asio::deferred);
    auto r = pool_->settle(turn, ex);
    if (!r) r = co_await pool_->finish_turn(std::move(turn), ex, deadline);
    if (!r->conn) {
      co_await report_lease_failure(*r);
      co_return false;
    }
    conn = std::move(r->conn);
  } else if (!conn || routing_.route.verify) {
    auto r = co_await lease_for_attach(std::move(conn));
    if (!r.conn) {
      co_await report_lease_failure(r);
      co_return false;
    }
    conn = std::move(r.conn);
  }
  adopt_server(std::move(conn), wait_start);
  if (state_in_sync()) co_return true;
  co_return co_await sync_state();
}

void Session::adopt_server(std::shared_ptr<pool::ServerConn> conn,
                           std::optional<observe::Clock::time_point> wait_start) {
  server_ = std::move(conn);
  w().server_buf_.clear();
  // An answer about to be captured: the position its server has surely applied before running
  // it (the last health check's, or a verification's; on the primary also this client's write).
  w().route_position_.parts.clear();
  if (routing_.split() && !w().fill_key_.empty()) w().route_position_ = routing_.applied();
  routing_.attached();
  if (wait_start && stats_) stats_->wait(observe::loop_micros_since(*wait_start));
  info_->set_state(observe::ClientState::Active);
  info_->server_id.store(server_->id, std::memory_order_relaxed);
  server_->client_id.store(info_->id, std::memory_order_relaxed);
  std::lock_guard lock(handle_->mu);
  handle_->attached = true;
  if (handle_->endpoint != server_->endpoint) handle_->endpoint = server_->endpoint;  // (usually the same)
  handle_->thread_id = server_->backend_pid;
  handle_->last_thread_id = server_->backend_pid;
  handle_->last_attach = observe::coarse_epoch_us();  // no shared counter on the hot path
}

awaitable<bool> Session::server_lost() {
  detach(false);
  if (retry_allowed_) {
    retry_pending_ = true;
    co_return false;
  }
  if (mode_ == config::PoolMode::Session)
    close_client();  // as the server's own loss would look: the client library reports 2013
  else co_await refuse(Refusal::LostBeforeRunning);
  co_return false;
}

void Session::detach(bool reusable) {
  sync_due_ = false;
  if (!server_) return;
  info_->set_state(observe::ClientState::Idle);
  info_->server_id.store(0, std::memory_order_relaxed);
  {
    std::lock_guard lock(handle_->mu);
    handle_->attached = false;
    handle_->thread_id = 0;
  }
  if (!w().server_buf_.empty()) reusable = false;  // unread server bytes: state unknown
  routing_.detached();
  pool_->release(std::move(server_), reusable);
  server_.reset();
  // What only an attached client needs goes back: the server read buffer to the worker's pool,
  // storage grown for a large answer to the allocator (an idle client holds neither).
  net::server_buffers().give(rbuf_);
  for (auto* s : {&w().server_buf_, &w().srv_out_, &w().cli_out_})
    if (s->capacity() > 4096) std::string().swap(*s);
}

void Session::maybe_detach() {
  if (!server_ || mode_ == config::PoolMode::Session) return;
  if (cmd_.holds_server()) return;
  if (kill_in_flight()) return;
  detach(true);
}

awaitable<void> Session::leave() {
  if (!server_) co_return;
  bool needs_reset = cmd_.needs_reset(mode_);
  if (broken_) {
    detach(false);
    co_return;
  }
  if (needs_reset) server_->dirty = true;
  if (server_->dirty) {
    bool reset = co_await reset_server();
    if (!reset) {
      detach(false);
      co_return;
    }
  }
  detach(true);
}

}  // namespace sluice::frontend::mysql
