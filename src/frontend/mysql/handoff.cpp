// MySQL client session, online upgrade (src/app/upgrade.hpp): a session waiting for its client's
// next command, with nothing under way, written as a record for the new process; and the session
// made again from such a record there, on the client's descriptor. The client notices nothing:
// its connection id, capabilities, character set, schema, session variables, prepared statements
// (their ids), read-your-writes position and autocommit status stay.
#include "src/frontend/mysql/client_session.hpp"

#include <sys/socket.h>

#include "src/frontend/common/handoff_fields.hpp"
#include "src/frontend/common/pool_rules.hpp"
#include "src/pool/credentials_record.hpp"

namespace sluice::frontend::mysql {

namespace {
constexpr std::uint32_t kRecordVersion = 1;
}

bool Session::movable() {
  return connected_ && !console_ && !tls_ && !server_ && !io_.compressed() && io_.leftover().empty() &&
         !cmd_.holds_server() && pending_closes_.empty() && !pending_write_ && !retry_pending_ && !broken_ &&
         !client_gone_ && end_reason_.empty() && pool_cfg_ && mode_ != config::PoolMode::Session;
}

std::optional<std::string> Session::handoff_record() {
  if (work_.peek() || !movable()) return std::nullopt;
  net::RecordWriter w;
  w.u32(kRecordVersion);
  w.u64(info_->id);
  {
    std::lock_guard lock(info_->mu);
    w.str(info_->addr);
    w.u32(info_->port);
    w.str(info_->database);
    w.str(info_->application_name);
  }
  w.i64(std::chrono::duration_cast<std::chrono::seconds>(info_->connect_time.time_since_epoch()).count());
  w.u64(info_->queries.load(std::memory_order_relaxed));
  w.str(user_);
  w.flag(learned_);
  pool::write_credentials(w, *creds_);
  w.u32(caps_);
  w.u32(mariadb_caps_);
  w.u8(charset_);
  w.flag(multi_statements_);
  w.str(schema_);
  w.u32(static_cast<std::uint32_t>(vars_.items.size()));
  for (auto& [name, value] : vars_.items) {
    w.str(name);
    w.str(value);
  }
  w.u32(cmd_.status);
  w.u32(static_cast<std::uint32_t>(stmts_.size()));
  for (auto& [id, cs] : stmts_) {
    w.u32(id);
    w.str(cs.query);
    w.u32(cs.params);
    w.u32(cs.columns);
    w.str(cs.types);
  }
  w.u32(next_stmt_id_);
  write_position(w, routing_.token);
  w.str(pool_cfg_->cluster);
  w.u8(static_cast<std::uint8_t>(mode_));
  w.flag(gtid_seen_);
  w.flag(ro_next_tx_);
  return std::move(w.bytes());
}

void Session::handed_over() {
  log::debug("upgrade: client {} handed over to the new process", info_->id);
  connected_ = false;  // its session goes on there: no disconnection logged here
}

awaitable<void> Session::adopt(int fd, std::string record, state::Context& ctx) {
  auto ex = co_await asio::this_coro::executor;
  auto refuse_fd = [&](const char* why) {
    log::warn("upgrade: a MySQL client could not be taken over ({}); its connection is closed", why);
    std::string p, out;
    my::build_err(p, 1053, "08S01", "Server shutdown in progress: Sluice was upgraded and could not keep this session");
    my::append_packets(out, p, 0);
    [[maybe_unused]] auto n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::close(fd);
  };
  net::RecordReader r(record);
  if (r.u32() != kRecordVersion) {
    refuse_fd("a record of another version");
    co_return;
  }
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  const bool v6 = ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0 && local.ss_family == AF_INET6;
  tcp::socket sock(ex);
  error_code ec;
  sock.assign(v6 ? tcp::v6() : tcp::v4(), fd, ec);
  if (ec) {
    ::close(fd);
    co_return;
  }
  sock.non_blocking(true, ec);
  const std::uint64_t id = r.u64();
  net::Origin origin;
  origin.addr = r.str();
  origin.port = static_cast<std::uint16_t>(r.u32());
  std::string database = r.str(), app = r.str();
  const auto connected_at = std::chrono::system_clock::time_point(std::chrono::seconds(r.i64()));
  const std::uint64_t queries = r.u64();
  auto s = std::make_unique<Session>(std::move(sock), ctx, origin);
  // The client keeps its connection id (KILL, the console): ids here start past the old ones.
  client_registry().remove(s->handle_->id);
  ctx.client_table.remove(s->info_->id);
  s->info_->id = id;
  s->handle_->id = static_cast<std::uint32_t>(id);
  client_registry().add(s->handle_);
  ctx.client_table.add(s->info_);
  s->info_->connect_time = connected_at;
  s->info_->queries.store(queries, std::memory_order_relaxed);
  {
    std::lock_guard lock(s->info_->mu);
    s->info_->application_name = app;
  }
  s->user_ = r.str();
  s->learned_ = r.flag();
  auto snap = s->snap_;
  const bool learned = s->learned_;
  s->creds_ = pool::read_credentials(r, [&](const std::string& u) -> std::shared_ptr<const pool::Credentials> {
    if (learned) return nullptr;
    auto it = snap->credentials.find(u);
    return it == snap->credentials.end() ? nullptr : it->second;
  });
  s->caps_ = r.u32();
  s->mariadb_caps_ = r.u32();
  s->charset_ = r.u8();
  s->multi_statements_ = r.flag();
  std::string schema = r.str();
  for (std::uint32_t i = 0, n = r.u32(); i < n && r.ok(); ++i) {
    std::string name = r.str();
    s->vars_.set(name, r.str());
  }
  s->cmd_.status = static_cast<std::uint16_t>(r.u32());
  struct Stmt {
    std::uint32_t id;
    std::string query, types;
    std::uint16_t params, columns;
  };
  std::vector<Stmt> stmts;
  for (std::uint32_t i = 0, n = r.u32(); i < n && r.ok(); ++i) {
    Stmt st;
    st.id = r.u32();
    st.query = r.str();
    st.params = static_cast<std::uint16_t>(r.u32());
    st.columns = static_cast<std::uint16_t>(r.u32());
    st.types = r.str();
    stmts.push_back(std::move(st));
  }
  s->next_stmt_id_ = r.u32();
  router::Position token = read_position(r);
  std::string cluster = r.str();
  auto mode = static_cast<config::PoolMode>(r.u8());
  s->gtid_seen_ = r.flag();
  s->ro_next_tx_ = r.flag();
  if (!r.done() || !s->creds_) {
    s->end_reason_ = "its upgrade record did not read back";
    refuse_fd("a record that did not read back");
    co_return;
  }
  const config::Pool* pc = s->cfg_->find_pool(config::Protocol::Mysql, database);
  if (!pc && database.empty())
    for (auto& p : s->cfg_->pools)
      if (p.protocol == config::Protocol::Mysql) {
        pc = &p;
        break;
      }
  if (!pc || pc->mode != mode) {
    log::warn("upgrade: client {} of database {}: {} in the new configuration; its connection is closed", id, database,
              pc ? "another pool_mode" : "no pool");
    std::string p, out;
    my::build_err(p, 1053, "08S01",
                  "Server shutdown in progress: Sluice was upgraded and no longer serves this database");
    my::append_packets(out, p, 0);
    s->write_now_or_drop(out);
    co_return;
  }
  {
    std::lock_guard lock(s->handle_->mu);
    s->handle_->user = s->user_;
  }
  s->limits_.login(ctx.limits, *s->cfg_, s->user_, database, false);  // in already: only counted
  s->served_db_ = served_database(*pc, database);
  s->stats_ = ctx.stats.get("mysql", s->served_db_);
  s->info_->set_identity(s->user_, database, app);
  {
    std::lock_guard lock(s->info_->mu);
    s->info_->pool = s->served_db_;
  }
  s->mode_ = mode;
  s->bind_pool(ctx.splits.place_on(*pc, cluster, s->split_));
  s->routing_.begin_session();
  if (!token.empty()) s->routing_.token = std::move(token);
  s->schema_ = std::move(schema);
  for (auto& st : stmts) {
    // Prepared again as at its COM_STMT_PREPARE: the same registry key, class and tables.
    s->w().analysis_.of(st.query, sql::Dialect::Mysql);
    CommandClassification classified(*s);
    ClientStmt cs = s->new_client_stmt(s->intern_statement(st.query), st.query, st.params, st.columns, classified);
    cs.types = std::move(st.types);
    s->stmts_[st.id] = std::move(cs);
  }
  s->work_.drop_if_disposable();
  s->logged_in_ = s->connected_ = true;
  s->woke_ok_ = true;
  log::debug("upgrade: client {} {}:{} taken over: user {} database {}", id, origin.addr, origin.port, s->user_,
             database);
  ctx.clients.fetch_add(1);
  ClientSlot slot(ctx);
  parking::Parked<Session> parked{std::move(slot), std::move(s), "mysql session"};
  co_await parking::drive(std::move(parked), true);
}

void Session::write_now_or_drop(const std::string& out) {
  error_code ec;
  sock_.write_some(asio::buffer(out), ec);
  end_reason_ = "not served by the upgraded configuration";
  close_client();
}

awaitable<void> adopt_client(int fd, std::string record, state::Context& ctx) {
  return Session::adopt(fd, std::move(record), ctx);
}

}  // namespace sluice::frontend::mysql
