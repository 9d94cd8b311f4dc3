// A cluster at run time: its members' health, discovered roles (a failover done by another tool
// is followed), replication positions and lag, and the choice of a member for each statement.
// One health loop per cluster (on worker 0) updates an immutable view that sessions read with an
// atomic load; a session that fails to reach a member reports it and the member is out at once.
#pragma once

#include <boost/asio.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "src/config/config.hpp"
#include "src/pool/credentials.hpp"
#include "src/pool/server_conn.hpp"
#include "src/router/lag_clock.hpp"

namespace sluice::router {

enum class Role { Unknown, Primary, Replica };

struct MemberView {
  config::Endpoint endpoint;
  bool up = false;
  Role role = Role::Unknown;
  Position position;  // PostgreSQL: replay LSN (replica) / current LSN (primary); MariaDB: GTID pos
  std::chrono::milliseconds lag{0};
};

struct ClusterView {
  std::vector<MemberView> members;  // config order: the configured primary first
  int primary = -1;                 // index of the discovered primary, -1 = none up
};

// Counters for the admin console.
struct MemberCounters {
  std::atomic<std::uint64_t> reads{0}, writes{0};
  std::atomic<std::int64_t> outstanding{0};
};

// Members an operator drained (DRAIN host:port): no new reads; work already there finishes.
// Shared by every cluster runtime, so it survives reloads.
class DrainSet {
 public:
  bool any() const { return any_.load(std::memory_order_relaxed); }
  bool drained(const config::Endpoint& e) const;
  void set(const std::string& member, bool drained);
  std::vector<std::string> list() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::string> members_;
  std::atomic<bool> any_{false};
};

// What a read prefers beyond health, lag and the client's token: members carrying all of `tags`
// (a [[rules]] route_tags; when none can take it, the read goes where it would have gone), then
// members in the client's `zone` (their tag zone = the client's [[zones]] entry), then any.
struct ReadPreference {
  const std::vector<std::pair<std::string, std::string>>* tags = nullptr;
  std::string_view zone;
  bool any() const { return tags || !zone.empty(); }
};

class ClusterRuntime : public std::enable_shared_from_this<ClusterRuntime> {
 public:
  ClusterRuntime(const config::Cluster& cfg, std::shared_ptr<const pool::Credentials> health_creds,
                 std::string health_database, std::shared_ptr<const DrainSet> drains = nullptr);

  std::shared_ptr<const ClusterView> view() const { return std::atomic_load(&view_); }
  const config::Cluster& config() const { return cfg_; }

  // The member for a read: a healthy replica within max_replica_lag that covers `token` (when
  // not empty), balanced per the config; the primary per reads_on_primary; -1 if none.
  int pick_read(const Position& token, const ReadPreference& pref = {});
  // The member for writes: the discovered primary, or the configured one before the first check.
  int pick_write() const;

  // One routing decision for a session: where a read (or a write) goes, given the client's
  // read-your-writes token. `verify` asks the session to check the chosen replica's position
  // itself first (no replica was known to cover the token; `may_verify` is false right after
  // such a check failed). Counts the decision.
  struct Decision {
    int member = 0;
    bool replica = false;  // a read on a replica (not the primary)
    bool verify = false;
  };
  Decision route(bool read, const Position& token, bool may_verify, const ReadPreference& pref = {});
  // A member's tags (the cluster's `tags`), for SHOW BACKENDS.
  const std::map<std::string, std::string>& tags(int member) const;
  // A session read `member`'s position itself (fresher than the last check): share it.
  void note_position(int member, const Position& p);
  // What `member` has surely applied: its last known position (health check, or a session's
  // verification); on the primary also `token`, a client's own last write (unless unknown).
  // A lower bound for an answer the member gives from now on.
  Position applied(int member, bool primary, const Position& token) const;
  // A write committed now has been replayed by every replica that may still serve reads by then
  // (one whose measured lag is within max_replica_lag; lag is measured a health-check period
  // apart, and the view may be a period old).
  std::chrono::steady_clock::time_point replayed_everywhere_by() const {
    return std::chrono::steady_clock::now() + cfg_.max_replica_lag + 2 * cfg_.health_check_period;
  }
  // A session could not reach `member`: out at once, back after `rise` good checks.
  void report_failure(int member);

