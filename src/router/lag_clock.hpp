// How far behind a replica is, in time: the primary's positions as observed over time tell when
// the primary first had something the replica still lacks. Sans-io.
#pragma once

#include <chrono>
#include <deque>
#include <utility>

#include "src/replication/position.hpp"

namespace sluice::router {

// The router speaks of replication positions as its own.
using replication::parse_gtid_pos;
using replication::parse_pg_lsn;
using replication::Position;

class LagClock {
 public:
  using Clock = std::chrono::steady_clock;
  // Positions older than `horizon` are forgotten (the newest of them is kept as the boundary), so
  // the history stays small however long Sluice runs: a lag up to the horizon is exact, a longer
  // one is reported as at least the horizon. The cluster passes twice max_replica_lag (at least a
  // minute), so a replica past max_replica_lag is always seen to be.
  explicit LagClock(std::chrono::milliseconds horizon = std::chrono::minutes(1)) : horizon_(horizon) {}
  void observe_primary(const Position& p, Clock::time_point now);
  // Zero when the replica covers the newest primary position; else the time since the primary
  // first reported a position the replica does not cover (at the check resolution).
  std::chrono::milliseconds lag(const Position& replica, Clock::time_point now) const;
  std::size_t size() const { return history_.size(); }

 private:
  std::chrono::milliseconds horizon_;
  std::deque<std::pair<Clock::time_point, Position>> history_;  // oldest first, bounded
};

}  // namespace sluice::router
