// Cancel key registry.
#include "src/frontend/postgres/cancel.hpp"

#include <cstring>

#include "protocols/common/crypto.hpp"

namespace sluice::frontend::pg {

CancelRegistry& cancel_registry() {
  static CancelRegistry r;
  return r;
}

std::pair<std::uint32_t, CancelTarget*> CancelRegistry::add(std::uint32_t server_pid) {
  std::uint32_t pid = server_pid;
  for (;;) {
    auto r = crypto::random_bytes(8);
    if (!server_pid) std::memcpy(&pid, r.data(), 4);
    std::uint32_t key = 0;
    std::memcpy(&key, r.data() + 4, 4);
    pid &= 0x7fffffff;  // positive, like a real backend PID
    if (pid == 0) continue;
    std::lock_guard lock(mu_);
    auto [it, fresh] = by_pid_key_.try_emplace(std::uint64_t(pid) << 32 | key);
    if (fresh) {
      it->second.key = key;
      return {pid, &it->second};
    }
  }
}

CancelTarget* CancelRegistry::add_exact(std::uint32_t pid, std::uint32_t key) {
  std::lock_guard lock(mu_);
  auto [it, fresh] = by_pid_key_.try_emplace(std::uint64_t(pid) << 32 | key);
  if (!fresh) return nullptr;
  it->second.key = key;
  return &it->second;
}

void CancelRegistry::remove(std::uint32_t pid, std::uint32_t key) {
  std::lock_guard lock(mu_);
  by_pid_key_.erase(std::uint64_t(pid) << 32 | key);
  if (by_pid_key_.bucket_count() > 1024 && by_pid_key_.size() * 8 < by_pid_key_.bucket_count()) by_pid_key_.rehash(0);
}

std::optional<CancelInfo> CancelRegistry::find(std::uint32_t pid, std::uint32_t key) const {
  std::lock_guard lock(mu_);
  auto it = by_pid_key_.find(std::uint64_t(pid) << 32 | key);
  if (it == by_pid_key_.end()) return std::nullopt;
  const config::Endpoint* ep = it->second.endpoint.load(std::memory_order_acquire);
  if (!ep) return std::nullopt;
  std::uint64_t pk = it->second.server_pid_key.load(std::memory_order_relaxed);
  CancelInfo info;
  info.endpoint = *ep;
  info.server_pid = static_cast<std::uint32_t>(pk >> 32);
  info.server_key = static_cast<std::uint32_t>(pk);
  return info;
}

}  // namespace sluice::frontend::pg
