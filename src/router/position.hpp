// Replication positions, comparable across members of one cluster: a PostgreSQL WAL LSN, or a
// MariaDB GTID position (one sequence number per replication domain). Sans-io.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::router {

struct Position {
  // (domain, sequence): PostgreSQL uses domain 0 with the LSN as its sequence.
  std::vector<std::pair<std::uint32_t, std::uint64_t>> parts;
  bool empty() const { return parts.empty(); }
  // True when this position includes everything `token` does (every domain at or past it).
  bool covers(const Position& token) const;
  std::string text() const;
  // A token no replica covers: after a write whose position is unknown, reads stay on the primary.
  static Position unreachable() { return Position{{{0xFFFFFFFFu, ~std::uint64_t(0)}}}; }
};

// "16/B374D848" -> position; nullopt when malformed.
std::optional<Position> parse_pg_lsn(std::string_view text);
// "0-1-123,1-2-7" -> position (per domain; the server id is not compared); "" -> empty.
std::optional<Position> parse_gtid_pos(std::string_view text);

// How far behind a replica is, in time: the primary's positions as observed over time tell when
// the primary first had something the replica still lacks.
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
