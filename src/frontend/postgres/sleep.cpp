// PostgreSQL client session, sleeping (frontend/common/admission.hpp, parking::Sleeper): a parked
// session with nothing in progress leaves what it owes its client in a SessionKeep
// (session_parts.hpp) and goes; the session is made again from it when the client speaks.
#include "src/frontend/postgres/client_session.hpp"

namespace sluice::frontend::pg {

Session::Session(Keep&& k, state::Context& ctx, int fd, bool v6)
    : TendedSession(k.info->worker->get_executor()),
      client_(k.info->worker->get_executor()),
      ctx_(ctx),
      info_(std::move(k.info)),
      stats_(std::move(k.stats)),
      snap_(std::move(k.snap)) {
  if (fd >= 0) {
    error_code ec;
    client_.assign(v6 ? tcp::v6() : tcp::v4(), fd, ec);
    if (ec) ::close(fd);  // the socket stays closed: the session's next read fails
    else client_.non_blocking(true, ec);
  }
  {
    std::lock_guard lock(info_->mu);
    user_ = info_->user;
    database_ = info_->database;
  }
  generation_ = k.generation;
  logged_in_ = true;
  typed_messages_ = true;
  max_packet_ = snap_->config->general.max_packet_size;
  creds_ = std::move(k.creds);
  limits_ = std::move(k.limits);
  mode_ = k.mode;
  relay_.restore(std::move(k.relay), std::move(k.kept));
  pid_ = std::exchange(k.pid, 0);
  cancel_ = std::exchange(k.cancel, nullptr);
  split_ = std::move(k.split);
  pool_cfg_ = k.pool_cfg;
  own_notify_pid_ = k.own_notify_pid;
  failed_tx_ = k.failed_tx;
  discard_until_sync_ = k.discard_until_sync;
  no_cache_ = k.no_cache;
  idle_ticks_ = k.idle_ticks;
  idle_timed_out_ = k.idle_timed_out;
  bind_pool(*snap_->config, *pool_cfg_);  // the pool, its members and the routing, as at login
  if (k.token) routing_.token = std::move(*k.token);
  info_->asleep.store(false, std::memory_order_relaxed);
}

bool Session::sleepable() const {
  return !tls_ && !server_ && buffered() == 0 && !work_.peek() && !mailbox_ && !hub_ && !listen_pending_ &&
         logged_in_ && pool_cfg_ && !capturing_ && !invalidate_all_ && !marked_all_ && !marks_pending_ && !retrying_ &&
         !timeout_armed_ && published_pins_.empty() && end_reason_.empty() && info_->worker;
}

std::optional<Session::Keep> Session::hibernate(int& fd, bool& v6) {
  if (!sleepable()) return std::nullopt;
  Keep k;
  error_code ec;
  auto local = client_.local_endpoint(ec);
  if (ec) return std::nullopt;
  v6 = local.address().is_v6();
  fd = client_.release(ec);
  if (ec || fd < 0) return std::nullopt;
  k.info = std::move(info_);
  k.stats = std::move(stats_);
  k.snap = std::move(snap_);
  k.creds = std::move(creds_);
  k.limits = std::move(limits_);
  k.relay = relay_.take_relay();
  k.kept = relay_.take_kept();
  k.cancel = std::exchange(cancel_, nullptr);
  if (!routing_.token.empty()) k.token = std::make_unique<router::Position>(std::move(routing_.token));
  k.split = std::move(split_);
  k.pool_cfg = pool_cfg_;
  k.generation = generation_;
  k.pid = std::exchange(pid_, 0);  // what ~Session would undo now belongs to the keep
  k.own_notify_pid = own_notify_pid_;
  k.mode = mode_;
  k.idle_ticks = idle_ticks_;
  k.failed_tx = failed_tx_;
  k.discard_until_sync = discard_until_sync_;
  k.no_cache = no_cache_;
  k.idle_timed_out = idle_timed_out_;
  logged_in_ = false;
  k.info->asleep.store(true, std::memory_order_relaxed);
  k.info->parked.store(true, std::memory_order_relaxed);
  return k;
}

void SessionKeep::forget(state::Context* ctx) {
  if (info && ctx) ctx->client_table.remove(info->id);
  if (pid) cancel_registry().remove(std::exchange(pid, 0), cancel->key);
}

bool SessionKeep::tick() {
  // As Session::janitor_tick for a parked session: client_idle_timeout, in janitor periods.
  ++idle_ticks;
  auto timeout = snap->config->general.client_idle_timeout;
  if (timeout.count() > 0 && !idle_timed_out && idle_ticks >= timeout / kJanitorPeriod + 1) {
    idle_timed_out = true;
    return true;
  }
  return false;
}

}  // namespace sluice::frontend::pg
