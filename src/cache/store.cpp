// Result cache storage (see header).
#include "src/cache/store.hpp"

#include <functional>

namespace sluice::cache {

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

std::shared_ptr<const std::string> Shard::get(const std::string& key, Clock::time_point now, const std::string& scope) {
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
  lru_.splice(lru_.begin(), lru_, it->second);
  ++stats_.hits;
  ++sc.hits;
  return it->second->value;
}

bool Shard::put(const std::string& key, std::string value, std::vector<std::string> tables, Clock::duration ttl,
                Clock::time_point now, const std::string& scope) {
  std::size_t cost = entry_cost(key.size(), value.size(), tables);
  std::lock_guard lock(mu_);
  if (auto it = by_key_.find(key); it != by_key_.end()) erase_locked(it->second);
  if (cost > max_bytes_) return false;
  while (bytes_ + cost > max_bytes_ && !lru_.empty()) {
    ++by_scope_[std::prev(lru_.end())->scope].evictions;
    erase_locked(std::prev(lru_.end()));
    ++stats_.evictions;
  }
  lru_.push_front(Entry{key, std::make_shared<const std::string>(std::move(value)), std::move(tables), now + ttl, cost, scope});
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

std::shared_ptr<const std::string> Store::get(const std::string& key, Clock::time_point now, const std::string& scope) {
  return shard(key).get(key, now, scope);
}

bool Store::put(const std::string& key, std::string value, std::vector<std::string> tables, Clock::duration ttl,
                Clock::time_point now, const std::string& scope) {
  return shard(key).put(key, std::move(value), std::move(tables), ttl, now, scope);
}

Stats Store::stats(const std::string& scope) const {
  Stats total;
  for (auto& s : shards_) {
    auto x = s->stats(scope);
    total.entries += x.entries;
    total.bytes += x.bytes;
    total.hits += x.hits;
    total.misses += x.misses;
    total.evictions += x.evictions;
    total.invalidations += x.invalidations;
    total.expirations += x.expirations;
  }
  return total;
}

std::vector<std::string> Store::scopes() const {
  std::unordered_set<std::string> all;
  for (auto& s : shards_)
    for (auto& name : s->scopes()) all.insert(name);
  return {all.begin(), all.end()};
}

std::uint64_t Store::generation(const std::vector<std::string>& tables) const {
  std::lock_guard lock(gen_mu_);
  std::uint64_t g = all_generation_ * 0x9E3779B97F4A7C15ull;
  for (auto& t : tables)
    if (auto it = table_generation_.find(t); it != table_generation_.end()) g += it->second * 0xBF58476D1CE4E5B9ull + 1;
  return g;
}

bool Store::put_if_current(const std::string& key, std::string value, std::vector<std::string> tables,
                           Clock::duration ttl, std::uint64_t generation_at_start, const std::string& scope,
                           Clock::time_point now) {
  // Checked under the generation lock, so no invalidation slips in between check and store.
  std::lock_guard lock(gen_mu_);
  std::uint64_t g = all_generation_ * 0x9E3779B97F4A7C15ull;
  for (auto& t : tables)
    if (auto it = table_generation_.find(t); it != table_generation_.end()) g += it->second * 0xBF58476D1CE4E5B9ull + 1;
  if (g != generation_at_start) return false;
  return shard(key).put(key, std::move(value), std::move(tables), ttl, now, scope);
}

std::size_t Store::invalidate_table(const std::string& table) {
  {
    std::lock_guard lock(gen_mu_);
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
  for (auto& s : shards_) {
    auto x = s->stats();
    total.entries += x.entries;
    total.bytes += x.bytes;
    total.hits += x.hits;
    total.misses += x.misses;
    total.evictions += x.evictions;
    total.invalidations += x.invalidations;
    total.expirations += x.expirations;
  }
  return total;
}

}  // namespace sluice::cache
