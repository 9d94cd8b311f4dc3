// MySQL session state: bringing a server connection to the client's session (schema,
// multi-statement option, variables), what the server reports about it, pins, and the commands
// that change it (COM_SET_OPTION, COM_RESET_CONNECTION, COM_CHANGE_USER).
#include "src/frontend/mysql/client_session.hpp"

#include <cctype>

namespace sluice::frontend::mysql {

namespace {

// Session variables a server reports but nobody can SET, and Sluice's own tracking switches.
bool syncable(std::string_view name) {
  static const std::unordered_set<std::string_view> skip = {
      "last_gtid",  "warning_count",    "error_count",    "in_transaction", "rand_seed1",
      "rand_seed2", "insert_id",        "last_insert_id", "identity",       "external_user",
      "proxy_user", "pseudo_thread_id", "timestamp",      "gtid_seq_no"};
  if (name.empty() || name.rfind("session_track_", 0) == 0 || skip.count(name)) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

std::string sql_value(std::string_view v) {
  bool numeric = !v.empty();
  std::size_t i = (v.size() > 1 && v[0] == '-') ? 1 : 0;
  bool dot = false;
  for (; i < v.size() && numeric; ++i) {
    if (v[i] == '.' && !dot) dot = true;
    else if (!std::isdigit(static_cast<unsigned char>(v[i]))) numeric = false;
  }
  if (numeric) return std::string(v);
  std::string s = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') s.push_back('\\');
    s.push_back(c);
  }
  s.push_back('\'');
  return s;
}

}  // namespace

awaitable<bool> Session::sync_state() {
  if (server_->dirty) {
    bool reset = co_await reset_server();
    if (!reset) co_return co_await server_lost();
  }
  if (!schema_.empty() && server_->schema != schema_) {
    std::string cmd;
    my::build_command(cmd, my::com::INIT_DB, schema_);
    auto r = co_await exchange(cmd, ResponseKind::Single, false);
    if (!r) co_return co_await server_lost();
    if (r->error) {  // the schema was dropped meanwhile
      co_await send_err(r->err.code, r->err.sqlstate, r->err.message);
      detach(true);
      co_return false;
    }
    server_->schema = schema_;
  }
  bool server_multi = (server_->capabilities & my::cap::MULTI_STATEMENTS) != 0;
  if (server_->multi_statements.value_or(server_multi) != multi_statements_) {
    std::string cmd;
    my::build_command(cmd, my::com::SET_OPTION);
    my::put_u16(cmd, multi_statements_ ? 0 : 1);
    auto r = co_await exchange(cmd, ResponseKind::Single, false);
    if (!r || r->error) co_return co_await server_lost();
    server_->multi_statements = multi_statements_;
  }
  if (server_->params.fingerprint != vars_.fingerprint) {
    std::string set;
    for (auto& [k, v] : vars_.items) {
      auto* cur = server_->params.find(k);
      if (cur && *cur == v) continue;
      set += set.empty() ? "SET SESSION " : ", ";
      set += k + " = " + (k == "character_set_results" && (v.empty() || v == "NULL") ? "NULL" : sql_value(v));
    }
    for (auto& [k, v] : server_->params.items)
      if (!vars_.find(k)) {
        set += set.empty() ? "SET SESSION " : ", ";
        auto* base = server_->initial.find(k);  // the handshake's character set
        if (!base) set += k + " = DEFAULT";
        else if (base->empty()) set += k + " = NULL";
        else set += k + " = " + sql_value(*base);
      }
    if (!set.empty()) {
      std::string cmd;
      my::build_command(cmd, my::com::QUERY, set);
      auto r = co_await exchange(cmd, ResponseKind::Query, false);
      if (!r) co_return co_await server_lost();
      if (r->error) {
        log::warn("cannot re-apply session state on {}: {} ({})", server_->endpoint.text(), r->err.message, set);
        co_await send_err(r->err.code, r->err.sqlstate, r->err.message);
        server_->dirty = true;
        detach(true);
        co_return false;
      }
    }
    server_->params = vars_;
  }
  co_return true;
}

awaitable<bool> Session::reset_server() {
  std::string cmd;
  my::build_command(cmd, my::com::RESET_CONNECTION);
  auto r = co_await exchange(cmd, ResponseKind::Single, false);
  if (!r || r->error) co_return false;
  cmd.clear();
  my::build_command(cmd, my::com::QUERY,
                    "SET SESSION session_track_system_variables = '*', session_track_schema = ON, "
                    "session_track_state_change = ON");
  r = co_await exchange(cmd, ResponseKind::Query, false);
  if (!r || r->error) co_return false;
  server_->params = {};
  server_->multi_statements.reset();
  server_->prepared.clear();
  server_->statement_ids.clear();
  server_->dirty = false;
  co_return true;
}

void Session::absorb(const ResponseSummary& s) {
  cmd_.absorb_status(s);
  if (s.changes.schema) {
    schema_ = *s.changes.schema;
    if (server_) server_->schema = schema_;
  }
  bool explained = s.changes.schema.has_value();
  for (auto& [k, v] : s.changes.variables) {
    explained = true;
    if (k == "last_gtid") {  // the client's last write: its reads need a replica that has it
      if (auto pos = router::parse_gtid_pos(v); pos && !pos->empty()) {
        routing_.token = *pos;
        gtid_seen_ = true;
      }
      continue;
    }
    if (k.rfind("session_track_", 0) == 0) {
      pin("session tracking changed by the client");
      continue;
    }
    if (!syncable(k)) continue;
    vars_.set(k, v);
    if (server_) server_->params.set(k, v);
  }
  if (s.changes.state_changed && !explained)
    pin("session state (user variables, temporary tables or prepared statements)");
}

void Session::pin(const char* why) {
  if (!cmd_.pinned) log::debug("mysql client {} pinned to its server connection: {}", handle_->id, why);
  cmd_.pinned = true;
  if (server_) server_->dirty = true;
}

awaitable<bool> Session::com_set_option() {
  my::Reader r(io_.bytes());
  r.u8();
  std::uint16_t opt = r.u16();
  if (!r.ok() || opt > 1) co_return co_await refuse(Refusal::UnknownCommand);
  const bool before = multi_statements_;
  multi_statements_ = opt == 0;
  if (server_) {  // attached (in a transaction): apply now, else at the next attach
    std::string cmd(io_.payload()), server = server_->endpoint.text();
    auto res = co_await exchange(cmd, ResponseKind::Single, false);
    if (!res) {  // the server connection, and what the client held on it, is gone: say so
      multi_statements_ = before;
      co_return co_await refuse(Refusal::ServerLost, loss_text(Loss::InTransaction, server));
    }
    server_->multi_statements = multi_statements_;
  }
  std::string p;
  if (caps_ & my::cap::DEPRECATE_EOF) {
    my::Ok ok;
    ok.header = 0xFE;
    ok.status = cmd_.status;
    my::build_ok(p, ok, (caps_ & my::cap::SESSION_TRACK) != 0);
  } else {
    my::build_eof(p, 0, cmd_.status);
  }
  co_return co_await io_.reply(p);
}

void Session::forget_client_state() {
  vars_ = {};
  stmts_.clear();
  cmd_.reset();
  multi_statements_ = (caps_ & my::cap::MULTI_STATEMENTS) != 0;
}

awaitable<bool> Session::com_reset_connection() {
  bool was_attached = server_ != nullptr;
  bool clean = false;
  if (was_attached) clean = co_await reset_server();
  if (was_attached) detach(clean);
  forget_client_state();
  bool ok = co_await send_ok();
  co_return ok;
}

awaitable<bool> Session::com_change_user() {
  my::ChangeUser cu;
  if (!my::parse_change_user(io_.bytes(), caps_, cu)) {
    co_return co_await refuse(Refusal::MalformedChangeUser);
  }
  // Whatever the old user left on a server connection goes with it.
  if (server_) {
    server_->dirty = true;
    if (auto awaited = co_await reset_server(); !awaited) detach(false);
    else detach(true);
  }
  forget_client_state();
  user_ = cu.user;
  if (cu.charset) charset_ = static_cast<std::uint8_t>(cu.charset);
  std::string plugin = cu.auth_plugin.empty() ? std::string("mysql_native_password") : cu.auth_plugin;
  std::optional<config::AuthMethod> method;
  if (auto awaited = co_await check_access(cu.database, method); !awaited) co_return false;
  if (auto awaited = co_await authenticate(plugin, cu.auth_response, method); !awaited) co_return false;
  if (auto awaited = co_await take_connection_places(cu.database); !awaited) co_return false;
  if (auto awaited = co_await choose_pool(cu.database); !awaited) co_return false;
  {
    std::lock_guard lock(handle_->mu);
    handle_->user = user_;
  }
  co_return co_await send_ok();
}

}  // namespace sluice::frontend::mysql
