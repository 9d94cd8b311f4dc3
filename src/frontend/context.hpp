// State shared by every session on every worker: the current config, credentials, pools and
// counters. Config and credentials are replaced whole (atomic shared_ptr swap) on reload.
#pragma once

#include <atomic>
#include <functional>
#include <vector>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <boost/asio/ssl.hpp>

#include "src/config/config.hpp"
#include "src/cache/policy.hpp"
#include "src/cache/store.hpp"
#include "src/frontend/mysql/auth_lookup.hpp"
#include "src/frontend/mysql/registry.hpp"
#include "src/frontend/postgres/cancel.hpp"
#include "src/pool/credentials.hpp"
#include "src/pool/pool.hpp"
#include "src/observe/stats.hpp"
#include "src/router/cluster.hpp"

namespace sluice::frontend {

namespace asio = boost::asio;

// Whether building a snapshot reads the certificate and key files again (RELOAD, SIGHUP, start)
// or keeps the running snapshot's TLS contexts where their settings did not change (SET, which
// cannot change them).
enum class FileReads { Reread, KeepUnchanged };

class Snapshot;

// The one way to build the running state. `running` (null at start) lends what did not change:
// users whose entry is the same keep their credentials object (and what it learned, e.g. a SCRAM
// ClientKey recovered from a client's proof); with KeepUnchanged, TLS contexts whose settings are
// the same are kept too. Throws config::ConfigError on bad secrets or unreadable TLS files.
std::shared_ptr<const Snapshot> build_snapshot(std::shared_ptr<const config::Config> cfg, const Snapshot* running,
                                               FileReads files);

// The running state: the configuration and everything built from it (credentials, the
// listeners' TLS contexts and channel-binding data, the servers' TLS settings). Only
// build_snapshot() makes one, always whole: a snapshot with a config but without the TLS it
// describes cannot be constructed (the console's SET once did that and turned TLS off).
class Snapshot {
  struct Key {
    explicit Key() = default;
  };
  friend std::shared_ptr<const Snapshot> build_snapshot(std::shared_ptr<const config::Config>, const Snapshot*,
                                                        FileReads);

 public:
  explicit Snapshot(Key) {}
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;

  std::shared_ptr<const config::Config> config;
  std::map<std::string, std::shared_ptr<const pool::Credentials>, std::less<>> credentials;
  // TLS for the PostgreSQL listener (null = tls "disable"); certificates are read when the
  // snapshot is built, so a reload picks up new ones for new connections.
  std::shared_ptr<boost::asio::ssl::context> pg_tls;
  std::string pg_tls_end_point;  // tls-server-end-point channel binding data
  std::shared_ptr<boost::asio::ssl::context> my_tls;  // the MySQL listener's
  pool::ServerTlsMap server_tls;
};

// Operator controls from the admin console: PAUSE/RESUME and DISABLE/ENABLE, by the
// database name clients use ("" = every database).
class Controls {
 public:
  // Fast path for sessions: nothing paused at all.
  bool any_paused() const { return any_paused_.load(std::memory_order_relaxed); }
  bool paused(std::string_view database) const;
  void pause(const std::string& database);
  // Returns false when that database was not paused.
  bool resume(const std::string& database);
  bool disabled(std::string_view database) const;
  void set_disabled(const std::string& database, bool disabled);
  std::vector<std::string> paused_list() const;
  // PAUSE: holds a client (shown as waiting) until `database` is resumed or its socket closes.
  asio::awaitable<void> wait_resumed(const std::string& database, const asio::ip::tcp::socket& client,
                                     observe::ClientInfo& info) const;
  std::vector<std::string> disabled_list() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::string> paused_, disabled_;
  std::atomic<bool> any_paused_{false};
};

// Failed logins per client address (a token bucket: `burst` at once, one more per second).
// Past the bucket, a failure's answer is held, which bounds a password guesser to about one try
// per second per connection; correct logins are never held. At most 65536 addresses are
// remembered (the stalest are forgotten).
class LoginThrottle {
 public:
  // Records a failed login from `addr`: how long to hold the answer (zero = not at all).
  std::chrono::milliseconds failed(const std::string& addr, std::uint32_t burst, config::Duration delay);
  std::uint64_t held() const { return held_.load(std::memory_order_relaxed); }

 private:
  struct Bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point last;
  };
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
  std::atomic<std::uint64_t> held_{0};
};

struct Context {
  std::shared_ptr<const Snapshot> snapshot() const { return std::atomic_load(&snapshot_); }
  // Installs a configuration; sessions pick it up at their next transaction boundary.
  void set_snapshot(std::shared_ptr<const Snapshot> s) {
    std::atomic_store(&snapshot_, std::move(s));
    generation_.fetch_add(1, std::memory_order_release);
  }
  std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  pool::PoolManager pools;
  pg::CancelRegistry pg_cancel;
  mysql::ClientRegistry mysql_clients;
  mysql::LearnedUsers learned_mysql_users;  // [mysql] auth_user's lookups
  router::Router router;
  // Result cache: the store always exists; `cache_on` and the policy follow [cache] (reloadable).
  std::unique_ptr<cache::Store> cache;
  bool cache_enabled() const { return cache_on_.load(std::memory_order_relaxed); }
  std::shared_ptr<const cache::Policy> cache_policy() const { return std::atomic_load(&policy_); }
  void set_cache(const config::Cache& c);
  observe::StatsRegistry stats;
  observe::ClientTable client_table;
  Controls controls;
  LoginThrottle login_throttle;
  std::atomic<std::uint32_t> clients{0};
  std::atomic<bool> shutting_down{false};
  std::chrono::system_clock::time_point started = std::chrono::system_clock::now();

  // Set by main: SHUTDOWN from the console (wait = let transactions finish first), and
  // re-binding listeners whose address changed in a reload ("" or what went wrong).
  std::function<void(bool wait)> request_shutdown;
  std::function<std::string(const config::Config&)> rebind_listeners;
  std::function<asio::any_io_executor()> control_executor;  // worker 0 (health loops, janitor)
  std::mutex reload_mu;  // one reload (SIGHUP, RELOAD, SET) at a time

 private:
  std::shared_ptr<const Snapshot> snapshot_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<bool> cache_on_{false};
  std::shared_ptr<const cache::Policy> policy_;
};

// Loads `path` and applies it to the running Sluice (SIGHUP and RELOAD): users, pool sizes,
// timeouts, clusters, routing, cache, log level, listener addresses, certificates. Throws
// ConfigError (the running configuration stays) when the file is invalid; returns a summary.
std::string reload(Context& ctx, const std::string& path);
// The console's SET: `change` edits a copy of the running configuration (throwing ConfigError
// to refuse); the result is built whole (build_snapshot, TLS kept as it is) and applied.
std::string set_config(Context& ctx, const std::function<void(config::Config&)>& change);

pool::PoolSettings pool_settings(const Snapshot& snap, const config::Pool& p);

// A failed login by `info`'s client, counted per address ([general] login_failure_burst); past the
// burst, waits login_failure_delay on `ex` before the caller sends the failure.
asio::awaitable<void> hold_failed_login(Context& ctx, const config::General& general,
                                        std::shared_ptr<observe::ClientInfo> info, asio::any_io_executor ex);

// A new client's entry for SHOW CLIENTS: an id from the client table, its protocol and both
// ends of its connection (not yet added to the table: its kill action comes first).
std::shared_ptr<observe::ClientInfo> new_client_info(Context& ctx, const char* protocol,
                                                     const asio::ip::tcp::socket& sock);

}  // namespace sluice::frontend
