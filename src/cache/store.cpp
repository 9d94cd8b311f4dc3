// Result cache storage (see header).
#include "src/cache/store.hpp"

#include <functional>

namespace sluice::cache {

void Stats::add(const Stats& o) {
  entries += o.entries;
  bytes += o.bytes;
  hits += o.hits;
  misses += o.misses;
  evictions += o.evictions;
  invalidations += o.invalidations;
  expirations += o.expirations;
  replica_hits += o.replica_hits;
  behind_client += o.behind_client;
  refused_fills += o.refused_fills;
}

std::size_t entry_cost(std::size_t key, std::size_t value, const std::vector<std::string>& tables) {
  std::size_t cost = 2 * key + value + 160;  // the key lives in the entry and in the key map
  for (auto& t : tables) cost += key + t.size() + 64;  // one index slot per table
  return cost;
}

void Shard::erase_locked(List::iterator it) {
  for (auto& t : it->tables) {
    auto ti = by_table_.find(t);
    if (ti == by_table_.end()) continue;
    ti->second.erase(it->key);
    if (ti->second.empty()) by_table_.erase(ti);
  }
  bytes_ -= it->cost;
  auto& sc = by_scope_[it->scope];
  sc.bytes -= it->cost;
  --sc.entries;
  by_key_.erase(it->key);
  lru_.erase(it);
}

std::shared_ptr<const std::string> Shard::get(const std::string& key, Clock::time_point now, const std::string& scope,
                                              const replication::Position* token) {
  std::lock_guard lock(mu_);
  auto& sc = by_scope_[scope];
  auto it = by_key_.find(key);
  if (it == by_key_.end()) {
    ++stats_.misses;
    ++sc.misses;
    return nullptr;
  }
  if (it->second->expires <= now) {
    ++stats_.expirations;
    ++stats_.misses;
    ++sc.expirations;
    ++sc.misses;
    erase_locked(it->second);
    return nullptr;
  }
  const Origin& origin = it->second->origin;
  if (token && !origin.serves(*token)) {  // older than this client's own write: it refills
    ++stats_.behind_client;
    ++stats_.misses;
    ++sc.behind_client;
    ++sc.misses;
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  ++stats_.hits;
  ++sc.hits;
  if (origin.replica) {
    ++stats_.replica_hits;
    ++sc.replica_hits;
  }
  return it->second->value;
}

bool Shard::put(const std::string& key, std::string value, std::vector<std::string> tables, Clock::duration ttl,
                Clock::time_point now, const std::string& scope, Origin origin) {
  std::size_t cost = entry_cost(key.size(), value.size(), tables);
  std::lock_guard lock(mu_);
  if (auto it = by_key_.find(key); it != by_key_.end()) {
    const Origin& kept = it->second->origin;
    // A fill that finished late does not replace a fresher answer (the primary's, or a replica's
    // from further on).
    if (it->second->expires > now && kept.at_least(origin) && !origin.at_least(kept)) return true;
    erase_locked(it->second);
  }
  if (cost > max_bytes_) return false;
  while (bytes_ + cost > max_bytes_ && !lru_.empty()) {
    ++by_scope_[std::prev(lru_.end())->scope].evictions;
    erase_locked(std::prev(lru_.end()));
    ++stats_.evictions;
  }
  lru_.push_front(Entry{key, std::make_shared<const std::string>(std::move(value)), std::move(tables), now + ttl, cost,
                        scope, std::move(origin)});
  auto& sc = by_scope_[scope];
  sc.bytes += cost;
  ++sc.entries;
  by_key_[key] = lru_.begin();
  for (auto& t : lru_.front().tables) by_table_[t].insert(key);
  bytes_ += cost;
  return true;
}

void Shard::set_max_bytes(std::size_t max_bytes) {
  std::lock_guard lock(mu_);
  max_bytes_ = max_bytes;
  while (bytes_ > max_bytes_ && !lru_.empty()) {
    ++by_scope_[std::prev(lru_.end())->scope].evictions;
    erase_locked(std::prev(lru_.end()));
    ++stats_.evictions;
  }
}

std::size_t Shard::invalidate_table(const std::string& table) {
  std::lock_guard lock(mu_);
  auto ti = by_table_.find(table);
  if (ti == by_table_.end()) return 0;
  std::vector<std::string> keys(ti->second.begin(), ti->second.end());
  for (auto& k : keys)
    if (auto it = by_key_.find(k); it != by_key_.end()) {
      ++by_scope_[it->second->scope].invalidations;
      erase_locked(it->second);
    }
  stats_.invalidations += keys.size();
  return keys.size();
}

std::size_t Shard::invalidate_all() {
  std::lock_guard lock(mu_);
  std::size_t n = lru_.size();
  for (auto& e : lru_) ++by_scope_[e.scope].invalidations;
  for (auto& [name, sc] : by_scope_) sc.entries = sc.bytes = 0;
  lru_.clear();
  by_key_.clear();
  by_table_.clear();
  bytes_ = 0;
  stats_.invalidations += n;
  return n;
}

void Shard::count_refused_fill(const std::string& scope) {
  std::lock_guard lock(mu_);
  ++stats_.refused_fills;
  ++by_scope_[scope].refused_fills;
}

bool Shard::begin_fill(const std::string& key) {
  std::lock_guard lock(mu_);
  return filling_.insert(key).second;
}

void Shard::end_fill(const std::string& key) {
  std::lock_guard lock(mu_);
  filling_.erase(key);
}

bool Shard::filling(const std::string& key) const {
  std::lock_guard lock(mu_);
  return filling_.count(key) != 0;
}

Stats Shard::stats() const {
  std::lock_guard lock(mu_);
  Stats s = stats_;
  s.entries = lru_.size();
  s.bytes = bytes_;
  return s;
}

Stats Shard::stats(const std::string& scope) const {
  std::lock_guard lock(mu_);
  auto it = by_scope_.find(scope);
  return it == by_scope_.end() ? Stats{} : it->second;
}

std::vector<std::string> Shard::scopes() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (auto& [name, sc] : by_scope_) out.push_back(name);
  return out;
}

Store::Store(std::size_t max_bytes, std::size_t shards) : max_bytes_(max_bytes) {
  if (shards == 0) shards = 1;
  for (std::size_t i = 0; i < shards; ++i) shards_.push_back(std::make_unique<Shard>(max_bytes / shards));
}

void Store::set_max_bytes(std::size_t max_bytes) {
  max_bytes_ = max_bytes;
  for (auto& sh : shards_) sh->set_max_bytes(max_bytes / shards_.size());
}

Shard& Store::shard(const std::string& key) { return *shards_[std::hash<std::string>{}(key) % shards_.size()]; }

std::shared_ptr<const std::string> Store::get(const std::string& key, Clock::time_point now, const std::string& scope,
                                              const replication::Position* token) {
  return shard(key).get(key, now, scope, token);
}

bool Store::put(const std::string& key, std::string value, std::vector<std::string> tables, Clock::duration ttl,
                Clock::time_point now, const std::string& scope, Origin origin) {
  return shard(key).put(key, std::move(value), std::move(tables), ttl, now, scope, std::move(origin));
}

Stats Store::stats(const std::string& scope) const {
  Stats total;
  for (auto& s : shards_) total.add(s->stats(scope));
  return total;
}

std::vector<std::string> Store::scopes() const {
  std::unordered_set<std::string> all;
  for (auto& s : shards_)
    for (auto& name : s->scopes()) all.insert(name);
  return {all.begin(), all.end()};
}

std::uint64_t Store::generation_locked(const std::vector<std::string>& tables) const {
  std::uint64_t g = all_generation_ * 0x9E3779B97F4A7C15ull;
  for (auto& t : tables)
    if (auto it = table_generation_.find(t); it != table_generation_.end()) g += it->second * 0xBF58476D1CE4E5B9ull + 1;
  return g;
}

std::uint64_t Store::generation(const std::vector<std::string>& tables) const {
  std::lock_guard lock(gen_mu_);
  return generation_locked(tables);
}

FillTicket Store::fill_ticket(const std::vector<std::string>& tables, const std::string& cluster,
                              Clock::time_point now) {
  FillTicket t;
  // The generation first: a write that moved it had marked its tables before (WriteMarks::begin
  // precedes the invalidation), so the marks read next include that write.
  bool followed = false;
  {
    std::lock_guard lock(gen_mu_);
    t.generation = generation_locked(tables);
    if (!streams_.empty())
      if (auto it = streams_.find(cluster); it != streams_.end()) {
        followed = true;
        t.refused = it->second > 0;
      }
  }
  if (followed && !t.refused) t.read = stream_marks_.read_position(cluster);
  t.need = marks_.need(cluster, tables, now);
  return t;
}

void Store::stream_down(const std::string& cluster) {
  {
    std::lock_guard lock(gen_mu_);
    ++streams_[cluster];
  }
  invalidate_all();
}

void Store::stream_up(const std::string& cluster) {
  {
    std::lock_guard lock(gen_mu_);
    if (auto it = streams_.find(cluster); it != streams_.end() && it->second > 0) --it->second;
  }
  invalidate_all();  // fills that began before are refused too
}

void Store::stream_release(const std::string& cluster) {
  std::lock_guard lock(gen_mu_);
  if (auto it = streams_.find(cluster); it != streams_.end() && it->second > 0) --it->second;
}

void Store::stream_unfollow(const std::string& cluster) {
  {
    std::lock_guard lock(gen_mu_);
    streams_.erase(cluster);
  }
  stream_marks_.forget(cluster);
}

std::optional<bool> Store::stream_state(const std::string& cluster) const {
  std::lock_guard lock(gen_mu_);
  auto it = streams_.find(cluster);
  if (it == streams_.end()) return std::nullopt;
  return it->second == 0;
}

bool Store::put_if_current(const std::string& key, std::string value, std::vector<std::string> tables,
                           Clock::duration ttl, const FillTicket& ticket, const Origin& origin,
                           const std::string& scope, Clock::time_point now) {
  if (ticket.refused || (origin.replica && !origin.position.covers(ticket.need))) {
    shard(key).count_refused_fill(scope);
    return false;
  }
  // Checked under the generation lock, so no invalidation slips in between check and store.
  std::lock_guard lock(gen_mu_);
  if (generation_locked(tables) != ticket.generation) return false;
  return shard(key).put(key, std::move(value), std::move(tables), ttl, now, scope, origin);
}

std::size_t Store::invalidate_table(const std::string& table) {
  {
    std::lock_guard lock(gen_mu_);
    if (table_generation_.size() >= kMaxTableGenerations && !table_generation_.count(table)) {
      table_generation_.clear();
      ++all_generation_;
    }
    ++table_generation_[table];
  }
  std::size_t n = 0;
  for (auto& s : shards_) n += s->invalidate_table(table);
  return n;
}

std::size_t Store::invalidate_all() {
  {
    std::lock_guard lock(gen_mu_);
    ++all_generation_;
  }
  std::size_t n = 0;
  for (auto& s : shards_) n += s->invalidate_all();
  return n;
}

Stats Store::stats() const {
  Stats total;
  for (auto& s : shards_) total.add(s->stats());
  return total;
}

}  // namespace sluice::cache
