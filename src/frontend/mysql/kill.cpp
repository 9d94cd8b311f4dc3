// MySQL KILL [QUERY] n: a Sluice connection id or a server thread id, delivered on its own
// connection to the server thread the target is working on; and a [[rules]] statement_timeout,
// which sends KILL QUERY the same way when a statement runs too long.
#include "src/frontend/mysql/client_session.hpp"

namespace sluice::frontend::mysql {

namespace {

// KILL QUERY / CONNECTION `thread` on the server at `ep`, on a connection of its own: "" or why not.
awaitable<std::string> kill_on_server(asio::any_io_executor ex, config::Endpoint ep,
                                      std::shared_ptr<const pool::Credentials> creds, config::Duration timeout,
                                      pool::ServerTls tls, std::uint32_t thread, bool query_only) {
  auto r = co_await pool::connect_mysql(ex, ep, std::move(creds), "", timeout, 0, 0, 0, std::move(tls));
  if (!r.conn) co_return r.error.fields.message;
  pool::MysqlIo sio(r.conn->sock);
  sio.set_tls(r.conn->tls.get());
  std::string cmd, failure;
  my::build_command(cmd, my::com::QUERY, fmt::format("KILL {} {}", query_only ? "QUERY" : "CONNECTION", thread));
  bool io_ok = co_await sio.write(cmd, 0);
  if (io_ok) io_ok = co_await sio.read();
  if (!io_ok) {
    failure = sio.error();
  } else if (!sio.payload().empty() && static_cast<std::uint8_t>(sio.payload()[0]) == 0xFF) {
    my::Err e;
    my::parse_err(sio.bytes(), e);
    if (e.code != my::er::NO_SUCH_THREAD) failure = e.message;  // already finished: fine
  }
  r.conn->close_quietly();
  co_return failure;
}

}  // namespace

void Session::arm_statement_timeout(config::Duration d) {
  if (!server_ || !handle_) return;
  config::Endpoint ep;
  std::uint32_t thread = 0;
  {
    std::lock_guard lock(handle_->mu);
    ep = handle_->endpoint;
    thread = handle_->thread_id;
  }
  if (!thread) return;
  timeout_armed_ = true;
  auto& t = w().statement_timer_;
  t.expires_after(d);
  t.async_wait([this, alive = std::weak_ptr<bool>(alive_), ep, thread, d](error_code ec) {
    if (ec || alive.expired() || !std::exchange(timeout_armed_, false)) return;
    log::info("mysql client {}: statement_timeout ({} ms) of a [[rules]] entry: KILL QUERY {} on {}", handle_->id,
              d.count(), thread, ep.text());
    asio::co_spawn(
        sock_.get_executor(),
        [ex = sock_.get_executor(), ep, creds = creds_, timeout = cfg_->general.server_connect_timeout,
         tls = pool_settings().tls, thread]() -> awaitable<void> {
          auto failure = co_await kill_on_server(ex, ep, creds, timeout, tls, thread, true);
          if (!failure.empty())
            log::warn("statement_timeout: KILL QUERY {} on {} failed: {}", thread, ep.text(), failure);
        },
        asio::detached);
  });
}

void Session::close_on_worker(const ClientHandle& target) {
  if (!target.worker) return;
  asio::post(*target.worker, [id = std::uint64_t{target.id}] {
    if (auto* s = dynamic_cast<Session*>(find_local(id))) s->close_client();
  });
}

awaitable<bool> Session::kill(sql::MysqlKill k) {
  auto target = client_registry().find(k.id);
  if (!target) target = client_registry().find_by_thread(k.id);
  if (!target) co_return co_await refuse(Refusal::NoSuchThread, k.id);
  config::Endpoint ep;
  std::uint32_t thread = 0;
  {
    std::lock_guard lock(target->mu);
    if (target->user != user_ && !cfg_->is_admin(user_)) co_return co_await refuse(Refusal::NotThreadOwner, k.id);
    if (target->attached) {
      ep = target->endpoint;
      thread = target->thread_id;
      ++target->kill_holds;
    }
  }
  if (target.get() == handle_.get()) {
    if (thread) {
      std::lock_guard lock(target->mu);
      --target->kill_holds;
    }
    if (k.query_only) co_return co_await send_ok();  // nothing else runs for this client now
    co_return co_await refuse(Refusal::KilledSelf);
  }
  bool ok = true;
  std::string failure;
  if (thread) {
    failure = co_await kill_on_server(sock_.get_executor(), ep, creds_, cfg_->general.server_connect_timeout,
                                      pool_settings().tls, thread, k.query_only);
    ok = failure.empty();
    std::lock_guard lock(target->mu);
    --target->kill_holds;
  }
  if (!k.query_only) close_on_worker(*target);
  if (!ok) co_return co_await refuse(Refusal::KillNotDelivered, failure);
  co_return co_await send_ok();
}

}  // namespace sluice::frontend::mysql
