// Leasing a server connection on the member a command was routed to, written once for both
// protocols. A replica that cannot be reached is reported and the command goes to the primary;
// a replica not known to have the client's last write (route.verify) is asked for its position
// and, when it has not replayed that write, the connection goes back and the command goes to the
// primary. The cluster and pools are reached through LeaseHooks: the sessions' ClientRouting
// (client_routing.hpp), or a fake in unit tests.
#pragma once

#include <boost/asio.hpp>

#include <chrono>
#include <memory>
#include <optional>

#include "src/config/config.hpp"
#include "src/pool/pool.hpp"
#include "src/router/cluster.hpp"

namespace sluice::frontend {

// Where a command runs: the cluster member, whether it is a replica read, and whether that
// replica's position must be checked against the client's last write first.
struct LeaseRoute {
  int member = 0;
  bool replica = false;
  bool verify = false;
};

class LeaseHooks {
 public:
  virtual ~LeaseHooks() = default;
  virtual boost::asio::awaitable<pool::LeaseResult> lease(int member) = 0;
  virtual void release(int member, std::shared_ptr<pool::ServerConn> conn, bool reusable) = 0;
  virtual void report_failure(int member) = 0;
  virtual int pick_write() = 0;  // the primary's index (negative: none known)
  virtual boost::asio::awaitable<std::optional<router::Position>> position(pool::ServerConn& conn) = 0;
  virtual void note_position(int member, const router::Position& p) = 0;
};

// `conn`: what the caller's fast path (Pool::try_lease_local) already leased on route.member, or
// null. Returns a connection on route.member (updated on a fallback to the primary) or the
// failure to report. `verify_failed_at` is set when a replica had not replayed `token`.
boost::asio::awaitable<pool::LeaseResult> lease_on_route(std::shared_ptr<pool::ServerConn> conn, LeaseRoute& route,
                                                         const router::Position& token, LeaseHooks& hooks,
                                                         std::chrono::steady_clock::time_point& verify_failed_at);

}  // namespace sluice::frontend
