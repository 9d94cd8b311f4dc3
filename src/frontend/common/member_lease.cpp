// The lease with replica fallback and token verification (member_lease.hpp).
#include "src/frontend/common/member_lease.hpp"

#include <algorithm>

namespace sluice::frontend {

namespace {
void to_primary(LeaseRoute& route, LeaseHooks& hooks) {
  route.replica = false;
  route.member = std::max(0, hooks.pick_write());
}
}  // namespace

boost::asio::awaitable<pool::LeaseResult> lease_on_route(std::shared_ptr<pool::ServerConn> conn, LeaseRoute& route,
                                                         const router::Position& token, LeaseHooks& hooks,
                                                         std::chrono::steady_clock::time_point& verify_failed_at) {
  if (!conn && route.replica) {
    // A replica that cannot be reached is out at once; the command goes to the primary. (One
    // that is only busy past the wait is asked once more below, like any pool.)
    auto r = co_await hooks.lease(route.member);
    if (r.conn) {
      conn = std::move(r.conn);
    } else if (!r.timed_out) {
      hooks.report_failure(route.member);
      to_primary(route, hooks);
    }
  }
  if (!conn) {
    auto r = co_await hooks.lease(route.member);
    if (!r.conn) co_return r;
    conn = std::move(r.conn);
  }
  if (route.verify) {
    // No replica was known to have this client's last write: ask the chosen one directly
    // (replicas are usually milliseconds behind, health checks up to a period).
    route.verify = false;
    auto pos = co_await hooks.position(*conn);
    if (pos) hooks.note_position(route.member, *pos);
    if (!pos || !pos->covers(token)) {
      verify_failed_at = std::chrono::steady_clock::now();
      hooks.release(route.member, std::move(conn), pos.has_value());
      to_primary(route, hooks);
      co_return co_await hooks.lease(route.member);
    }
  }
  pool::LeaseResult ok;
  ok.conn = std::move(conn);
  co_return ok;
}

}  // namespace sluice::frontend
