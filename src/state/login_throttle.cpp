// The failed-login token bucket per client address.
#include "src/state/login_throttle.hpp"

#include <algorithm>

namespace sluice::state {

std::chrono::milliseconds LoginThrottle::failed(const std::string& addr, std::uint32_t burst, config::Duration delay) {
  failures_.fetch_add(1, std::memory_order_relaxed);
  if (delay.count() <= 0) return std::chrono::milliseconds(0);
  auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  if (buckets_.size() >= 65536 && !buckets_.count(addr)) {
    auto stalest = buckets_.begin();
    for (auto it = buckets_.begin(); it != buckets_.end(); ++it)
      if (it->second.last < stalest->second.last) stalest = it;
    buckets_.erase(stalest);
  }
  auto [it, fresh] = buckets_.try_emplace(addr);
  Bucket& b = it->second;
  if (fresh) b.tokens = burst;
  else b.tokens = std::min<double>(burst, b.tokens + std::chrono::duration<double>(now - b.last).count());
  b.last = now;
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return std::chrono::milliseconds(0);
  }
  held_.fetch_add(1, std::memory_order_relaxed);
  return std::chrono::duration_cast<std::chrono::milliseconds>(delay);
}

}  // namespace sluice::state
