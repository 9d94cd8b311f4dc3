// MySQL client connections by the connection id Sluice gave them, so that `KILL [QUERY] n`
// reaches the server thread currently working for client n, and nothing else. Sluice's ids
// start at 2^30 (observe::kFirstClientId), out of the servers' thread id range, so that n may
// also be a server thread id as the client's CONNECTION_ID() returned it.
#pragma once

#include <boost/asio.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "src/config/config.hpp"
#include "src/net/light_mutex.hpp"

namespace sluice::frontend::mysql {

struct ClientHandle {
  std::uint32_t id = 0;
  // The client's worker: KILL CONNECTION closes its socket there (Session::close_on_worker).
  boost::asio::io_context* worker = nullptr;

  net::LightMutex mu;  // guards the fields below (taken at each attach and detach)
  std::string user;
  bool attached = false;  // a server connection works for this client
  config::Endpoint endpoint;
  std::uint32_t thread_id = 0;
  std::uint32_t last_thread_id = 0;  // the thread of the latest attach (kept after detach)
  std::int64_t last_attach = 0;      // when (coarse clock, µs): the latest attach wins a shared thread id
  int kill_holds = 0;                // KILLs in flight: the client keeps its server connection meanwhile
};

class ClientRegistry {
 public:
  void add(const std::shared_ptr<ClientHandle>& h) {
    std::lock_guard lock(mu_);
    by_id_[h->id] = h;
  }
  void remove(std::uint32_t id) {
    std::lock_guard lock(mu_);
    by_id_.erase(id);
  }
  std::shared_ptr<ClientHandle> find(std::uint64_t id) const {
    std::lock_guard lock(mu_);
    auto it = by_id_.find(static_cast<std::uint32_t>(id));
    return it == by_id_.end() || id > 0xFFFFFFFFu ? nullptr : it->second.lock();
  }
  // The client a server thread id belongs to: the one attached to it now, or else the one
  // attached to it most recently. (Thread ids of different servers may coincide; the client
  // that used the id last wins.) A linear scan: KILL is rare.
  std::shared_ptr<ClientHandle> find_by_thread(std::uint64_t thread) const {
    if (thread == 0 || thread > 0xFFFFFFFFu) return nullptr;
    std::shared_ptr<ClientHandle> best;
    std::int64_t best_attach = -1;
    std::lock_guard lock(mu_);
    for (auto& [id, weak] : by_id_) {
      auto h = weak.lock();
      if (!h) continue;
      std::lock_guard hl(h->mu);
      if (h->attached && h->thread_id == thread) return h;
      if (h->last_thread_id == thread && h->last_attach > best_attach) {
        best = h;
        best_attach = h->last_attach;
      }
    }
    return best;
  }

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::uint32_t, std::weak_ptr<ClientHandle>> by_id_;
};

// The process's registry of MySQL clients (KILL from any worker).
inline ClientRegistry& client_registry() {
  static ClientRegistry r;
  return r;
}

}  // namespace sluice::frontend::mysql
