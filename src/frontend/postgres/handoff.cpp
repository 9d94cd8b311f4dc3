// PostgreSQL client session, online upgrade (src/app/upgrade.hpp): what a sleeping session keeps
// (SessionKeep) written as a record for the new process, and a session made again from such a
// record there, on the client's descriptor. The client notices nothing: its (pid, key), its
// parameters, its prepared statements, its read-your-writes position and its id stay.
#include "src/frontend/postgres/client_session.hpp"

#include <sys/socket.h>

#include "src/frontend/common/handoff_fields.hpp"
#include "src/frontend/common/pool_rules.hpp"
#include "src/pool/credentials_record.hpp"

namespace sluice::frontend::pg {

namespace {
constexpr std::uint32_t kRecordVersion = 1;
}

std::string Session::handoff_record(const Keep& k) {
  net::RecordWriter w;
  w.u32(kRecordVersion);
  {
    std::lock_guard lock(k.info->mu);
    w.u64(k.info->id);
    w.str(k.info->addr);
    w.u32(k.info->port);
    w.str(k.info->user);
    w.str(k.info->database);
    w.str(k.info->application_name);
  }
  w.i64(std::chrono::duration_cast<std::chrono::seconds>(k.info->connect_time.time_since_epoch()).count());
  w.u64(k.info->queries.load(std::memory_order_relaxed));
  pool::write_credentials(w, *k.creds);
  // A relay kept whole (prepared statements) holds the parameters itself.
  const Relay::Kept kept = k.relay ? k.relay->peek_kept() : k.kept;
  const auto& params = kept.client_params.items();
  w.u32(static_cast<std::uint32_t>(params.size()));
  for (auto& [name, value] : params) {
    w.str(name);
    w.str(value);
  }
  w.u32(kept.max_statements);
  w.flag(kept.pass_notifications);
  std::vector<std::pair<std::string, const pool::Statement*>> statements;
  if (k.relay)
    k.relay->each_statement(
        [&](const std::string& name, const pool::Statement& s) { statements.emplace_back(name, &s); });
  w.u32(static_cast<std::uint32_t>(statements.size()));
  for (auto& [name, s] : statements) {
    w.str(name);
    w.str(s->parse_message);
    w.flag(s->validated.load(std::memory_order_relaxed));
  }
  w.u32(k.pid);
  w.u32(k.cancel ? k.cancel->key : 0);
  write_position(w, k.token ? *k.token : router::Position{});
  w.str(k.pool_cfg->cluster);
  w.u8(static_cast<std::uint8_t>(k.mode));
  w.u32(k.own_notify_pid);
  w.flag(k.failed_tx);
  w.flag(k.discard_until_sync);
  w.flag(k.no_cache);
  return std::move(w.bytes());
}

namespace {

// The ErrorResponse a client that cannot be taken on gets, then its connection closes.
void refuse(int fd, const std::string& why) {
  std::string out;
  wire::error_response(out, "FATAL", "57P01", fmt::format("terminating connection: {}", why));
  [[maybe_unused]] auto n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::close(fd);
}

}  // namespace

awaitable<void> adopt_client(int fd, std::string record, state::Context& ctx) {
  auto ex = co_await asio::this_coro::executor;
  auto snap = ctx.snapshot();
  const auto& cfg = *snap->config;
  net::RecordReader r(record);
  if (r.u32() != kRecordVersion) {
    log::error("upgrade: a PostgreSQL client's record is of another version; its connection is closed");
    refuse(fd, "Sluice was upgraded and could not keep this session");
    co_return;
  }
  auto info = memory::make_shared_in_slab<observe::ClientInfo>();
  info->id = r.u64();
  info->protocol = "postgres";
  info->addr = r.str();
  info->port = static_cast<std::uint16_t>(r.u32());
  std::string user = r.str(), database = r.str(), app = r.str();
  info->connect_time = std::chrono::system_clock::time_point(std::chrono::seconds(r.i64()));
  info->queries.store(r.u64(), std::memory_order_relaxed);
  Session::Keep k;
  k.creds = pool::read_credentials(r, [&](const std::string& u) -> std::shared_ptr<const pool::Credentials> {
    auto it = snap->credentials.find(u);
    return it == snap->credentials.end() ? nullptr : it->second;
  });
  pool::Params params;
  for (std::uint32_t i = 0, n = r.u32(); i < n && r.ok(); ++i) {
    std::string name = r.str();
    params.set(name, r.str());
  }
  std::uint32_t max_statements = r.u32();
  bool pass_notifications = r.flag();
  std::vector<std::pair<std::string, std::shared_ptr<const pool::Statement>>> statements;
  for (std::uint32_t i = 0, n = r.u32(); i < n && r.ok(); ++i) {
    std::string name = r.str(), parse = r.str();
    bool validated = r.flag();
    wire::ParseView p;
    if (parse.size() < 5 ||
        !wire::parse_parse(wire::Bytes(reinterpret_cast<const std::uint8_t*>(parse.data()) + 5, parse.size() - 5), p)) {
      log::error("upgrade: client {}: a prepared statement did not read back", info->id);
      refuse(fd, "Sluice was upgraded and could not keep this session");
      co_return;
    }
    auto stmt = pool::StatementRegistry::global().intern(p.query, wire::as_sv(p.param_types));
    if (validated) stmt->validated.store(true, std::memory_order_relaxed);
    statements.emplace_back(std::move(name), std::move(stmt));
  }
  std::uint32_t pid = r.u32(), key = r.u32();
  router::Position token = read_position(r);
  std::string cluster = r.str();
  auto mode = static_cast<config::PoolMode>(r.u8());
  k.own_notify_pid = r.u32();
  k.failed_tx = r.flag();
  k.discard_until_sync = r.flag();
  k.no_cache = r.flag();
  if (!r.done() || !k.creds) {
    log::error("upgrade: a PostgreSQL client's record did not read back; its connection is closed");
    refuse(fd, "Sluice was upgraded and could not keep this session");
    co_return;
  }
  const config::Pool* pc = cfg.find_pool(config::Protocol::Postgres, database);
  if (!pc || pc->mode != mode) {
    log::warn("upgrade: client {} of database {}: {} in the new configuration; its connection is closed", info->id,
              database, pc ? "another pool_mode" : "no pool");
    refuse(fd, fmt::format("Sluice was upgraded and database \"{}\" is no longer served as before", database));
    co_return;
  }
  info->set_identity(user, database, app);
  const std::string pool_db = served_database(*pc, database);
  {
    std::lock_guard lock(info->mu);
    info->pool = pool_db;
  }
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  const bool v6 = ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0 && local.ss_family == AF_INET6;
  if (local.ss_family == AF_UNIX) {
    info->local_addr = "unix";
  } else if (local.ss_family == AF_INET || local.ss_family == AF_INET6) {
    asio::ip::tcp::endpoint ep;
    std::memcpy(ep.data(), &local, std::min<std::size_t>(len, ep.capacity()));
    ep.resize(len);
    info->local_addr = ep.address().to_string();
    info->local_port = ep.port();
  }
  make_killable(*info, ex);
  k.info = info;
  k.stats = ctx.stats.get("postgres", pool_db);
  k.snap = snap;
  k.limits.login(ctx.limits, cfg, user, database, false);  // the client is in: a limit only counts it
  k.kept.client_params = pool::SharedParams::intern(std::move(params));
  k.kept.stats = k.stats.get();
  k.kept.client_queries = &info->queries;
  k.kept.max_statements = max_statements;
  k.kept.pooled = mode != config::PoolMode::Session;
  k.kept.pass_notifications = pass_notifications;
  if (!statements.empty()) {
    k.relay = std::make_unique<Relay>();
    k.relay->restore(Relay::Kept(k.kept));
    for (auto& [name, stmt] : statements) k.relay->adopt_statement(std::move(name), std::move(stmt));
  }
  k.pid = pid;
  k.cancel = cancel_registry().add_exact(pid, key);
  if (!k.cancel) {  // a clash with one of this process's own: the client's cancels will not reach it
    auto [fresh_pid, target] = cancel_registry().add();
    k.pid = fresh_pid;
    k.cancel = target;
  }
  if (!token.empty()) k.token = std::make_unique<router::Position>(std::move(token));
  k.pool_cfg = &ctx.splits.place_on(*pc, cluster, k.split);
  k.generation = ctx.generation();
  k.mode = mode;
  ctx.client_table.add(info);
  ctx.clients.fetch_add(1);
  ClientSlot slot(ctx);
  std::unique_ptr<Session> session;
  try {
    session = std::make_unique<Session>(std::move(k), ctx, fd, v6);
  } catch (const std::exception& e) {
    log_internal_error(Session::kWhat, e);
    co_return;
  }
  log::debug("upgrade: client {} {}:{} taken over: user {} database {}", info->id, info->addr, info->port, user,
             database);
  session->woke({}, 0);  // as a session woken by its client: it reads what the client sent
  parking::Parked<Session> parked{std::move(slot), std::move(session), Session::kWhat};
  co_await parking::drive(std::move(parked), true);
}

}  // namespace sluice::frontend::pg
