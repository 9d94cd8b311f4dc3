// [cache] invalidation = "stream": the result cache follows each cluster's primary, so writes
// that bypass Sluice (other applications, psql on the server, cron jobs) invalidate as writes
// through it do. MariaDB: one follower per cluster reads the binlog as a replica does
// (change_stream_mysql.cpp). PostgreSQL: one follower per (cluster, database a pool names), on
// the control worker (change_stream_pg.cpp):
//   1. logs in as the cluster's stream_user (default health_user) with replication=database;
//   2. makes sure the publication exists (`CREATE PUBLICATION ... FOR ALL TABLES` if it may);
//   3. creates a TEMPORARY logical slot with pgoutput (the server drops it when the connection
//      goes: the cache lives in memory, so a slot that outlived Sluice would only hold WAL);
//   4. marks every table of the cluster as written at the slot's consistent point (a replica
//      answer must cover it: what changed while nobody followed is unknown), declares the
//      stream up (Store::stream_up empties the cache) and starts replication;
//   5. for each committed transaction, marks its tables at its end position (WriteMarks: a
//      replica's answer must cover it) and invalidates them (the generation refuses fills that
//      raced it), then confirms the position so the slot frees the WAL.
// When the stream is lost (the walsender killed, the slot dropped, the primary restarting), the
// cluster's answers go, none are kept until a new stream is up, and the follower retries every
// second. Writes reach the cache within the stream's lag (SHOW CACHE_STREAMS).
#pragma once

#include <boost/asio.hpp>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "src/state/snapshot.hpp"

namespace sluice::cache {
class Store;
}

namespace sluice::state {

struct StreamStatus {
  std::string cluster, database, slot;
  bool up = false;
  std::string confirmed;          // the last position applied (PostgreSQL: and confirmed)
  std::string server;             // PostgreSQL: the server's end of WAL, as it last said
  std::int64_t lag_bytes = -1;    // PostgreSQL: WAL between the two
  std::int64_t last_lag_us = -1;  // PostgreSQL: the last commit's arrival here minus its time
  std::uint64_t commits = 0, tables_invalidated = 0, losses = 0;
  std::string last_error;
};

class ChangeStreams {
 public:
  ChangeStreams() = default;
  ~ChangeStreams();
  ChangeStreams(const ChangeStreams&) = delete;
  ChangeStreams& operator=(const ChangeStreams&) = delete;
  // Starts, keeps or stops followers to match `s` (start and every reload).
  void reconfigure(const Snapshot& s, cache::Store& store, boost::asio::any_io_executor ex);
  void stop();
  std::vector<StreamStatus> status() const;

  struct Follower;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Follower>> followers_;  // "cluster/database"
};

}  // namespace sluice::state
