// Shadow traffic: copies of statements a [[rules]] entry mirrors, run on another cluster (its
// primary) after the client has its answer, compared with that answer by row count and an
// order-insensitive digest of the rows, then discarded. One queue per mirror cluster, bounded: a
// slow or dead mirror drops copies (counted), it never holds a client. Counts per fingerprint
// for SHOW MIRRORS. Sessions on any worker offer copies (a mutex around the queue); one sender
// coroutine per mirror runs them, on the control worker.
#pragma once

#include <boost/asio.hpp>

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "src/config/config.hpp"
#include "src/pool/credentials.hpp"
#include "src/pool/server_conn.hpp"

namespace sluice::router {

// What the rows of an answer add up to: the CommandComplete / OK row counts, and the sum of a
// 64-bit FNV-1a hash of each row's bytes (so row order does not matter).
struct AnswerSum {
  std::uint64_t rows = 0, digest = 0;
  bool error = false;
  void row(std::string_view bytes);
  bool operator==(const AnswerSum&) const = default;
  // The number at the end of a PostgreSQL CommandComplete tag ("SELECT 5", "INSERT 0 3").
  static std::uint64_t tag_rows(std::string_view tag);
};

struct MirrorCopy {
  std::shared_ptr<const pool::Credentials> creds;
  std::string database;  // on the server
  std::string text, fingerprint;
  AnswerSum answer;  // the client's
};

class Mirror : public std::enable_shared_from_this<Mirror> {
 public:
  Mirror(config::Cluster cluster, config::Mirroring settings, pool::ServerTls tls);
  const std::string& cluster() const { return cluster_.name; }
  config::Protocol protocol() const { return cluster_.protocol; }
  // Queues a copy (any thread); dropped and counted when the queue is full.
  void offer(MirrorCopy c);
  // A statement that could not be copied (its answer was not whole: too large, a lost server):
  // counted as dropped.
  void skip(const std::string& fingerprint) { count(fingerprint, &Counts::dropped); }
  void start(boost::asio::any_io_executor ex);
  void stop();
  struct Row {
    std::string fingerprint;
    std::uint64_t sent, matched, mismatched, failed, dropped;
  };
  std::vector<Row> rows() const;
  std::size_t waiting() const;

 private:
  struct Counts {
    std::uint64_t sent = 0, matched = 0, mismatched = 0, failed = 0, dropped = 0;
  };
  boost::asio::awaitable<void> sender(boost::asio::any_io_executor ex);
  // Runs `c` on the mirror: its answer's sum, or nullopt when the mirror failed (unreachable,
  // timed out, broken).
  boost::asio::awaitable<std::optional<AnswerSum>> run(boost::asio::any_io_executor ex, const MirrorCopy& c);
  void count(const std::string& fingerprint, std::uint64_t Counts::*field);
  void wake_sender();

  const config::Cluster cluster_;
  const config::Mirroring settings_;
  const pool::ServerTls tls_;
  mutable std::mutex mu_;  // guards queue_, counts_, timer_, stopped_
  std::deque<MirrorCopy> queue_;
  std::map<std::string, Counts> counts_;
  boost::asio::steady_timer* timer_ = nullptr;  // the sender's wait, while it waits
  bool stopped_ = false;
  boost::asio::any_io_executor ex_;  // the sender's (set once, at start)
  // The sender's own: open connections by (user, database), least recently used last.
  std::vector<std::pair<std::string, std::shared_ptr<pool::ServerConn>>> conns_;
};

// The mirrors of a configuration's [[rules]], by cluster name; a reload keeps those whose
// cluster and settings did not change.
class Mirrors {
 public:
  void reconfigure(const config::Config& cfg, const pool::ServerTlsMap& tls, boost::asio::any_io_executor ex);
  std::shared_ptr<Mirror> find(std::string_view cluster) const;
  std::vector<std::shared_ptr<Mirror>> all() const;
  void stop();

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Mirror>, std::less<>> mirrors_;
  std::map<std::string, std::string, std::less<>> keys_;  // what each was built from
};

}  // namespace sluice::router
