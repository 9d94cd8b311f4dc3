// Counters for SHOW STATS / SHOW CLIENTS / metrics.
#include "src/observe/stats.hpp"

#include <algorithm>
#include <ctime>

namespace sluice::observe {

SharedName& SharedName::operator=(std::string_view s) {
  static std::mutex mu;
  static std::unordered_map<std::string, std::weak_ptr<const std::string>> names;
  static std::size_t prune_at = 64;
  std::lock_guard lock(mu);
  auto& w = names[std::string(s)];
  p_ = w.lock();
  if (!p_) {
    p_ = std::make_shared<const std::string>(s);
    w = p_;
  }
  if (names.size() >= prune_at) {  // names no client holds any more (a reload renamed a pool)
    std::erase_if(names, [](const auto& kv) { return kv.second.expired(); });
    prune_at = std::max<std::size_t>(64, 2 * names.size());
  }
  return *this;
}

const std::string& SharedName::str() const {
  static const std::string empty;
  return p_ ? *p_ : empty;
}

void Histogram::observe_us(std::uint64_t us) {
  std::size_t i = 0;
  while (i < kBoundsUs.size() && us > kBoundsUs[i]) ++i;  // le: a value on a bound counts there
  buckets[i].fetch_add(1, std::memory_order_relaxed);
  count.fetch_add(1, std::memory_order_relaxed);
  sum_us.fetch_add(us, std::memory_order_relaxed);
}

StatsTotals totals(const DbStats& s) {
  auto r = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  return {r(s.xacts), r(s.queries), r(s.bytes_in), r(s.bytes_out), r(s.xact_us), r(s.query_us), r(s.wait_us)};
}

std::shared_ptr<DbStats> StatsRegistry::get(const std::string& protocol, const std::string& database) {
  std::lock_guard lock(mu_);
  auto& p = by_key_[protocol + "/" + database];
  if (!p) {
    p = std::make_shared<DbStats>();
    p->protocol = protocol;
    p->database = database;
  }
  return p;
}

std::vector<std::shared_ptr<DbStats>> StatsRegistry::all() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<DbStats>> v;
  for (auto& [k, p] : by_key_) v.push_back(p);
  return v;
}

void StatsRegistry::roll_period() {
  std::lock_guard lock(mu_);
  for (auto& [k, p] : by_key_) {
    auto& pr = periods_[p.get()];
    pr.first = pr.second;
    pr.second = totals(*p);
  }
  prev_period_start_ = period_start_;
  period_start_ = Clock::now();
}

StatsRegistry::Period StatsRegistry::last_period(const DbStats& s) const {
  std::lock_guard lock(mu_);
  Period out;
  auto it = periods_.find(&s);
  if (it != periods_.end()) {
    out.begin = it->second.first;
    out.end = it->second.second;
  }
  out.seconds = std::chrono::duration<double>(period_start_ - prev_period_start_).count();
  return out;
}

const char* to_string(ClientState s) {
  switch (s) {
    case ClientState::Login: return "login";
    case ClientState::Idle: return "idle";
    case ClientState::Active: return "active";
    case ClientState::Waiting: return "waiting";
  }
  return "?";
}

std::int64_t epoch_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t coarse_epoch_us() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

void ClientInfo::set_state(ClientState s) {
  auto prev = static_cast<ClientState>(state.exchange(static_cast<int>(s), std::memory_order_relaxed));
  if (s == ClientState::Waiting && prev != ClientState::Waiting) wait_since_us.store(epoch_us(), std::memory_order_relaxed);
  else if (s != ClientState::Waiting) wait_since_us.store(0, std::memory_order_relaxed);
}

void ClientInfo::set_identity(std::string u, std::string db, std::string app) {
  std::lock_guard lock(mu);
  user = std::move(u);
  database = std::move(db);
  application_name = std::move(app);
}

void ClientTable::add(const std::shared_ptr<ClientInfo>& c) {
  std::lock_guard lock(mu_);
  by_id_[c->id] = c;
}

void ClientTable::remove(std::uint64_t id) {
  std::lock_guard lock(mu_);
  by_id_.erase(id);
  // The bucket array does not shrink by itself: after many clients leave, give it back.
  if (by_id_.bucket_count() > 1024 && by_id_.size() * 8 < by_id_.bucket_count()) by_id_.rehash(0);
}

std::shared_ptr<ClientInfo> ClientTable::find(std::uint64_t id) const {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second.lock();
}

std::vector<std::shared_ptr<ClientInfo>> ClientTable::all() const {
  std::vector<std::shared_ptr<ClientInfo>> v;
  {
    std::lock_guard lock(mu_);
    v.reserve(by_id_.size());
    for (auto& [id, w] : by_id_)
      if (auto p = w.lock()) v.push_back(std::move(p));
  }
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a->id < b->id; });
  return v;
}

}  // namespace sluice::observe
