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
  std::lock_guard lock(t->mu);
  if (!t->attached) return std::nullopt;
  CancelInfo copy;
  copy.endpoint = t->endpoint;
  copy.server_pid = t->server_pid;
  copy.server_key = t->server_key;
  return copy;
}

}  // namespace sluice::frontend::pg
