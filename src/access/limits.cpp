// Connection counts and request rates (limits.hpp).
#include "src/access/limits.hpp"

namespace sluice::access {

const char* to_string(Limit l) {
  switch (l) {
    case Limit::ConnectionsPerUser:
      return "max_connections_per_user";
    case Limit::ConnectionsPerDatabase:
      return "max_connections_per_database";
    case Limit::ConnectionsPerAddress:
      return "max_connections_per_address";
    case Limit::ConnectionRate:
      return "connections_per_second_per_address";
    case Limit::QueryRateUser:
      return "queries_per_second_per_user";
    case Limit::QueryRateAddress:
      return "queries_per_second_per_address";
  }
  return "?";
}

void Ticket::reset() {
  if (!entry_) return;
  auto* e = static_cast<ConnectionCounts::Entry*>(std::exchange(entry_, nullptr));
  e->counts->give_back(e);
}

Ticket ConnectionCounts::take(Scope scope, std::string_view key, std::uint32_t limit) {
  std::lock_guard lock(mu_);
  auto& map = maps_[static_cast<std::size_t>(scope)];
  auto it = map.find(std::string(key));
  if (it == map.end()) {
    it = map.emplace(std::string(key), std::make_unique<Entry>(Entry{this, scope, std::string(key), 0})).first;
  }
  Entry* e = it->second.get();
  if (limit != 0 && e->count >= limit) {
    if (e->count == 0) map.erase(it);
    return {};
  }
  ++e->count;
  Ticket t;
  t.entry_ = e;
  return t;
}

void ConnectionCounts::give_back(Entry* e) {
  std::lock_guard lock(mu_);
  if (--e->count == 0) maps_[static_cast<std::size_t>(e->scope)].erase(e->key);
}

std::vector<ConnectionCounts::Row> ConnectionCounts::rows() const {
  std::lock_guard lock(mu_);
  std::vector<Row> out;
  for (auto& map : maps_)
    for (auto& [k, e] : map) out.push_back({e->scope, k, e->count});
  return out;
}

namespace {
// How early a request arriving at `t` is when the next is due at `tat` (> 0: early by that much).
std::int64_t gcra_wait(std::int64_t tat, std::int64_t t, std::uint32_t rate) {
  const std::int64_t interval = 1'000'000'000 / rate;
  const std::int64_t burst = 1'000'000'000 - interval;  // rate requests at once
  return std::max(tat, t) - t - burst;
}
std::int64_t ns_of(std::chrono::steady_clock::time_point now) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
}
}  // namespace

std::optional<std::chrono::nanoseconds> Gcra::admit(std::uint32_t rate, std::chrono::nanoseconds max_wait,
                                                    std::chrono::steady_clock::time_point now) {
  const std::int64_t interval = 1'000'000'000 / rate;
  const std::int64_t t = ns_of(now);
  std::int64_t tat = tat_ns_.load(std::memory_order_relaxed);
  for (;;) {
    std::int64_t start = std::max(tat, t);
    std::int64_t wait = gcra_wait(tat, t, rate);
    if (wait > max_wait.count()) return std::nullopt;
    if (tat_ns_.compare_exchange_weak(tat, start + interval, std::memory_order_relaxed))
      return std::chrono::nanoseconds(std::max<std::int64_t>(wait, 0));
  }
}

bool Gcra::would_refuse(std::uint32_t rate, std::chrono::nanoseconds max_wait,
                        std::chrono::steady_clock::time_point now) const {
  return gcra_wait(tat_ns_.load(std::memory_order_relaxed), ns_of(now), rate) > max_wait.count();
}

void Gcra::undo(std::uint32_t rate) { tat_ns_.fetch_sub(1'000'000'000 / rate, std::memory_order_relaxed); }

std::shared_ptr<Gcra> RateBuckets::get(Limit limit, std::string_view key) {
  std::lock_guard lock(mu_);
  auto& map = maps_[static_cast<std::size_t>(limit)];
  auto it = map.find(std::string(key));
  if (it != map.end()) return it->second;
  if (map.size() >= 65536) map.clear();
  return map.emplace(std::string(key), std::make_shared<Gcra>()).first->second;
}

}  // namespace sluice::access
