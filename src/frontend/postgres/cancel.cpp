// Cancel key registry.
#include "src/frontend/postgres/cancel.hpp"

#include <cstring>

#include "protocols/postgres/crypto.hpp"

namespace sluice::frontend::pg {

std::pair<std::uint32_t, std::shared_ptr<CancelTarget>> CancelRegistry::add() {
  auto t = std::make_shared<CancelTarget>();
  std::uint32_t pid = 0;
  for (;;) {
    auto r = crypto::random_bytes(8);
    std::memcpy(&pid, r.data(), 4);
    std::memcpy(&t->key, r.data() + 4, 4);
    pid &= 0x7fffffff;  // positive, like a real backend PID
    if (pid == 0) continue;
    std::lock_guard lock(mu_);
    if (by_pid_.emplace(pid, t).second) break;
  }
  return {pid, t};
}

void CancelRegistry::remove(std::uint32_t pid) {
  std::lock_guard lock(mu_);
  by_pid_.erase(pid);
}

std::optional<CancelInfo> CancelRegistry::find(std::uint32_t pid, std::uint32_t key) const {
  std::shared_ptr<CancelTarget> t;
  {
    std::lock_guard lock(mu_);
    auto it = by_pid_.find(pid);
    if (it == by_pid_.end()) return std::nullopt;
    t = it->second;
  }
  if (t->key != key) return std::nullopt;
  const config::Endpoint* ep = t->endpoint.load(std::memory_order_acquire);
  if (!ep) return std::nullopt;
  std::uint64_t pk = t->server_pid_key.load(std::memory_order_relaxed);
  CancelInfo info;
  info.endpoint = *ep;
  info.server_pid = static_cast<std::uint32_t>(pk >> 32);
  info.server_key = static_cast<std::uint32_t>(pk);
  return info;
}

}  // namespace sluice::frontend::pg
