// Replication positions of the writes made through Sluice, per (cluster, table). A replica's
// answer may be kept in the cache only if its position covers the writes to the tables it read:
// a replica that has not replayed a write must not refill the cache with what the write changed
// (the per-table generations only refuse fills that raced the write's invalidation). A write's
// position is known just after its commit (PostgreSQL is asked for it, MariaDB reports it), so
// its tables are first marked pending (no replica answer qualifies), then settled. A mark is
// dropped at its horizon, by when every replica that may serve reads has surely replayed it (the
// caller passes max_replica_lag plus two health-check periods). At most kMaxMarks are kept; past
// that they are folded into one mark per cluster (more refused fills, never a stale one).
// Shared by all workers; one mutex.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "src/replication/position.hpp"

namespace sluice::cache {

class WriteMarks {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kMaxMarks = 65536;

  // A write to `tables` of `cluster` (every table when `all`) committed; its position follows.
  void begin(const std::string& cluster, const std::vector<std::string>& tables, bool all, Clock::time_point horizon);
  // The position of that write (Position::unreachable() if it could not be learned).
  void settle(const std::string& cluster, const std::vector<std::string>& tables, bool all,
              const replication::Position& at, Clock::time_point horizon);
  // What a replica's answer that read `tables` of `cluster` must cover to be kept.
  replication::Position need(const std::string& cluster, const std::vector<std::string>& tables, Clock::time_point now);
  std::size_t size() const;

 private:
  struct Mark {
    replication::Position at;
    int pending = 0;
    Clock::time_point horizon;
  };
  static std::string key(const std::string& cluster, const std::string& table) { return cluster + '\x1f' + table; }
  void fold_locked();

  mutable std::mutex mu_;
  std::unordered_map<std::string, Mark> marks_;  // "" as the table: every table of the cluster
};

}  // namespace sluice::cache
