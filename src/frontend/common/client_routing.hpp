// A client's place in its cluster, the same for both protocols: the pools of the members (made on
// first use), whether its reads split from its writes, the route of the current command, its
// read-your-writes token, and the lease on that route (lease_on_route, with this object as the
// hooks). The sessions classify commands (each in its protocol's way) and hand the verdict here.
#pragma once

#include <boost/asio.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "src/config/config.hpp"
#include "src/frontend/common/member_lease.hpp"
#include "src/pool/pool.hpp"
#include "src/router/cluster.hpp"

namespace sluice::frontend {

class ClientRouting final : public LeaseHooks {
 public:
  // A member's pool for this client (the session knows the key: user, database, settings).
  using PoolMaker = std::function<std::shared_ptr<pool::Pool>(const config::Endpoint&)>;

  // Login and reload. `primary`: this client's pool on the cluster's primary. Reads split when
  // the routing (the user's, else the pool's, else the cluster's) is read_write_split, the
  // cluster has replicas and the pool is not in session mode.
  // `address`: the client's, for its [[zones]] entry (reads prefer members in its zone).
  void bind(const config::Config& cfg, const config::Pool& pc, const std::string& user,
            std::shared_ptr<pool::Pool> primary, const router::Router& router, PoolMaker make,
            std::string_view address = {});

  // A new client (not a reload, not a wake): with read_your_writes_from_login, its token waits
  // for the primary's position (Position::login_pending).
  void begin_session();
  // Still waiting for that position: the next lease must go through lease() (not a pool's fast
  // path), which reads it on the primary.
  bool login_pending() const { return token.is_login_pending(); }
  bool split() const { return split_; }
  // The cluster's write_functions, split or not: a statement calling one is neither a read for
  // routing nor cacheable, and it may write any table.
  const std::vector<std::string>& write_functions() const { return *write_functions_; }
  // Only when split().
  router::ClusterRuntime& cluster() const { return *cluster_; }
  const std::shared_ptr<pool::Pool>& primary() const { return pools_[0]; }
  std::shared_ptr<pool::Pool> pool(int member);

  // Routes the next command (split() only): a read to a replica that covers the token (or, when
  // none is known to, one to verify), a write to the primary. Returns the member's pool.
  // `tags`: a [[rules]] route_tags for this command (reads only).
  std::shared_ptr<pool::Pool> choose(bool read, const std::vector<std::pair<std::string, std::string>>* tags = nullptr);
  std::string_view zone() const { return zone_ ? std::string_view(*zone_) : std::string_view(); }
  // The lease on route (lease_on_route); `conn` from the caller's fast path, or null.
  boost::asio::awaitable<pool::LeaseResult> lease(std::shared_ptr<pool::ServerConn> conn, config::Protocol protocol,
                                                  boost::asio::any_io_executor ex, config::Duration wait);
  // A server connection of route.member now works for / no longer works for this client.
  void attached() {
    if (split_) cluster_->counters(route.member).outstanding.fetch_add(1, std::memory_order_relaxed);
  }
  void detached() {
    if (split_) cluster_->counters(route.member).outstanding.fetch_sub(1, std::memory_order_relaxed);
  }
  // The current member failed under a command.
  void report_failure();
  // The token a cached answer must cover for this client (null: no read-your-writes).
  const router::Position* read_your_writes_token() const;
  bool read_your_writes() const;
  // What the current member has surely applied (the stamp of an answer captured from it).
  router::Position applied() const;

  LeaseRoute route;        // the member the current command runs on
  router::Position token;  // this client's last write (read your writes)

 private:
  boost::asio::awaitable<pool::LeaseResult> lease(int member) override;
  void release(int member, std::shared_ptr<pool::ServerConn> conn, bool reusable) override;
  void report_failure(int member) override;
  int pick_write() override;
  boost::asio::awaitable<std::optional<router::Position>> position(pool::ServerConn& conn) override;
  void note_position(int member, const router::Position& p) override;

  std::shared_ptr<router::ClusterRuntime> cluster_;
  bool split_ = false;
  std::vector<std::shared_ptr<pool::Pool>> pools_;
  // In the bound config, as zone_ (the session holds that config).
  const std::vector<std::string>* write_functions_ = &kNoFunctions;
  static inline const std::vector<std::string> kNoFunctions;
  const std::string* zone_ = nullptr;  // the client's [[zones]] name, in the bound config (null = none)
  PoolMaker make_;
  std::chrono::steady_clock::time_point verify_failed_at_{};
  // The lease in progress: how to reach the members (ex_ points at lease()'s own argument, in
  // its coroutine frame, while it runs).
  config::Protocol protocol_ = config::Protocol::Postgres;
  const boost::asio::any_io_executor* ex_ = nullptr;
  config::Duration wait_{0};
};

}  // namespace sluice::frontend
