// One follower of the cache's change streams (src/state/change_stream.hpp): what both engines'
// followers share (status, applying a commit, the retry loop) here and in change_stream.cpp;
// each engine's connection in its own file (change_stream_pg.cpp: logical decoding;
// change_stream_mysql.cpp: the binlog).
#pragma once

#include <boost/asio.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "src/config/config.hpp"
#include "src/pool/server_conn.hpp"
#include "src/replication/position.hpp"
#include "src/state/change_stream.hpp"

namespace sluice::state {

struct ChangeStreams::Follower : std::enable_shared_from_this<ChangeStreams::Follower> {
  std::string cluster, database, publication;
  bool mysql = false, pgoutput = false;
  config::Endpoint primary;
  std::shared_ptr<const pool::Credentials> creds;
  pool::ServerTls tls;
  config::Duration horizon;  // max_replica_lag + 2 health-check periods
  cache::Store* store = nullptr;
  boost::asio::any_io_executor ex;
  std::atomic<bool> stopping{false};
  std::shared_ptr<pool::ServerConn> conn;  // on ex only
  mutable std::mutex mu;
  StreamStatus st;
  // Views by a relation they read (unqualified names; PostgreSQL), on ex only: a change to the
  // relation invalidates them too.
  std::unordered_map<std::string, std::vector<std::string>> dependents;

  std::chrono::steady_clock::time_point marks_horizon() const { return std::chrono::steady_clock::now() + horizon; }
  // Every table of the cluster was written at `at`: what committed before the stream began is
  // unknown, so a replica's answer must cover it.
  void mark_all(const replication::Position& at);
  // The stream is up (from `from`): the cluster's answers may be kept again.
  void up(const std::string& from);
  // A commit: its tables ("schema.table", or every table) are marked at `at` and invalidated.
  void apply(const std::vector<std::string>& tables, bool all, const replication::Position& at, std::int64_t lag_us);
  // Closes the connection after `silence` without a byte (re-armed by each read).
  void watch(boost::asio::steady_timer& watchdog, std::chrono::seconds silence);

  // One connection's life: set up, then follow until it fails; returns why it ended.
  boost::asio::awaitable<std::string> follow_pg();
  boost::asio::awaitable<void> refresh_views_pg();
  boost::asio::awaitable<std::string> follow_mysql();
  boost::asio::awaitable<void> run();
  void stop();
};

}  // namespace sluice::state