  MemberCounters& counters(int member) { return *counters_[static_cast<std::size_t>(member)]; }
  // Replaces the view (the health loop's job; unit tests use it to set a scene).
  void set_view(std::shared_ptr<ClusterView> v) { publish(std::move(v)); }

  // TLS for the health check connections (set again by a reload: new certificates).
  void set_server_tls(pool::ServerTls t) {
    std::lock_guard lock(mu_);
    tls_ = std::move(t);
  }
  pool::ServerTls server_tls() {
    std::lock_guard lock(mu_);
    return tls_;
  }

  // Runs the health loop until `stop` is set (checked every period).
  void start(boost::asio::any_io_executor ex, std::shared_ptr<std::atomic<bool>> stop);

 private:
  boost::asio::awaitable<void> health_loop(boost::asio::any_io_executor ex, std::shared_ptr<std::atomic<bool>> stop);
  void publish(std::shared_ptr<ClusterView> v);

  const config::Cluster cfg_;
  const std::shared_ptr<const pool::Credentials> creds_;
  const std::string database_;
  const std::shared_ptr<const DrainSet> drains_;
  std::shared_ptr<const ClusterView> view_;
  std::vector<std::unique_ptr<MemberCounters>> counters_;
  std::mutex mu_;                     // guards the fields below and view_ writes
  std::vector<std::uint32_t> good_;   // consecutive good checks since the last failure
  std::vector<bool> forced_down_;     // reported by sessions, until `rise` good checks
  std::atomic<std::uint64_t> rr_{0};  // round robin cursor
  pool::ServerTls tls_;
};

// The primary's current WAL position, read on a connection Sluice holds (read-your-writes token
// after a write); nullopt on error.
boost::asio::awaitable<std::optional<Position>> fetch_pg_lsn(pool::ServerConn& conn);
// Everything the primary has committed (PostgreSQL: the WAL insert position; MariaDB:
// @@gtid_binlog_pos), read on a connection a session holds (a login's read-your-writes token).
boost::asio::awaitable<std::optional<Position>> fetch_primary_position(pool::ServerConn& conn, config::Protocol proto);
// A replica's replayed position, read on a connection a session holds (the on-demand check).
boost::asio::awaitable<std::optional<Position>> fetch_replica_position(pool::ServerConn& conn, config::Protocol proto);

using CredentialMap = std::map<std::string, std::shared_ptr<const pool::Credentials>, std::less<>>;

// All clusters of the configuration, by name. A reload replaces the runtime of each cluster
// whose settings changed (sessions move to it at their next transaction) and keeps the others.
class Router {
 public:
  void build(const config::Config& cfg, const CredentialMap& credentials, const pool::ServerTlsMap& tls);
  std::shared_ptr<ClusterRuntime> find(const std::string& name) const;
  std::vector<std::shared_ptr<ClusterRuntime>> all() const;
  void start(boost::asio::any_io_executor ex);
  // Applies a reloaded configuration; returns the names of the clusters rebuilt.
  std::vector<std::string> reconfigure(const config::Config& cfg, const CredentialMap& credentials,
                                       const pool::ServerTlsMap& tls, boost::asio::any_io_executor ex);
  void stop();
  DrainSet& drains() { return *drains_; }

 private:
  std::shared_ptr<ClusterRuntime> make(const std::string& name, const config::Cluster& c, const config::Config& cfg,
                                       const CredentialMap& credentials, const pool::ServerTlsMap& tls) const;
  struct Entry {
    std::shared_ptr<ClusterRuntime> runtime;
    std::shared_ptr<std::atomic<bool>> stop = std::make_shared<std::atomic<bool>>(false);
  };
  mutable std::mutex mu_;
  std::map<std::string, Entry> clusters_;
  bool started_ = false;
  std::shared_ptr<DrainSet> drains_ = std::make_shared<DrainSet>();
};

// Whether two cluster settings are the same (a reload keeps the running cluster then).
bool same_cluster(const config::Cluster& a, const config::Cluster& b);

}  // namespace sluice::router
