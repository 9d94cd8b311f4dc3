// The running state shared by every session on every worker and by the admin console: the
// current snapshot (config, credentials, TLS), pools, clusters, the result cache, counters,
// operator controls, and applying a new configuration (RELOAD, SIGHUP, the console's SET). The
// application (src/app) creates it and fills in its hooks (listeners, shutdown).
#pragma once

#include <boost/asio.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "src/access/limits.hpp"
#include "src/cache/policy.hpp"
#include "src/cache/store.hpp"
#include "src/config/config.hpp"
#include "src/net/proxy_intake.hpp"
#include "src/observe/digests.hpp"
#include "src/observe/stats.hpp"
#include "src/pool/pool.hpp"
#include "src/router/cluster.hpp"
#include "src/router/mirror.hpp"
#include "src/state/controls.hpp"
#include "src/state/splits.hpp"
#include "src/state/login_throttle.hpp"
#include "src/state/change_stream.hpp"
#include "src/state/shared_cache.hpp"
#include "src/state/snapshot.hpp"

namespace sluice::state {

namespace asio = boost::asio;

struct Context {
  std::shared_ptr<const Snapshot> snapshot() const { return std::atomic_load(&snapshot_); }
  // Installs a configuration; sessions pick it up at their next transaction boundary.
  void set_snapshot(std::shared_ptr<const Snapshot> s) {
    std::atomic_store(&snapshot_, std::move(s));
    generation_.fetch_add(1, std::memory_order_release);
  }
  std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  pool::PoolManager pools;
  router::Router router;
  router::Mirrors mirrors;  // [[rules]] mirror clusters
  // Result cache: the store always exists; `cache_on` and the policy follow [cache] (reloadable).
  std::unique_ptr<cache::Store> cache;
  bool cache_enabled() const { return cache_on_.load(std::memory_order_relaxed); }
  std::shared_ptr<const cache::Policy> cache_policy() const { return std::atomic_load(&policy_); }
  // Bumped after each new policy is in place: a session keeps the policy it read and reads it
  // again only when this moved (CachePolicyMemo), not with cache_policy()'s lock every query.
  std::uint64_t cache_policy_generation() const { return policy_generation_.load(std::memory_order_acquire); }
  void set_cache(const config::Cache& c);
  ChangeStreams cache_streams;  // [cache] invalidation = "stream": one follower per cluster and database
  SharedCache shared_cache;     // [cache] shared: the second-level store several instances share
  // [firewall], [[rules]] and [digests] of `s` in force; `reread_allowlist`: the allow-list file
  // is read again (start, RELOAD, SIGHUP; not SET, which only changes the mode).
  void set_firewall(const Snapshot& s, bool reread_allowlist);
  observe::StatsRegistry stats;
  observe::ClientTable client_table;
  Controls controls;
  LoginThrottle login_throttle;
  access::LimitState limits;  // [limits]: connection counts, rate buckets, refusals
  Splits splits;              // [[pools]] split: clients placed on each arm
  access::Allowlist firewall_list;  // [firewall] fingerprints per user (allowlist_file)
  // Whether statements go through the firewall (rules, or a mode other than "off").
  bool firewall_on() const { return firewall_on_.load(std::memory_order_relaxed); }
  observe::DigestStore digests;  // [digests]: SHOW QUERIES
  bool digests_on() const { return digests_on_.load(std::memory_order_relaxed); }
  // Whether any [[rules]] are in force.
  bool rules_on() const { return rules_on_.load(std::memory_order_relaxed); }
  // The clock the rules' time windows read (Unix seconds): the system's, unless the console's
  // SET RULES_CLOCK pinned it (tests drive time windows so; 0 = the system's again).
  std::int64_t rules_now() const {
    auto pinned = rules_clock_.load(std::memory_order_relaxed);
    return pinned
               ? pinned
               : std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                     .count();
  }
  void pin_rules_clock(std::int64_t unix_seconds) { rules_clock_.store(unix_seconds, std::memory_order_relaxed); }
  // Whether any request rate ([limits] queries_per_second_*, a user's queries_per_second) is set
  // in the running configuration: sessions that keep an older snapshot ask this first.
  bool rates_on() const { return rates_on_.load(std::memory_order_relaxed); }
  std::atomic<std::uint32_t> clients{0};
  std::atomic<bool> shutting_down{false};
  // Online upgrade (src/app/upgrade.hpp). In the process being replaced: set once the new one
  // listens; a client idle between transactions then goes to it through hand_over() (its
  // protocol's record of the session, and its descriptor: false when it could not go, and the
  // caller keeps the client). In the new process: forward_cancel() passes a CancelRequest for a
  // client the previous process still serves to it, while that process runs.
  std::atomic<bool> upgrading{false};
  std::function<bool(config::Protocol, std::string_view record, int fd)> hand_over;
  std::function<bool(std::uint32_t pid, std::uint32_t key)> forward_cancel;
  // While two processes serve the same databases, neither one's cache would see the other's
  // writes: the result cache is off (and emptied) until the other one is gone.
  void hold_cache(bool held);
  std::chrono::system_clock::time_point started = std::chrono::system_clock::now();

  // Set by main: SHUTDOWN from the console (wait = let transactions finish first), and
  // re-binding listeners whose address changed in a reload ("" or what went wrong).
  std::function<void(bool wait)> request_shutdown;
  std::function<std::string(const config::Config&)> rebind_listeners;
  std::function<asio::any_io_executor()> control_executor;  // worker 0 (health loops, janitor)
  std::mutex reload_mu;                                     // one reload (SIGHUP, RELOAD, SET) at a time

 private:
  std::shared_ptr<const Snapshot> snapshot_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<bool> cache_on_{false};
  std::atomic<bool> cache_held_{false};
  std::atomic<bool> firewall_on_{false};
  std::atomic<bool> rates_on_{false};
  std::atomic<bool> rules_on_{false};
  std::atomic<bool> digests_on_{false};
  std::atomic<std::int64_t> rules_clock_{0};
  std::shared_ptr<const cache::Policy> policy_;
  std::atomic<std::uint64_t> policy_generation_{0};
};

// Loads `path` and applies it to the running Sluice (SIGHUP and RELOAD): users, pool sizes,
// timeouts, clusters, routing, cache, log level, listener addresses, certificates. Throws
// ConfigError (the running configuration stays) when the file is invalid; returns a summary.
std::string reload(Context& ctx, const std::string& path);
// The console's SET: `change` edits a copy of the running configuration (throwing ConfigError
// to refuse); the result is built whole (build_snapshot, TLS kept as it is) and applied.
std::string set_config(Context& ctx, const std::function<void(config::Config&)>& change);

// A failed login by `info`'s client, counted per address ([general] login_failure_burst); past the
// burst, waits login_failure_delay on `ex` before the caller sends the failure.
asio::awaitable<void> hold_failed_login(Context& ctx, const config::General& general,
                                        std::shared_ptr<observe::ClientInfo> info, asio::any_io_executor ex);

// A new client's entry for SHOW CLIENTS: an id from the client table, its protocol, its address
// (`origin`: the real one behind a PROXY header) and Sluice's end of its connection (not yet added to the table: its
// kill action comes first).
std::shared_ptr<observe::ClientInfo> new_client_info(Context& ctx, const char* protocol,
                                                     const asio::ip::tcp::socket& sock, const net::Origin& origin);

}  // namespace sluice::state
