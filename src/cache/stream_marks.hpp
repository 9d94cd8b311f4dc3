// What the change streams (src/state/change_stream) have told this instance, per cluster: the
// position of the last commit to each table, and how far each follower has read. An answer that
// another instance filled (the shared store, src/state/shared_cache) carries the position its
// data is at least as new as; it may be used here only if that position covers the last write
// this instance's streams saw to each table it read (and the start of the current streams: what
// came before is unknown). Unlike WriteMarks, nothing is dropped at a horizon: an old answer must
// still be refused long after its write. At most kMaxTables tables per cluster are kept; past
// that they fold into the cluster's floor (more refusals, never a stale answer). One mutex.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "src/replication/position.hpp"

namespace sluice::cache {

class StreamMarks {
 public:
  static constexpr std::size_t kMaxTables = 65536;

  // Follower `follower` of `cluster` reads from `at`: every table counts as written there.
  void start(const std::string& cluster, const std::string& follower, const replication::Position& at);
  // It stopped or lost its stream: until it starts again, the cluster has no read position.
  void stop(const std::string& cluster, const std::string& follower);
  // A commit at `at` to `tables` (table_key names; every table when `all`): marked before the
  // cache drops their entries (an entry from another instance is judged by these marks).
  void commit(const std::string& cluster, const std::vector<std::string>& tables, bool all,
              const replication::Position& at);
  // It has read, and applied to the cache, everything up to `at` (after a commit's entries
  // were dropped, or a keepalive with no transaction half read): an entry still in the cache
  // then has every write to its tables up to the read position.
  void read_to(const std::string& cluster, const std::string& follower, const replication::Position& at);
  // Every commit all of the cluster's followers have read is at or before this (per domain, the
  // least of theirs); empty when a follower has not started or none is known.
  replication::Position read_position(const std::string& cluster) const;
  // Whether data at `data` includes every write to `tables` the followers read.
  bool covers(const std::string& cluster, const std::vector<std::string>& tables,
              const replication::Position& data) const;
  void forget(const std::string& cluster);  // no longer followed

 private:
  struct Cluster {
    replication::Position floor;  // stream starts, and folded table marks
    std::unordered_map<std::string, replication::Position> tables;
    std::unordered_map<std::string, replication::Position> followers;  // empty position: not started
  };
  mutable std::mutex mu_;
  std::unordered_map<std::string, Cluster> clusters_;
};

}  // namespace sluice::cache
