// Maps Sluice's own BackendKeyData (handed to clients) to the server connection a client is
// using right now, so a CancelRequest reaches that query and nothing else (docs 55.2.7).
// Shared across workers: the map is guarded by mu_; each target by its own small mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "src/config/config.hpp"
#include "src/memory/slab.hpp"

namespace sluice::frontend::pg {

// Updated on every attach/detach, so lock-free: relaxed atomics. A cancel racing with a
// detach may reach the previous server session's key; PostgreSQL then finds nothing running
// for that key or cancels a query that just finished, which a cancel may always do (55.2.7).
struct CancelTarget {
  std::uint32_t key = 0;  // the secret half of the client's BackendKeyData (immutable)
  std::atomic<const config::Endpoint*> endpoint{nullptr};  // null = not attached; points into a Pool
  std::atomic<std::uint64_t> server_pid_key{0};            // pid << 32 | key
};

struct CancelInfo {
  config::Endpoint endpoint;
  std::uint32_t server_pid = 0, server_key = 0;
};

class CancelRegistry {
 public:
  // Registers a new client; returns its (pid, target). The pid is `server_pid` when given (a
  // session-mode client sees its server's real process id), else one of Sluice's own; the key
  // is always Sluice's own, random, so (pid, key) stays unique across servers. The target lives
  // here until remove(pid, target->key), which its session calls last.
  std::pair<std::uint32_t, CancelTarget*> add(std::uint32_t server_pid = 0);
  // A client handed over by an online upgrade keeps the (pid, key) it was given: null when
  // this process has that pair already.
  CancelTarget* add_exact(std::uint32_t pid, std::uint32_t key);
  void remove(std::uint32_t pid, std::uint32_t key);
  // The server session to cancel for (pid, key), if the key matches and the client is attached.
  std::optional<CancelInfo> find(std::uint32_t pid, std::uint32_t key) const;

 private:
  mutable std::mutex mu_;
  // pid << 32 | key -> the client's target, in the node itself (nodes do not move): one 40-byte
  // slab block a client (memory/slab.hpp: what an idle client keeps).
  std::unordered_map<std::uint64_t, CancelTarget, std::hash<std::uint64_t>, std::equal_to<>,
                     memory::SlabAllocator<std::pair<const std::uint64_t, CancelTarget>>>
      by_pid_key_;
};

// The process's registry: every PostgreSQL client's (pid, key), for CancelRequests arriving on
// any worker.
CancelRegistry& cancel_registry();

}  // namespace sluice::frontend::pg
