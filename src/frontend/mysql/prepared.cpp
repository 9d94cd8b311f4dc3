// MySQL server-side prepared statements: client statement ids mapped to statements prepared on
// demand on whichever server connection runs them, the shared registry and PREPARE_OK cache,
// execute (with the cache), long data, cursors (COM_STMT_FETCH), reset and close.
#include "src/frontend/mysql/client_session.hpp"

namespace sluice::frontend::mysql {

namespace {

// Process-wide: statements by (schema, text), and the PREPARE_OK response first seen for each,
// so that later prepares of the same text are answered without a server connection.
pool::StatementRegistry& statements() {
  static pool::StatementRegistry r;
  return r;
}
std::mutex g_prep_mu;  // guards Statement::prepare_response

std::shared_ptr<const std::string> cached_prepare(const pool::Statement& stmt) {
  std::lock_guard lock(g_prep_mu);
  return stmt.prepare_response;
}
void cache_prepare(const pool::Statement& stmt, std::string bytes) {
  std::lock_guard lock(g_prep_mu);
  if (!stmt.prepare_response) stmt.prepare_response = std::make_shared<const std::string>(std::move(bytes));
}

}  // namespace

bool Session::evict_prepared() {
  if (!evictable()) return false;
  for (auto& [id, server_id] : server_->statement_ids) pending_closes_.push_back(server_id);
  server_->statement_ids.clear();
  server_->prepared.clear();
  w().held_error_.clear();
  log::debug("client {}: the server's prepared statement limit: closed Sluice's cached statements on its connection",
             info_->id);
  return true;
}

awaitable<bool> Session::ensure_prepared(const ClientStmt& cs) {
  auto id = cs.stmt->id;
  if (server_->statement_ids.count(id)) {
    server_->prepared.touch(id);
    co_return true;
  }
  std::string cmd;
  my::build_command(cmd, my::com::STMT_PREPARE, cs.query);
  auto r = co_await exchange(cmd, ResponseKind::Prepare, false);
  if (r && r->error && r->err.code == kTooManyPrepared && evict_prepared())
    r = co_await exchange(cmd, ResponseKind::Prepare, false);
  if (!r) co_return false;
  if (r->error || !r->prepare) {
    co_await send_err(r->err.code, r->err.sqlstate, r->err.message);
    co_return false;
  }
  remember_server_stmt(id, r->prepare->statement_id);
  co_return true;
}

void Session::remember_server_stmt(std::uint64_t id, std::uint32_t server_id) {
  server_->statement_ids[id] = server_id;
  if (auto evicted = server_->prepared.insert(id)) {
    auto it = server_->statement_ids.find(evicted);
    if (it != server_->statement_ids.end()) {
      pending_closes_.push_back(it->second);
      server_->statement_ids.erase(it);
    }
  }
}

awaitable<bool> Session::com_prepare() {
  if (stmts_.size() >= cfg_->general.max_client_prepared_statements) {
    co_return co_await refuse(Refusal::TooManyStatements, cfg_->general.max_client_prepared_statements);
  }
  std::string query(std::string_view(io_.payload()).substr(1));
  w().analysis_.of(query, sql::Dialect::Mysql);
  CommandClassification classified(*this);  // once: routing, the statement's read and kind
  auto stmt = intern_statement(query);
  std::uint32_t client_id = next_stmt_id_++;
  if (auto cached = cached_prepare(*stmt)) {
    // Answered here: the server connection that runs it later prepares it on demand.
    my::PrepareOk pok;
    my::parse_prepare_ok(
        my::as_bytes(*cached).subspan(4, my::payload_length(reinterpret_cast<const std::uint8_t*>(cached->data()))),
        pok);
    stmts_[client_id] = new_client_stmt(stmt, query, pok.params, pok.columns, classified);
    std::string out = *cached;
    my::patch_statement_id(reinterpret_cast<std::uint8_t*>(out.data() + 4), client_id);
    out = rewrite_prepare_for_client(out);
    co_return co_await io_.write_raw(out);
  }
  std::string capture;
  w().held_error_.clear();
  if (auto awaited = co_await relay(io_.payload(), ResponseKind::Prepare, client_id, &capture); !awaited)
    co_return false;
  if (!w().held_error_.empty()) {  // 1461 held back by exchange(): make room and try once more
    std::string refused = std::move(w().held_error_);
    if (!evict_prepared()) {
      if (auto awaited = co_await io_.write_raw(refused); !awaited) co_return false;
    } else {
      capture.clear();
      if (auto awaited = co_await relay(io_.payload(), ResponseKind::Prepare, client_id, &capture); !awaited)
        co_return false;
      if (!w().held_error_.empty()) {
        bool written = co_await io_.write_raw(w().held_error_);
        if (!written) co_return false;
      }
    }
    w().held_error_.clear();
  }
  if (!w().last_.error && w().last_.prepare && server_) {
    remember_server_stmt(stmt->id, w().last_.prepare->statement_id);
    stmts_[client_id] = new_client_stmt(stmt, query, w().last_.prepare->params, w().last_.prepare->columns, classified);
    if (capture.size() < 65536) cache_prepare(*stmt, std::move(capture));
  } else if (w().last_.error) {
    --next_stmt_id_;
  }
  maybe_detach();
  co_return true;
}

std::shared_ptr<const pool::Statement> Session::intern_statement(const std::string& query) const {
  // Keyed by everything that shapes the response: schema, format capabilities, handshake
  // character set and the session variables (character_set_results changes the metadata).
  return statements().intern(query, fmt::format("{}\x01{:x}/{:x}\x01{}\x01{:x}", schema_, caps_ & kFormatCaps,
                                                mariadb_caps_, charset_, vars_.fingerprint));
}

ClientStmt Session::new_client_stmt(std::shared_ptr<const pool::Statement> stmt, const std::string& query,
                                    std::uint16_t params, std::uint16_t columns, const CommandClassification& c) {
  ClientStmt cs{std::move(stmt), query, params, columns, {}, statement_is_read(c), c.kind(), {}, false, nullptr};
  if (cs.kind == sql::StatementKind::Write) cs.writes = w().analysis_.tables();  // the text w().analysis_ holds
  cs.opaque_write = c.cls && c.cls->opaque_write;
  return cs;
}

bool Session::statement_is_read(const CommandClassification& c) const {
  if (!routing_.split()) return false;
  const auto& cls = *c.cls;
  if (cls.hint != sql::Hint::None) return cls.hint == sql::Hint::Replica;
  return cls.read();
}

ClientStmt* Session::find_stmt(my::Bytes payload, std::uint32_t& id) {
  my::Reader r(payload);
  r.u8();
  id = r.u32();
  if (!r.ok()) return nullptr;
  auto it = stmts_.find(id);
  return it == stmts_.end() ? nullptr : &it->second;
}

awaitable<bool> Session::unknown_stmt(std::uint32_t id, std::string_view where) {
  co_return co_await refuse(Refusal::UnknownStatement, id, where);
}

awaitable<bool> Session::com_execute() {
  std::uint32_t id = 0;
  ClientStmt* cs = find_stmt(io_.bytes(), id);
  if (!cs) co_return co_await unknown_stmt(id, "mysqld_stmt_execute");
  if (ctx_.digests_on()) [[unlikely]]
    digest_execute(*cs);
  my::ExecuteView v;
  if (!my::parse_execute(io_.bytes(), cs->params, v)) {
    co_return co_await refuse(Refusal::MalformedExecute);
  }
  // The execute as the server gets it (its statement id patched below), in storage the session
  // keeps from one execute to the next.
  std::string& payload = w().execute_;
  if (v.new_params_bound) {
    cs->types.assign(io_.payload(), v.types_offset, 2u * cs->params);
    payload.assign(io_.payload());
  } else if (cs->params > 0 && cs->types.size() == 2u * cs->params) {
    // The server connection may never have seen this client's types: send them again.
    my::execute_with_types(payload, io_.bytes(), v, cs->types);
  } else {
    payload.assign(io_.payload());
  }
  // Result cache: a read executed outside a transaction, without a cursor, keyed by its
  // parameter bytes.
  std::string* capture = nullptr;
  if (ctx_.cache_enabled() && cs->kind == sql::StatementKind::Read && v.flags == 0 && !server_ &&
      cmd_.may_use_cache() && !cmd_.long_data && (cs->params == 0 || cs->types.size() == 2u * cs->params)) {
    std::string params = cs->params == 0 ? std::string() : payload.substr(v.null_bitmap_offset);
    std::string query = cs->query;
    int served = co_await try_cache(sql::lex(query, sql::Dialect::Mysql), std::string_view(params));
    if (served == 1) {
      if (digesting_) w().digest_hit_ = true;
      co_return true;
    }
    if (served == 2) {
      w().capture_.clear();
      capture = &w().capture_;
    }
  }
  cmd_read_ = cs->kind == sql::StatementKind::Read;
  server_lost_ = false;
  // stmts_ is node-based (a rehash moves no element) and only the commands COM_STMT_CLOSE,
  // COM_RESET_CONNECTION and COM_CHANGE_USER remove statements: none runs during this one.
  const ClientStmt& stmt_ref = *cs;
  bool relayed = false;
  // A read outside a transaction runs again elsewhere (prepared there first) if its server dies
  // before any of its answer reached the client.
  const bool retryable =
      routing_.split() && !server_ && !cmd_.in_transaction() && stmt_ref.read && v.flags == 0 && !cmd_.long_data;
  for (int attempt = 0;; ++attempt) {
    retry_allowed_ = retryable && attempt < kMaxReadRetries;
    retry_pending_ = false;
    if (capture) w().capture_.clear();
    bool ready = attach_now();
    if (!ready) ready = co_await attach();
    if (ready && !prepared_on_server(stmt_ref)) {
      ready = co_await ensure_prepared(stmt_ref);
      if (!ready) {
        if (!server_ && retry_allowed_) retry_pending_ = true;  // the server broke during the prepare
        else if (!server_ && sock_.is_open()) co_await refuse(Refusal::LostBeforeRunning);
      }
    }
    if (!ready && retry_pending_) {
      retry_allowed_ = false;
      log::warn("mysql client {}: server lost before executing a read; running it again", handle_->id);
      continue;
    }
    retry_allowed_ = false;
    if (!ready) {
      if (capture) finish_capture(false);
      maybe_detach();
      co_return !client_gone_ && sock_.is_open();
    }
    my::patch_statement_id(reinterpret_cast<std::uint8_t*>(payload.data()), server_->statement_ids[stmt_ref.stmt->id]);
    retry_allowed_ = retryable && attempt < kMaxReadRetries;
    gtid_seen_ = false;
    relayed = co_await relay(payload, ResponseKind::Query, 0, capture);
    retry_allowed_ = false;
    if (!retry_pending_) break;
    log::warn("mysql client {}: server lost before answering a read; running it again", handle_->id);
  }
  bool was_read = routing_.split() && stmt_ref.read;
  if (capture) finish_capture(relayed);
  if (!relayed) co_return false;
  after_statement(stmt_ref.kind, was_read);
  if (ctx_.cache_enabled())
    note_for_invalidation(stmt_ref.kind, stmt_ref.opaque_write,
                          stmt_ref.kind == sql::StatementKind::Write ? &stmt_ref.writes : nullptr);
  cmd_.after_execute(w().last_, v.flags != 0);
  maybe_detach();
  co_return true;
}

awaitable<bool> Session::com_long_data() {
  std::uint32_t id = 0;
  ClientStmt* cs = find_stmt(io_.bytes(), id);
  if (!cs || io_.payload().size() < 7) co_return true;  // no response, as the server does
  if (auto awaited = co_await attach(); !awaited) co_return !client_gone_ && sock_.is_open();
  auto ref = *cs;
  if (auto awaited = co_await ensure_prepared(ref); !awaited) co_return sock_.is_open();
  std::string payload = io_.payload();
  my::patch_statement_id(reinterpret_cast<std::uint8_t*>(payload.data()), server_->statement_ids[ref.stmt->id]);
  w().srv_out_.clear();
  my::append_packets(w().srv_out_, payload, 0);
  error_code ec;
  co_await server_->channel().write(asio::buffer(w().srv_out_), ec);
  if (ec) {
    co_await broken_server(false, false);
    co_return true;
  }
  cmd_.after_long_data();  // the data lives on this server statement until the execute
  co_return true;
}

bool Session::com_close() {
  std::uint32_t id = 0;
  if (find_stmt(io_.bytes(), id)) stmts_.erase(id);
  // The server statement stays for other clients (and the LRU); no response, as specified.
  return true;
}

awaitable<bool> Session::com_stmt_reset() {
  std::uint32_t id = 0;
  ClientStmt* cs = find_stmt(io_.bytes(), id);
  if (!cs) co_return co_await unknown_stmt(id, "mysqld_stmt_reset");
  if (!server_ || !server_->statement_ids.count(cs->stmt->id)) {
    cmd_.after_stmt_reset();
    co_return co_await send_ok();  // nothing on any server to reset
  }
  std::string payload = io_.payload();
  my::patch_statement_id(reinterpret_cast<std::uint8_t*>(payload.data()), server_->statement_ids[cs->stmt->id]);
  if (auto awaited = co_await relay(payload, ResponseKind::Single); !awaited) co_return false;
  cmd_.after_stmt_reset();
  maybe_detach();
  co_return true;
}

awaitable<bool> Session::com_fetch() {
  std::uint32_t id = 0;
  ClientStmt* cs = find_stmt(io_.bytes(), id);
  if (!cs) co_return co_await unknown_stmt(id, "mysqld_stmt_fetch");
  if (!cmd_.cursor_open || !server_ || !server_->statement_ids.count(cs->stmt->id))
    co_return co_await refuse(Refusal::NoOpenCursor, id);
  std::string payload = io_.payload();
  my::patch_statement_id(reinterpret_cast<std::uint8_t*>(payload.data()), server_->statement_ids[cs->stmt->id]);
  if (auto awaited = co_await relay(payload, ResponseKind::Fetch); !awaited) co_return false;
  cmd_.after_fetch(w().last_);
  maybe_detach();
  co_return true;
}

}  // namespace sluice::frontend::mysql
