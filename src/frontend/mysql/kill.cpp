// MySQL KILL [QUERY] n: a Sluice connection id or a server thread id, delivered on its own
// connection to the server thread the target is working on.
#include "src/frontend/mysql/client_session.hpp"

namespace sluice::frontend::mysql {

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
    auto r = co_await pool::connect_mysql(sock_.get_executor(), ep, creds_, "", cfg_->general.server_connect_timeout, 0,
                                          0, 0, pool_settings().tls);
    if (!r.conn) {
      ok = false;
      failure = r.error.fields.message;
    } else {
      pool::MysqlIo sio(r.conn->sock);
      sio.set_tls(r.conn->tls.get());
      std::string cmd;
      my::build_command(cmd, my::com::QUERY, fmt::format("KILL {} {}", k.query_only ? "QUERY" : "CONNECTION", thread));
      bool io_ok = co_await sio.write(cmd, 0);
      if (io_ok) io_ok = co_await sio.read();
      if (!io_ok) {
        ok = false;
        failure = sio.error();
      } else if (!sio.payload().empty() && static_cast<std::uint8_t>(sio.payload()[0]) == 0xFF) {
        my::Err e;
        my::parse_err(sio.bytes(), e);
        if (e.code != my::er::NO_SUCH_THREAD) {  // already finished: fine
          ok = false;
          failure = e.message;
        }
      }
      r.conn->close_quietly();
    }
    std::lock_guard lock(target->mu);
    --target->kill_holds;
  }
  if (!k.query_only) target->close();
  if (!ok) co_return co_await refuse(Refusal::KillNotDelivered, failure);
  co_return co_await send_ok();
}

}  // namespace sluice::frontend::mysql
