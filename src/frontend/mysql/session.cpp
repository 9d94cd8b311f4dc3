// MySQL client session: lifecycle (construction, the stages in order, the console, reloads,
// kicks) and the replies the stages share. Stages: handshake -> (command -> attach -> relay ->
// detach)*, each in its own file (client_session.hpp).
#include "src/frontend/mysql/client_session.hpp"

#include "src/frontend/common/client_log.hpp"
#include "src/frontend/mysql/admin.hpp"
#include "src/observe/loop_clock.hpp"

namespace sluice::frontend::mysql {

Session::Session(tcp::socket sock, state::Context& ctx, net::Origin origin)
    : TendedSession(sock.get_executor()),
      sock_(std::move(sock)),
      ctx_(ctx),
      snap_(ctx.snapshot()),
      cfg_(snap_->config.get()),
      io_(sock_, cfg_->general.max_packet_size) {
  handle_ = std::make_shared<ClientHandle>();
  info_ = state::new_client_info(ctx_, "mysql", sock_, origin);
  if (!origin.via.empty()) log::debug("client {} {}:{} via {}", info_->id, info_->addr, info_->port, origin.via);
  handle_->id = static_cast<std::uint32_t>(info_->id);  // the connection id is the console's client id
  auto ex = sock_.get_executor();
  handle_->worker = &static_cast<asio::io_context&>(asio::query(ex, asio::execution::context));
  client_registry().add(handle_);
  make_killable(*info_, ex);
  ctx_.client_table.add(info_);
}

void Session::kill() {
  unpark_now();  // the socket back first: the goodbye is written to it
  end_reason_ = "killed by the administrator";
  std::string p, out;
  const auto& row = refusal_row(Refusal::KilledByAdmin);
  my::build_err(p, row.code, row.sqlstate, row.text);
  my::append_packets(out, p, 0);
  write_goodbye(sock_, tls_.get(), io_.framed(out));
  close_client();
}

Session::~Session() {
  client_registry().remove(handle_->id);
  ctx_.client_table.remove(info_->id);
  end_fill();
  if (connected_)
    log::event(log::Level::Info, "client_disconnected",
               client_fields(*info_, user_, schema_,
                             end_reason_.empty() ? std::string_view("client closed the connection") : end_reason_),
               "client {} {}:{} disconnected: user {} database {}: {}", info_->id, info_->addr, info_->port, user_,
               schema_, end_reason_.empty() ? "client closed the connection" : end_reason_);
}

awaitable<bool> Session::run() {
  bool ok = co_await login();
  if (ok && console_) {
    idle_wait_ = true;  // a shutdown closes console connections like idle clients
    co_await serve_admin(sock_, io_, ctx_, console_caller_, caps_, mariadb_caps_);
    co_return false;
  }
  if (ok) {
    connected_ = true;
    log::event(log::Level::Info, "client_connected", client_fields(*info_, user_, schema_),
               "client {} {}:{} connected: user {} database {}", info_->id, info_->addr, info_->port, user_, schema_);
  }
  bool parked = co_await serve(ok);
  co_return parked;
}

awaitable<bool> Session::resume() {
  // A failed parked wait (closed, killed, kicked) ends it, unless an upgrade's kick woke it: then
  // it goes to the new process, or waits again.
  bool parked = co_await serve(woke_ok_ || (std::exchange(upgrade_kicked_, false) && sock_.is_open()));
  co_return parked;
}

awaitable<bool> Session::serve(bool ok) {
  while (ok) {
    if (ctx_.shutting_down && !server_) break;
    if (ctx_.upgrading.load(std::memory_order_relaxed) && movable()) [[unlikely]] {
      shed_for_parking();
      if (!work_.peek()) co_return true;  // park() hands it to the new process (or it parks as usual)
    }
    // The command read and, for the commands that run most, dispatch() in this frame: three
    // coroutine frames less per command.
    begin_command_wait();
    for (;;) {  // io_.read(), in this frame
      if (io_.idle_read_ready()) {
        // The idle wait, plain TCP: a read woken without a reactor operation (fast_reads.hpp),
        // into a few bytes of the session's; the rest of a larger command follows below.
        auto& first = w().first_bytes_;
        auto [ec, n] = co_await net::async_read_fast(sock_, asio::buffer(first), net::await_op);
        if (!io_.took(ec, first.data(), n)) {
          ok = false;
          break;
        }
      }
      auto st = io_.try_read();
      ok = st == pool::MysqlIo::ReadStep::Done;
      if (ok || st == pool::MysqlIo::ReadStep::Fail) break;
      auto [ec] = co_await io_.wait(st);
      if (!io_.waited(ec)) break;
    }
    if (!command_read(ok)) ok = co_await command_unread(ok);
    if (!ok && std::exchange(parking_, false)) co_return true;
    if (ok) {
      auto cmd = static_cast<std::uint8_t>(io_.payload()[0]);
      auto started = observe::loop_now();
      if (!in_xact_) {
        in_xact_ = true;
        xact_start_ = started;
      }
      info_->request_time_us.store(observe::coarse_epoch_us(), std::memory_order_relaxed);
      if (cmd == my::com::STMT_EXECUTE && !front_door_on(cmd)) ok = co_await com_execute();
      else if (cmd == my::com::QUERY && !front_door_on(cmd)) ok = co_await com_query();
      else ok = co_await dispatch();
      count_command(cmd, started);
    }
  }
  co_await leave();
  co_return false;
}

void Session::shed_for_parking() {
  work_.drop_if_disposable();
  io_.release_buffers();
  if (tls_) tls_->release_buffers();
}

void Session::janitor_tick() {
  // The wait between commands (serve(), or parked); not the console's.
  if (console_ || !idle_wait_ || server_) return;
  ++idle_ticks_;  // since the wait began (begin_command_wait): the first period partial
  auto timeout = cfg_->general.client_idle_timeout;
  if (timeout.count() > 0 && idle_ticks_ >= timeout / kJanitorPeriod + 1) {
    close_client();  // as MySQL's wait_timeout: the connection ends, the next command finds it gone
    return;
  }
  if (io_.idle_wait() && !park_requested_ && !info_->parked && idle_ticks_ >= 2) {
    park_requested_ = true;
    error_code ec;
    net::cancel_reads(sock_, ec);
  }
}

void Session::digest_query(sql::Analysis& text) {
  w().digest_ = ctx_.digests.get("mysql", text.fingerprint(), schema_, user_);
  w().digest_hit_ = false;
  w().slow_text_.assign(observe::g_slow_log.with_parameters() ? std::string_view(io_.payload()).substr(1)
                                                              : std::string_view());
  digesting_ = true;
}

void Session::digest_execute(ClientStmt& cs) {
  if (!cs.digest || !ctx_.digests.current(*cs.digest))
    cs.digest = ctx_.digests.get("mysql", sql::fingerprint(sql::lex(cs.query, sql::Dialect::Mysql)), schema_, user_);
  w().digest_ = cs.digest;
  w().digest_hit_ = false;
  w().slow_text_.assign(observe::g_slow_log.with_parameters() ? std::string_view(cs.query) : std::string_view());
  digesting_ = true;
}

void Session::record_digest(std::uint64_t us) {
  digesting_ = false;
  auto d = std::move(w().digest_);
  if (!d) return;
  if (w().digest_hit_) {
    d->cache_hit();
    return;
  }
  const auto& last = w().last_;
  auto rows = last.result_set ? last.rows : last.affected_rows;
  d->record(us, rows, last.error,
            routing_.split() && routing_.route.replica ? observe::DigestRoute::Replica : observe::DigestRoute::Primary);
  if (observe::g_slow_log.on()) [[unlikely]]
    observe::note_slow(*d, us, rows, last.error, {info_->id, info_->addr, std::move(w().slow_text_)});
}

void Session::count_command(std::uint8_t cmd, observe::Clock::time_point started) {
  if (!server_) info_->set_state(observe::ClientState::Idle);
  if (!stats_ || (cmd != my::com::QUERY && cmd != my::com::STMT_EXECUTE)) return;
  auto us = observe::loop_micros_since(started);
  stats_->query(us);
  if (digesting_) [[unlikely]]
    record_digest(us);
  info_->queries.fetch_add(1, std::memory_order_relaxed);
  if (!cmd_.in_transaction()) {
    stats_->xact(observe::loop_micros_since(xact_start_));
    in_xact_ = false;
  }
}

awaitable<void> Session::report_lease_failure(const pool::LeaseResult& r) {
  auto f = describe_lease_failure(r, pool_->name(), cfg_->general.query_wait_timeout);
  if (f.timed_out) {
    co_await send_err(my::er::CON_COUNT, "08004", f.message + " (" + f.hint + ")");
  } else if (f.from_server) {
    co_await send_err(f.mysql_code, f.sqlstate, f.message);
  } else {
    const auto code = f.mysql_code ? f.mysql_code : my::er::UPSTREAM_UNREACHABLE;
    const std::string state = f.sqlstate.empty() ? std::string("08S01") : f.sqlstate;
    co_await send_err(code, state, f.message);
  }
}

void Session::refresh_config() {
  generation_ = ctx_.generation();
  auto next = ctx_.snapshot();
  const config::Pool* pc = next->config->find_pool(config::Protocol::Mysql, pool_cfg_->database);
  if (pc) pc = pc->arm(pool_cfg_->cluster);  // a split: the arm it was placed on
  if (!pc || pc->mode != mode_) return;      // keep what it logged in with
  snap_ = next;
  cfg_ = snap_->config.get();
  io_.set_limit(cfg_->general.max_packet_size);
  bind_pool(*pc);
}

void Session::bind_pool(const config::Pool& pc) {
  const auto& cluster = cfg_->clusters.at(pc.cluster);
  pool_cfg_ = &pc;  // in snap_'s config, as cfg_
  pool_charset_ = charset_;
  pool_ = ctx_.pools.get(pc, cluster.primary, creds_, "", pool_settings());
  if (learned_) pool_->set_credentials(creds_);  // a changed password: new connections use it
  routing_.bind(
      *cfg_, pc, user_, pool_, ctx_.router,
      [this](const config::Endpoint& member) {
        auto p = ctx_.pools.get(*pool_cfg_, member, creds_, "", pool_settings());
        if (learned_) p->set_credentials(creds_);
        return p;
      },
      info_->addr);
}

pool::PoolSettings Session::pool_settings() const {
  auto settings = state::pool_settings(*snap_, *pool_cfg_);
  settings.protocol = config::Protocol::Mysql;
  settings.mysql_caps = caps_ & kFormatCaps;
  settings.mariadb_caps = mariadb_caps_;
  settings.mysql_charset = pool_charset_;
  settings.max_prepared = cfg_->mysql.max_prepared_statements;
  return settings;
}

awaitable<bool> Session::send_err(std::uint16_t code, std::string_view sqlstate, std::string_view message) {
  if (my::er::client_range(code)) code = my::er::UPSTREAM_UNREACHABLE;  // see my::er
  if (!connected_)
    log::event(log::Level::Info, "client_refused", client_fields(*info_, user_, schema_, message),
               "client {} {}:{} refused: user {}: {} ({})", info_->id, info_->addr, info_->port,
               user_.empty() ? "?" : user_, message, code);
  std::string p;
  my::build_err(p, code, sqlstate, message);
  co_return co_await io_.reply(p);
}

awaitable<bool> Session::send_refusal(Refusal r, std::string text) {
  const auto& row = refusal_row(r);
  bool written = co_await send_err(row.code, row.sqlstate, text);
  co_return written && !row.ends_session;
}

std::string Session::peer_address() const { return info_->addr; }

awaitable<bool> Session::send_ok(std::uint64_t affected, std::string_view info) {
  std::string p;
  my::Ok ok;
  ok.affected_rows = affected;
  ok.status = cmd_.status;
  ok.info = info;
  my::build_ok(p, ok, (caps_ & my::cap::SESSION_TRACK) != 0);
  co_return co_await io_.reply(p);
}

namespace {
// How a MySQL listener turns clients away before their session (frontend/common/admission.hpp).
const Door& my_door() {
  static const Door door = [] {
    std::string err;
    Door d;
    d.protocol = config::Protocol::Mysql;
    const auto& row = refusal_row(Refusal::TooManyClients);
    my::build_err(err, row.code, row.sqlstate, row.text);
    my::append_packets(d.too_many, err, 0);
    // As a MySQL server refuses a host before its greeting: error 1130, the first packet.
    d.refused_by_address = [](const access::Verdict&, std::string_view address) {
      std::string p, out;
      const auto& r = refusal_row(Refusal::HostNotAllowed);
      my::build_err(p, r.code, r.sqlstate, refusal_text(Refusal::HostNotAllowed, address));
      my::append_packets(out, p, 0);
      return out;
    };
    d.refused_by_limit = [](access::Limit l, std::string_view address, std::uint32_t value) {
      std::string p, out;
      Refusal r = l == access::Limit::ConnectionRate ? Refusal::ConnectionRate : Refusal::AddressConnections;
      const auto& row = refusal_row(r);
      my::build_err(p, row.code, row.sqlstate, refusal_text(r, address, value));
      my::append_packets(out, p, 0);
      return out;
    };
    return d;
  }();
  return door;
}
}  // namespace

bool refuse_at_accept(int fd, const tcp::endpoint& peer, state::Context& ctx) {
  return frontend::refuse_at_accept(fd, peer, ctx, my_door());
}

awaitable<void> serve_client(tcp::socket sock, state::Context& ctx) {
  co_await serve_admitted<Session>(std::move(sock), ctx, my_door(), "mysql session");
}

}  // namespace sluice::frontend::mysql
