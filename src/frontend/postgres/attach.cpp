// PostgreSQL client session, attaching and detaching: routing each batch to a member, leasing and
// preparing a server connection (parameters, read-your-writes checks), Sluice's own statements on
// it, answering for a lost one, detaching.
#include "src/frontend/postgres/client_session.hpp"
#include "src/observe/loop_clock.hpp"

namespace sluice::frontend::pg {

awaitable<bool> Session::run_internal(const std::string& sql, bool forward_param_changes, char* status) {
  std::string out;
  wire::query(out, sql);
  error_code ec;
  co_await server_->channel().write(asio::buffer(out), ec);
  if (ec) co_return false;
  bool ok = true;
  char final_status = 0;
  std::string to_client;
  auto each = [&](const wire::Frame& f) {
    if (f.type == wire::be::ErrorResponse) {
      wire::ErrorFields ef;
      wire::parse_error_fields(f.body, ef);
      if (!status)
        log::warn("pool {}: \"{}\" failed on server connection {}: {}", pool_->name(), sql, server_->id, ef.message);
      ok = false;
    } else if (f.type == wire::be::ParameterStatus) {
      std::string_view name, value;
      if (wire::parse_parameter_status(f.body, name, value)) {
        server_->params.set(name, value);
        const std::string* mine = relay_->client_params.find(name);
        if (forward_param_changes && (!mine || *mine != value)) {
          relay_->client_params.set(name, value);
          wire::parameter_status(to_client, name, value);
        }
      }
    } else if (f.type == wire::be::ReadyForQuery && f.body.size() == 1) {
      final_status = static_cast<char>(f.body[0]);
    }
    return true;
  };
  bool read = co_await read_until_ready(1, each);
  if (!read) co_return false;
  if (!to_client.empty()) co_await write_client(to_client);
  if (status) *status = final_status;
  co_return ok&& final_status == 'I';
}

awaitable<bool> Session::sync_params() {
  auto& server = *server_;
  if (server.params.fingerprint == relay_->client_params.fingerprint()) co_return true;  // identical sets
  std::vector<std::pair<std::string, std::string>> sets;                              // (name, statement)
  for (auto& [k, v] : relay_->client_params.items()) {
    if (!settable(k)) continue;
    const std::string* cur = server.params.find(k);
    if (cur && *cur == v) continue;
    if (!cur && !server.initial.find(k) && v.empty()) continue;
    if (k == "search_path") sets.emplace_back(k, fmt::format("SET search_path TO {}", v));
    else if (!v.empty() && v[0] == pool::kRawSqlValue)
      sets.emplace_back(k, fmt::format("SET {} TO {}", k, v.substr(1)));
    else sets.emplace_back(k, fmt::format("SET {} TO {}", k, wire::quote_literal(v)));
  }
  std::vector<std::string> defaults;
  for (auto& [k, v] : server.params.items)
    if (!server.initial.find(k) && !relay_->client_params.find(k)) {
      sets.emplace_back(k, fmt::format("SET {} TO DEFAULT", k));
      defaults.push_back(k);
    }
  if (sets.empty()) co_return true;
  std::string out;
  for (auto& st : sets) wire::query(out, st.second);
  error_code ec;
  co_await server.channel().write(asio::buffer(out), ec);
  if (ec) co_return false;
  std::string to_client;
  std::vector<std::string> refused;
  std::size_t answered = 0;
  bool fatal = false;
  auto each = [&](const wire::Frame& f) {
    if (f.type == wire::be::ErrorResponse) {
      wire::ErrorFields ef;
      wire::parse_error_fields(f.body, ef);
      if (ef.severity == "FATAL" || ef.severity == "PANIC") return !(fatal = true);
      const std::string& name = sets[answered].first;
      log::info("pool {}: server connection {} refused session parameter {}: {}", pool_->name(), server.id, name,
                ef.message);
      wire::notice_response(to_client, "WARNING", std::string(ef.code), std::string(ef.message), {},
                            fmt::format("Sluice applies the session parameters of this client on each server "
                                        "connection it gets; the server refused \"{}\", so it is no longer applied",
                                        name));
      refused.push_back(name);
    } else if (f.type == wire::be::ParameterStatus) {
      std::string_view name, value;
      if (wire::parse_parameter_status(f.body, name, value)) {
        server.params.set(name, value);
        const std::string* mine = relay_->client_params.find(name);
        if (!mine || *mine != value) {
          relay_->client_params.set(name, value);
          wire::parameter_status(to_client, name, value);
        }
      }
    } else if (f.type == wire::be::ReadyForQuery) {
      ++answered;
    }
    return true;
  };
  bool read = co_await read_until_ready(sets.size(), each);
  if (!read || fatal) co_return false;
  for (auto& k : refused) relay_->client_params.erase(k);
  for (auto& [k, v] : relay_->client_params.items())
    if (settable(k) && !server.initial.find(k)) server.params.set(k, v);
  for (auto& k : defaults) server.params.erase(k);
  if (!to_client.empty()) co_await write_client(to_client);
  co_return true;
}

void Session::set_cancel_target(bool attached) {
  if (!cancel_) return;  // logging in: set once the client's key exists
  if (!attached) {
    cancel_->endpoint.store(nullptr, std::memory_order_release);
    return;
  }
  cancel_->server_pid_key.store(std::uint64_t(server_->backend_pid) << 32 | server_->backend_key,
                                std::memory_order_relaxed);
  cancel_->endpoint.store(&pool_->endpoint(), std::memory_order_release);
}

void Session::choose_route() {
  routing_.route.replica = false;
  if (!routing_.split()) return;
  sql::Classification cls;
  wire::Frame f;
  const StatementCheck* rc = nullptr;  // [[rules]] on the request's first statement
  const bool rules = ctx_.rules_on();
  if (wire::next_frame(buffered_bytes(), max_packet_, f) == wire::Decode::Ok) {
    if (f.type == wire::fe::Query) {
      wire::Reader r(f.body);
      std::string_view text = r.cstr();
      w().analysis_.of(text, sql::Dialect::Postgres);  // lexed already when the cache looked
      cls = w().analysis_.classification(routing_.write_functions());
      if (rules) [[unlikely]]
        rc = &statement_check(text, false);
    } else if (f.type == wire::fe::Parse) {
      wire::ParseView pv;
      if (wire::parse_parse(f.body, pv)) {
        w().analysis_.of(pv.query, sql::Dialect::Postgres);
        cls = w().analysis_.classification(routing_.write_functions());
        if (rules) [[unlikely]]
          rc = &statement_check(pv.query, false);
      }
    } else if (f.type == wire::fe::Bind) {
      // A named statement prepared earlier: classified once, when first bound.
      wire::BindHead bh;
      const pool::Statement* st = wire::parse_bind_head(f.body, bh) ? relay_->find_statement(bh.statement) : nullptr;
      if (st) {
        int route = st->route.load(std::memory_order_relaxed);
        if (route < 0) {
          wire::Frame pf;
          wire::ParseView pv;
          auto bytes = wire::as_bytes(st->parse_message);
          route = (wire::next_frame(bytes, bytes.size(), pf) == wire::Decode::Ok && wire::parse_parse(pf.body, pv) &&
                   sql::classify(pv.query, sql::Dialect::Postgres, routing_.write_functions()).read())
                      ? 1
                      : 0;
          st->route.store(route, std::memory_order_relaxed);
        }
        if (route == 1) cls.kind = sql::StatementKind::Read;
        if (rules) [[unlikely]] {  // judged on its text (forwarding judges the Bind on the same)
          wire::Frame pf;
          wire::ParseView pv;
          auto bytes = wire::as_bytes(st->parse_message);
          if (wire::next_frame(bytes, bytes.size(), pf) == wire::Decode::Ok && wire::parse_parse(pf.body, pv))
            rc = &statement_check(pv.query, false, false);  // forwarding consumes it
        }
      }
    }
  }
  bool read = cls.read() || (cls.kind == sql::StatementKind::Begin && cls.read_only);
  if (cls.hint == sql::Hint::Primary) read = false;
  if (cls.hint == sql::Hint::Replica) read = true;
  const std::vector<std::pair<std::string, std::string>>* tags = nullptr;
  if (rc && !rc->refusal) [[unlikely]] {
    if (rc->rules.route != config::RouteTo::Default) read = rc->rules.route == config::RouteTo::Replica;
    tags = rc->rules.route_tags;
  }
  // A read outside a transaction may run again on another member if its server dies first.
  retryable_read_ = read && cls.kind != sql::StatementKind::Begin;
  if (!read) wrote_ = true;
  pool_ = routing_.choose(read, tags);
}

bool Session::needs_write_token() const {
  return routing_.split() && wrote_ && !routing_.route.replica && relay_->tx_status() == 'I' &&
         routing_.cluster().config().consistency == config::Consistency::ReadYourWrites;
}

awaitable<void> Session::take_write_token() {
  wrote_ = false;
  auto pos = co_await router::fetch_pg_lsn(*server_);
  log::debug("read-your-writes token {}", pos ? pos->text() : std::string("(failed)"));
  if (pos) {
    routing_.token = *pos;
  } else {  // the write's position is unknown: this client's reads stay on the primary
    routing_.token = router::Position::unreachable();
    relay_->mark_server_broken();
  }
}

void Session::route_to_rule_cluster() {
  const StatementCheck* rc = nullptr;
  wire::Frame f;
  if (ctx_.rules_on() && relay_->tx_status() == 'I' &&
      wire::next_frame(buffered_bytes(), max_packet_, f) == wire::Decode::Ok) {
    if (f.type == wire::fe::Query) {
      wire::Reader r(f.body);
      std::string_view text = r.cstr();
      if (r.ok()) rc = &statement_check(text, false);
    } else if (f.type == wire::fe::Parse) {
      wire::ParseView pv;
      if (wire::parse_parse(f.body, pv)) rc = &statement_check(pv.query, false);
    }
  }
  const config::Pool* target = nullptr;
  if (rc && !rc->refusal && !rc->rules.cluster.empty()) {
    const config::Pool* home = snap_->config->find_pool(config::Protocol::Postgres, pool_cfg_->database);
    target = home ? home->on_rule_cluster(rc->rules.cluster) : nullptr;
  }
  if (!target) {
    if (on_rule_cluster_) {  // back home
      on_rule_cluster_ = false;
      if (!routing_.split()) pool_ = routing_.primary();
    }
    return;
  }
  // Its primary, with this client's user and database; no read-your-writes token there (the
  // home cluster's positions say nothing about it), no retry elsewhere.
  pool_ = ctx_.pools.get(*target, snap_->config->clusters.at(target->cluster).primary, creds_, server_db_,
                         state::pool_settings(*snap_, *target));
  on_rule_cluster_ = true;
  routing_.route = LeaseRoute{};
  retryable_read_ = false;
  wrote_ = false;
}

void Session::prepare_attach() {
  if (ctx_.generation() != generation_) refresh_config();
  if (routing_.split()) choose_route();
  if ((ctx_.rules_on() || on_rule_cluster_) && mode_ != config::PoolMode::Session) [[unlikely]]
    route_to_rule_cluster();
  batch_sent_ = false;
  relay_->journal.clear();
  journal_on_ =
      routing_.split() && retryable_read_ && relay_->tx_status() == 'I' && !failed_tx_ && retries_ < kMaxReadRetries;
  if (retrying_) relay_->begin_retry();  // the client has the answer's preamble: expect it again
  else relay_->begin_request(journal_on_);
  retrying_ = false;
  info_->request_time_us.store(observe::coarse_epoch_us(), std::memory_order_relaxed);
  if (routing_.split() && routing_.login_pending()) [[unlikely]]
    return;  // attach_rest() leases through the routing, which reads the login's position
  server_ = pool_->try_lease_local(client_.get_executor());
}

bool Session::attach_ready() {
  if (!server_ || routing_.route.verify || server_->params.fingerprint != relay_->client_params.fingerprint())
    return false;
  relay_->reset_server_side();
  relay_->client_out.clear();
  relay_->server_out.clear();
  finish_attach();
  return true;
}

void Session::finish_attach() {
  if (capturing_) stamp_route();
  set_cancel_target(true);
  routing_.attached();
  info_->set_state(observe::ClientState::Active);
  info_->server_id.store(server_->id, std::memory_order_relaxed);
  server_->client_id.store(info_->id, std::memory_order_relaxed);
}

awaitable<bool> Session::attach_rest() {
  std::optional<observe::Clock::time_point> wait_start;
  if (!server_) {
    wait_start = observe::loop_now();
    info_->set_state(observe::ClientState::Waiting);
  }
  if (!server_ || routing_.route.verify) {
    auto r = co_await routing_.lease(std::move(server_), config::Protocol::Postgres, client_.get_executor(),
                                     snap_->config->general.query_wait_timeout);
    pool_ = routing_.pool(routing_.route.member);
    if (!r.conn) {
      co_await report_lease_failure(r);
      co_return false;
    }
    server_ = std::move(r.conn);
  }
  relay_->reset_server_side();
  relay_->client_out.clear();
  relay_->server_out.clear();
  bool in_sync = server_->params.fingerprint == relay_->client_params.fingerprint();
  if (!in_sync) in_sync = co_await sync_params();
  if (!in_sync) {
    pool_->release(std::move(server_), false);
    co_await send_error("FATAL", "08006", "sluice: could not apply session parameters on the server connection");
    co_return false;
  }
  if (wait_start && stats_) stats_->wait(observe::loop_micros_since(*wait_start));
  finish_attach();
  co_return true;
}

std::string Session::end_note() const {
  const auto& m = relay_->server_end_message();
  return m.empty() ? std::string() : ", the server said: " + m;
}

awaitable<bool> Session::fail_in_flight() {
  const std::string server = pool_->endpoint().text(), note = end_note();
  if (relay_->mid_message_to_client()) {
    log::warn("pool {}: server connection {} lost in the middle of a message to client {}{}; closing the client",
              pool_->name(), server_->id, info_->id, note);
    end_reason_ = "its server connection was lost in the middle of a message";
    detach(false);
    co_return false;
  }
  const bool in_tx = relay_->tx_status() != 'I';
  const Loss loss = classify_loss(in_tx, retryable_read_ && relay_->outstanding_groups() <= 1);
  const std::string code = loss_sqlstate(loss), message = "sluice: " + loss_text(loss, server), hint = loss_hint(loss);
  log::warn("pool {}: server connection {} lost while serving client {}{}; the client gets {} and stays connected",
            pool_->name(), server_->id, info_->id, note, code);
  if (wrote_ && !in_tx) {  // a write's outcome is unknown: this client's reads stay on the primary
    routing_.token = router::Position::unreachable();
    wrote_ = false;
  }
  relay_->client_out.clear();
  retries_ = 0;
  discard_until_sync_ = relay_->fail_outstanding(code, message, hint, in_tx ? 'E' : 'I', relay_->client_out);
  failed_tx_ = in_tx;
  if (!in_tx) {  // a write may have landed: its tables' answers go, and replicas' until they surely have it
    apply_invalidations(routing_.split());
    settle_invalidations(router::Position::unreachable());
  }
  detach(false);
  co_return co_await write_client(relay_->client_out);
}

awaitable<bool> Session::recreate_failed_tx() {
  failed_tx_ = false;
  char status = 0;
  co_await run_internal("BEGIN; SELECT 1/0", false, &status);
  if (status != 'E') {
    detach(false);
    co_await send_error("FATAL", "08006",
                        "sluice: could not restore this client's failed transaction on a server connection");
    co_return false;
  }
  relay_->set_tx_status('E');
  co_return true;
}

void Session::detach(bool reusable) {
  if (timeout_armed_) [[unlikely]]
    disarm_statement_timeout();
  if (!server_) return;
  unwatch_server();
  server_dead_ = false;
  info_->set_state(observe::ClientState::Idle);
  info_->server_id.store(0, std::memory_order_relaxed);
  routing_.detached();
  set_cancel_target(false);
  pool_->release(std::move(server_), reusable && !relay_->server_broken());
  net::server_buffers().give(relay_->server_in);  // no read is pending: both directions have ended
}

}  // namespace sluice::frontend::pg
