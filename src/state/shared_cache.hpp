// The result cache's shared second-level store ([cache] shared): a Redis or Valkey server that
// several Sluice instances use, so one instance's fill answers another's miss. Redis holds each
// answer as a cache::SharedEntry under `shared_prefix` + the SHA-256 of its cache key; nothing is
// ever deleted there: an instance decides for itself whether an entry is fresh enough, by the
// same position rule as the rest of the cache. An entry is used only when
//   - this instance's change stream of its cluster is up (a ticket that is not refused),
//   - its data position covers the start of that stream and the last commit the stream read to
//     each table it read (cache::StreamMarks), and the writes through this instance to those
//     tables (WriteMarks: a write not yet settled refuses it),
//   - no invalidation of those tables came between the ticket and its local store, and
//   - it covers the asking client's read-your-writes token.
// So Redis can be old, wiped, restarted or gone: the worst is a miss. Each worker has its own
// connection (net::RedisClient); a Redis that does not answer within `shared_timeout` is left
// alone for a while (1 s, backing off to 8 s) and the cache is local meanwhile.
#pragma once

#include <boost/asio.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "src/cache/store.hpp"
#include "src/config/config.hpp"
#include "src/net/redis_client.hpp"

namespace sluice::state {

struct SharedCacheStatus {
  std::string address;  // "" when off
  bool up = false;      // the last command got an answer
  std::uint64_t gets = 0, hits = 0, misses = 0, stale = 0, errors = 0, sets = 0, set_errors = 0;
  std::string last_error;
};

class SharedCache {
 public:
  // [cache] shared and its settings (start and reload); a change of server or password opens new
  // connections.
  void configure(const config::Cache& c);
  bool on() const { return on_.load(std::memory_order_relaxed); }
  // On a local miss this session fills: an answer another instance stored, if it may be used
  // (see above); it is kept in `store` too. Null: ask the server.
  boost::asio::awaitable<std::shared_ptr<const std::string>> fetch(cache::Store& store, const std::string& key,
                                                                   const std::string& scope, const std::string& cluster,
                                                                   const std::vector<std::string>& tables,
                                                                   const replication::Position* token,
                                                                   boost::asio::any_io_executor ex);
  // A fill this instance kept: stored in Redis for the others (in the background). `data`: the
  // position the answer's data is at least as new as.
  void publish(const std::string& key, const std::string& cluster, const std::vector<std::string>& tables, bool replica,
               const replication::Position& data, config::Duration ttl, const std::string& value,
               boost::asio::any_io_executor ex);
  SharedCacheStatus status() const;

 private:
  struct Settings {
    net::RedisOptions redis;
    std::string prefix;
    std::size_t max_value = 0;
    std::uint64_t generation = 0;
  };
  std::shared_ptr<net::RedisClient> client(boost::asio::any_io_executor ex);
  std::string redis_key(const std::string& key) const;
  void note(bool ok, const std::string& why);

  std::atomic<bool> on_{false};
  std::shared_ptr<const Settings> settings_;  // atomic_load / atomic_store
  std::atomic<std::uint64_t> gets_{0}, hits_{0}, misses_{0}, stale_{0}, errors_{0}, sets_{0}, set_errors_{0};
  std::atomic<bool> up_{false};
  mutable std::mutex mu_;
  std::string last_error_;
};

}  // namespace sluice::state
