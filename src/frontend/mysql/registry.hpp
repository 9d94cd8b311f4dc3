// MySQL client connections by the connection id Sluice gave them, so that `KILL [QUERY] n`
// reaches the server thread currently working for client n, and nothing else.
#pragma once

#include <boost/asio.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "src/config/config.hpp"

namespace sluice::frontend::mysql {

struct ClientHandle {
  std::uint32_t id = 0;
  std::function<void()> close;  // posts a close of the client's socket to its worker

  std::mutex mu;  // guards the fields below
  std::string user;
  bool attached = false;  // a server connection works for this client
  config::Endpoint endpoint;
  std::uint32_t thread_id = 0;
  int kill_holds = 0;  // KILLs in flight: the client keeps its server connection meanwhile
  // Routed commands of this client (read/write splitting), for the admin console.
  std::atomic<std::uint64_t> routed_reads{0}, routed_writes{0};
};

class ClientRegistry {
 public:
  std::uint32_t next_id() { return next_.fetch_add(1); }
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

 private:
  std::atomic<std::uint32_t> next_{1};
  mutable std::mutex mu_;
  std::unordered_map<std::uint32_t, std::weak_ptr<ClientHandle>> by_id_;
};

}  // namespace sluice::frontend::mysql
