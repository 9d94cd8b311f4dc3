// PostgreSQL client session, transaction pooling: pinned and untracked session state, resets before
// another client gets the server connection, and freeing databases for CREATE/DROP DATABASE.
#include "src/frontend/postgres/client_session.hpp"

namespace sluice::frontend::pg {

awaitable<bool> Session::pins_released() {
  auto n = co_await run_scalar(
      "SELECT (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) + "
      "(SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()) + "
      "(SELECT count(*) FROM pg_cursors WHERE is_holdable) + "
      "(SELECT count(*) FROM pg_prepared_statements WHERE from_sql) + "
      "(SELECT CASE WHEN session_user = current_setting('session_authorization') THEN 0 ELSE 1 END)");
  if (n && *n == "0") {
    relay_->unpin();
    publish_pins();
    co_return true;
  }
  co_return false;
}

void Session::publish_pins() {
  published_pins_ = relay_->pin_reasons();
  std::lock_guard lock(info_->mu);
  info_->pinned = published_pins_.empty() ? nullptr : std::make_unique<const std::string>(published_pins_);
}

awaitable<bool> Session::reset_server_session() {
  bool ok = co_await run_internal("DISCARD ALL", false);
  server_->params.erase_if([&](auto& kv) { return !server_->initial.find(kv.first); });
  server_->prepared.clear();
  server_->listening = false;
  relay_->clear_untracked();
  relay_->unpin();
  publish_pins();
  co_return ok;
}

awaitable<std::optional<std::string>> Session::run_scalar(const std::string& sql) {
  std::string out;
  wire::query(out, sql);
  error_code ec;
  co_await server_->channel().write(asio::buffer(out), ec);
  if (ec) co_return std::nullopt;
  std::optional<std::string> value;
  bool ok = true;
  auto each = [&](const wire::Frame& f) {
    if (f.type == wire::be::ErrorResponse) ok = false;
    if (f.type == wire::be::DataRow && !value && f.body.size() >= 6) {
      std::int32_t len = static_cast<std::int32_t>(wire::load_u32(f.body.data() + 2));
      if (len >= 0 && static_cast<std::size_t>(len) + 6 <= f.body.size())
        value = std::string(reinterpret_cast<const char*>(f.body.data() + 6), static_cast<std::size_t>(len));
    }
    return true;
  };
  bool read = co_await read_until_ready(1, each);
  if (!read || !ok) co_return std::nullopt;
  co_return value;
}

awaitable<void> Session::release_server_after_client() {
  if (!server_) co_return;
  unwatch_server();
  if (!relay_->quiescent() || relay_->server_broken() || server_writing_) {
    // Response still in flight: state unknown, so the connection is closed (the server ends
    // the session when it notices, as when a client leaves it directly). Inside a transaction,
    // whose work is rolled back anyway, the running statement is cancelled first.
    if (!relay_->server_broken() && server_->backend_pid && relay_->tx_status() != 'I')
      asio::co_spawn(client_.get_executor(),
                     send_cancel_request(pool_->endpoint(), server_->backend_pid, server_->backend_key),
                     asio::detached);
    detach(false);
    co_return;
  }
  set_cancel_target(false);
  bool ok = true;
  const auto& pgc = snap_->config->postgres;
  if (mode_ == config::PoolMode::Session || pgc.server_reset_query_always || relay_->pinned() || relay_->untracked()) {
    if (relay_->tx_status() != 'I') ok = co_await run_internal("ROLLBACK", false);
    if (ok && !pgc.server_reset_query.empty()) {
      ok = co_await run_internal(pgc.server_reset_query, false);
      server_->params.erase_if([&](auto& kv) { return !server_->initial.find(kv.first); });
      server_->prepared.clear();
    }
  } else if (relay_->tx_status() != 'I') {
    ok = co_await run_internal("ROLLBACK", false);
  }
  if (ok && server_->listening) {
    ok = co_await run_internal("UNLISTEN *", false);
    server_->listening = false;
  }
  pool_->release(std::move(server_), ok);
  net::server_buffers().give(relay_->server_in);
}

bool Session::needs_free_databases(const wire::Frame& f) {
  if (f.type == wire::fe::Query) {  // the common case, without measuring the text first
    std::size_t i = 0;
    while (i < f.body.size() && (f.body[i] == ' ' || f.body[i] == '\n' || f.body[i] == '\t' || f.body[i] == '(')) ++i;
    if (i == f.body.size()) return false;
    char c = static_cast<char>(f.body[i] | 0x20);
    if (c != 'c' && c != 'd' && c != 'a' && f.body[i] != '/' && f.body[i] != '-') return false;
  }
  std::string_view text;
  if (f.type == wire::fe::Query) {
    wire::Reader r(f.body);
    text = r.cstr();
  } else {
    wire::ParseView pv;
    if (!wire::parse_parse(f.body, pv)) return false;
    text = pv.query;
  }
  // Cheap first look: the statement starts with CREATE, DROP or ALTER (or a comment).
  std::size_t i = text.find_first_not_of(" \t\r\n(");
  if (i == std::string_view::npos) return false;
  char c = static_cast<char>(text[i] | 0x20);
  if (c != 'c' && c != 'd' && c != 'a' && text[i] != '/' && text[i] != '-') return false;
  w().exclusive_dbs_ = sql::databases_needing_exclusive_use(text);
  return !w().exclusive_dbs_.empty();
}

awaitable<void> Session::free_databases() {
  const config::Endpoint endpoint = pool_->endpoint();
  asio::steady_timer timer(client_.get_executor());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    bool busy = false;
    for (auto& p : ctx_.pools.all()) {
      if (!(p->endpoint() == endpoint)) continue;
      if (std::find(w().exclusive_dbs_.begin(), w().exclusive_dbs_.end(), p->database()) == w().exclusive_dbs_.end()) continue;
      p->close_idle();
      auto u = p->usage();
      std::size_t own = p.get() == pool_.get() && server_ ? 1 : 0;  // this client's own: its business
      busy = busy || u.active + u.connecting > own;
    }
    if (!busy || std::chrono::steady_clock::now() >= deadline) break;
    timer.expires_after(std::chrono::milliseconds(50));
    error_code ec;
    co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  log::info("client {}: closed Sluice's idle server connections to {} before {}", info_->id,
            fmt::join(w().exclusive_dbs_, ", "), "a statement that needs them unused");
}

}  // namespace sluice::frontend::pg
