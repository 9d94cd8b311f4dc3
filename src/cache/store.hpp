// The result cache's storage: entries (key -> response bytes) with a TTL, LRU eviction under a
// byte budget with exact accounting, and an index from table name to the entries that read it,
// so a write drops exactly those. Sharded so worker threads rarely contend; each shard has its
// own lock, budget (max_bytes / shards) and index. Sans-io: no sockets, no protocol.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "src/cache/stream_marks.hpp"
#include "src/cache/write_marks.hpp"
#include "src/replication/position.hpp"

namespace sluice::cache {

using Clock = std::chrono::steady_clock;

struct Stats {
  std::uint64_t entries = 0, bytes = 0, hits = 0, misses = 0, evictions = 0, invalidations = 0, expirations = 0;
  std::uint64_t replica_hits = 0;   // of the hits, answers a replica gave
  std::uint64_t behind_client = 0;  // entries passed over (a miss) because the client wrote after them
  std::uint64_t refused_fills = 0;  // replica answers not kept: older than a write to what they read
  void add(const Stats& o);
};

// Where a cached answer came from: the replication position its server had applied before it ran
// the query (a lower bound: the last health check's, or the client's own write on the primary),
// and whether that server was a replica (for the counters, and for WriteMarks).
struct Origin {
  bool replica = false;
  replication::Position position;
  // May be served to a client whose read-your-writes token is `token` (empty: it wrote nothing).
  // Writes through Sluice invalidate the tables they name, but not reads that depend on them
  // otherwise (views, functions): the position keeps such a read from its own writer.
  bool serves(const replication::Position& token) const { return token.empty() || position.covers(token); }
  // At least as fresh as `other` (a late fill does not replace it).
  bool at_least(const Origin& other) const { return position.covers(other.position); }
};

// Taken before asking the server for an answer to keep: the invalidation generation of its
// tables, and the position a replica's answer must cover (WriteMarks).
struct FillTicket {
  std::uint64_t generation = 0;
  replication::Position need;
  bool refused = false;  // the cluster's change stream is followed but not up: keep nothing
  // Followed clusters: how far the streams had read (StreamMarks::read_position). A primary's
  // answer includes every commit up to it, which is what the shared store records.
  replication::Position read;
};

// The index name of a table: its unqualified name, so a write to `public.t` drops reads of `t`
// (and of `other.t`: more than needed, never less).
inline std::string table_key(const std::string& name) {
  auto dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

// Bytes an entry is charged: its key, value and table names, plus a fixed per-entry overhead
// for the list node, map slots and index entries.
std::size_t entry_cost(std::size_t key, std::size_t value, const std::vector<std::string>& tables);

class Shard {
 public:
  explicit Shard(std::size_t max_bytes) : max_bytes_(max_bytes) {}
  // `scope` (a pool's name) only attributes counters: entries, bytes, hits, misses, evictions,
  // invalidations per pool for the admin console.
  // `token`: the asking client's read-your-writes token; a replica's answer it does not cover is
  // passed over (a miss: the client refills it from a member that has its write).
  std::shared_ptr<const std::string> get(const std::string& key, Clock::time_point now, const std::string& scope = {},
                                         const replication::Position* token = nullptr);
  // Stores (replacing an entry with the same key, unless that one is fresher); false when it
  // alone exceeds the budget.
  bool put(const std::string& key, std::string value, std::vector<std::string> tables, Clock::duration ttl,
           Clock::time_point now, const std::string& scope = {}, Origin origin = {});
  void count_refused_fill(const std::string& scope);
  Stats stats(const std::string& scope) const;
  std::vector<std::string> scopes() const;
  std::size_t invalidate_table(const std::string& table);
  std::size_t invalidate_all();
  Stats stats() const;
  void set_max_bytes(std::size_t max_bytes);  // evicts down to it at once
  // Request coalescing: the first miss on a key fills it; others wait for that fill.
  bool begin_fill(const std::string& key);  // true: the caller fills (and must end_fill)
  void end_fill(const std::string& key);
  bool filling(const std::string& key) const;

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<const std::string> value;
    std::vector<std::string> tables;
    Clock::time_point expires;
    std::size_t cost = 0;
    std::string scope;
    Origin origin;
  };
  using List = std::list<Entry>;
  void erase_locked(List::iterator it);

  mutable std::mutex mu_;
  std::size_t max_bytes_;
  std::size_t bytes_ = 0;
  List lru_;  // front = most recently used
  std::unordered_map<std::string, List::iterator> by_key_;
  std::unordered_map<std::string, std::unordered_set<std::string>> by_table_;
  std::unordered_set<std::string> filling_;
  Stats stats_;
  std::unordered_map<std::string, Stats> by_scope_;  // entries and bytes kept current too
};

class Store {
 public:
  Store(std::size_t max_bytes, std::size_t shards);
  // Invalidation generation of a set of tables: take it before asking the server and pass it to
  // put_if_current(), so an answer read before a concurrent write's invalidation is not kept.
  std::uint64_t generation(const std::vector<std::string>& tables) const;
  // The generation and, for `cluster`'s replicas, the write position an answer must cover.
  FillTicket fill_ticket(const std::vector<std::string>& tables, const std::string& cluster,
                         Clock::time_point now = Clock::now());
  // Stores the answer unless a write invalidated its tables since the ticket was taken, or (a
  // replica's answer) its position does not cover the writes to its tables the ticket names.
  bool put_if_current(const std::string& key, std::string value, std::vector<std::string> tables, Clock::duration ttl,
                      const FillTicket& ticket, const Origin& origin = {}, const std::string& scope = {},
                      Clock::time_point now = Clock::now());
  std::shared_ptr<const std::string> get(const std::string& key, Clock::time_point now = Clock::now(),
                                         const std::string& scope = {}, const replication::Position* token = nullptr);
  bool put(const std::string& key, std::string value, std::vector<std::string> tables, Clock::duration ttl,
           Clock::time_point now = Clock::now(), const std::string& scope = {}, Origin origin = {});
  // Positions of writes through Sluice, per cluster and table (what replica answers must cover).
  WriteMarks& write_marks() { return marks_; }
  // Positions of the commits the change streams read, per cluster and table (what an answer
  // from the shared store must cover).
  StreamMarks& stream_marks() { return stream_marks_; }
  Stats stats(const std::string& scope) const;  // one pool's share
  std::vector<std::string> scopes() const;
  // invalidation = "stream" (src/state/change_stream): while a change stream of a followed
  // cluster is not up, writes that bypass Sluice would go unseen, so none of its answers are
  // kept. Each follower counts as down from when it is registered (stream_down) until it is up
  // (stream_up), and again when its stream is lost (stream_down); one that ends while down
  // takes its count back (stream_release). Going down or up empties the cache (what changed
  // while nobody followed is unknown). stream_unfollow: the cluster is back to local invalidation.
  void stream_down(const std::string& cluster);
  void stream_up(const std::string& cluster);
  void stream_release(const std::string& cluster);
  void stream_unfollow(const std::string& cluster);
  // nullopt: not followed; else whether every stream of it is up.
  std::optional<bool> stream_state(const std::string& cluster) const;
  // Drops every entry that read `table`; returns how many.
  std::size_t invalidate_table(const std::string& table);
  std::size_t invalidate_all();
  Stats stats() const;  // summed over shards
  bool begin_fill(const std::string& key) { return shard(key).begin_fill(key); }
  void end_fill(const std::string& key) { shard(key).end_fill(key); }
  bool filling(const std::string& key) { return shard(key).filling(key); }
  std::size_t max_bytes() const { return max_bytes_.load(); }
  // A reload: a new total budget, split evenly, evicting what no longer fits.
  void set_max_bytes(std::size_t max_bytes);

 private:
  Shard& shard(const std::string& key);
  std::atomic<std::size_t> max_bytes_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::uint64_t generation_locked(const std::vector<std::string>& tables) const;
  mutable std::mutex gen_mu_;
  std::uint64_t all_generation_ = 0;
  // At most kMaxTableGenerations tables are tracked; past that all are forgotten and the
  // all-tables generation moves on (fills in flight are refused, nothing stale is kept).
  static constexpr std::size_t kMaxTableGenerations = 65536;
  std::unordered_map<std::string, std::uint64_t> table_generation_;
  std::unordered_map<std::string, int> streams_;  // followed clusters: streams not up
  WriteMarks marks_;
  StreamMarks stream_marks_;
};

}  // namespace sluice::cache
