// State shared by every session on every worker: the current config, credentials, pools and
// counters. Config and credentials are replaced whole (atomic shared_ptr swap) on reload.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "src/config/config.hpp"
#include "src/cache/policy.hpp"
#include "src/cache/store.hpp"
#include "src/frontend/mysql/registry.hpp"
#include "src/frontend/postgres/cancel.hpp"
#include "src/pool/credentials.hpp"
#include "src/pool/pool.hpp"
#include "src/router/cluster.hpp"

namespace sluice::frontend {

struct Snapshot {
  std::shared_ptr<const config::Config> config;
  std::map<std::string, std::shared_ptr<const pool::Credentials>, std::less<>> credentials;
};

// Builds credentials for every user; throws config::ConfigError on bad secrets.
std::shared_ptr<const Snapshot> make_snapshot(std::shared_ptr<const config::Config> cfg);

struct Context {
  std::shared_ptr<const Snapshot> snapshot() const { return std::atomic_load(&snapshot_); }
  void set_snapshot(std::shared_ptr<const Snapshot> s) { std::atomic_store(&snapshot_, std::move(s)); }

  pool::PoolManager pools;
  pg::CancelRegistry pg_cancel;
  mysql::ClientRegistry mysql_clients;
  router::Router router;  // built from the start-up config (reloads do not change clusters)
  // Result cache, when [cache] is enabled at start-up (null otherwise).
  std::unique_ptr<cache::Store> cache;
  std::unique_ptr<cache::Policy> cache_policy;
  std::atomic<std::uint32_t> clients{0};
  std::atomic<bool> shutting_down{false};

 private:
  std::shared_ptr<const Snapshot> snapshot_;
};

pool::PoolSettings pool_settings(const config::Config& cfg, const config::Pool& p);

}  // namespace sluice::frontend
