// Pools of server connections keyed by (server endpoint, user, database), shared by all workers.
// A pool hands out leases, queues clients when pool_size is reached (FIFO, with a deadline), and
// hands idle connections to the asking worker (moving the socket to that worker's io_context).
#pragma once

#include <boost/asio.hpp>

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "src/config/config.hpp"
#include "src/net/held_handler.hpp"
#include "src/net/light_mutex.hpp"
#include "src/pool/credentials.hpp"
#include "src/pool/notify_hub.hpp"
#include "src/pool/server_conn.hpp"

namespace sluice::pool {

struct PoolSettings {
  config::PoolMode mode = config::PoolMode::Transaction;
  std::uint32_t pool_size = 20;
  std::uint32_t min_pool_size = 0;
  config::Duration connect_timeout{5000};
  config::Duration idle_timeout{600'000};
  config::Duration lifetime{3'600'000};
  std::size_t max_prepared = 256;
  config::Protocol protocol = config::Protocol::Postgres;
  std::uint32_t mysql_caps = 0;  // MySQL: format-affecting capabilities of this pool's clients
  std::uint8_t mysql_charset = 0;  // MySQL: the handshake collation id of this pool's clients
  std::uint32_t mariadb_caps = 0;  // MariaDB: extended capabilities of this pool's clients
  ServerTls tls;                   // the cluster's server_tls (new connections)
};

struct LeaseResult {
  std::shared_ptr<ServerConn> conn;
  bool timed_out = false;
  // When neither conn nor timed_out. Behind a pointer: a lease result is moved twice per wait and
  // lives in the frames of the sessions' coroutines, which stay small enough for Asio to recycle.
  std::shared_ptr<const ConnectError> error;
};

class Pool : public std::enable_shared_from_this<Pool> {
 public:
  Pool(std::string name, config::Endpoint endpoint, std::shared_ptr<const Credentials> creds,
       std::string database, PoolSettings settings);

  // A released connection goes to the longest waiter on its own worker, unless the head of the
  // line has waited this much longer: then it moves to the head's worker.
  static constexpr std::chrono::milliseconds kHandoverSkew{5};

  // Waits at most `wait` for a connection; the result's socket runs on `ex`.
  asio::awaitable<LeaseResult> lease(asio::any_io_executor ex, config::Duration wait);

  // lease() in parts, for a session's hot path: a turn in line awaited by the session's own
  // frame (no coroutine frame of the pool's, no asio::post to wake it), then settle() it.
  //   auto t = co_await pool->async_take_turn(ex, deadline, asio::deferred);
  //   auto r = pool->settle(t, ex);                              // common: a connection, or the deadline
  //   if (!r) r = co_await pool->finish_turn(std::move(t), ex, deadline);  // connect, or wait again
  struct Turn {
    std::shared_ptr<ServerConn> conn;  // handed over (still to probe and move to the worker)
    bool timed_out = false;
    bool may_connect = false;  // a free slot below pool_size, counted: connect into it
    bool released = false;     // conn came straight from a release (in use a moment ago: no probe)
  };
  // Preference: an idle connection on ex's worker; else a new connection while under pool_size
  // (keeps sockets on their worker); else an idle one from another worker; else the line (FIFO,
  // until `deadline`). The turn completes on ex's thread, never inside this call.
  template <typename Token>
  auto async_take_turn(const asio::any_io_executor& ex, Clock::time_point deadline, Token&& token) {
    return asio::async_initiate<Token, void(Turn)>(
        [this](auto handler, const asio::any_io_executor& on, Clock::time_point until) {
          Waiter* w = new_waiter(on, until);
          held(w).hold(std::move(handler));
          join_line(w);
        },
        token, ex, deadline);
  }
  // The turn's lease when it needs no suspension (a connection alive, or the deadline); null
  // when it must connect or wait again (a connection the server had closed is discarded).
  std::optional<LeaseResult> settle(Turn& t, const asio::any_io_executor& ex);
  asio::awaitable<LeaseResult> finish_turn(Turn t, asio::any_io_executor ex, Clock::time_point deadline);
  // Non-suspending fast path: an idle connection already living on `ex` that needs no probe,
  // or null (then call lease()).
  std::shared_ptr<ServerConn> try_lease_local(const asio::any_io_executor& ex);
  // Returns a connection. `reusable` = false closes it (state unknown or broken).
  void release(std::shared_ptr<ServerConn> conn, bool reusable);

  // PostgreSQL: the connection that listens for this pool's pooled clients (LISTEN carried in
  // transaction and statement pooling), created on first use to run on `ex`.
  std::shared_ptr<NotifyHub> notify_hub(const asio::any_io_executor& ex);
  // A server connection with this pool's settings, outside its count (the listening connection).
  asio::awaitable<ConnectResult> connect_dedicated(asio::any_io_executor ex);

  // ParameterStatus values of this pool's server, learned from its first connection (null
  // before it): one object for the pool's life, which logins may recognize by its address.
  std::shared_ptr<const Params> server_params() const;

  // Closes idle connections past server_idle_timeout / server_lifetime and opens connections up
  // to min_pool_size. Called about once a second from one worker.
  void maintain(asio::any_io_executor ex);
  void close_all();
  // Shutdown, the workers stopped: the listening connection's hub goes now, while its worker's
  // io_context (which its socket belongs to) still exists; the pools themselves outlive it.
  void drop_notify_hub();

  // MySQL: schemas a server already accepted for this pool's user (login checks them once).
  bool schema_known(const std::string& schema) const {
    std::lock_guard lock(mu_);
    return schemas_.count(schema) != 0;
  }
  void add_schema(const std::string& schema) {
    std::lock_guard lock(mu_);
    if (schemas_.size() < 10'000) schemas_.insert(schema);
  }

  // Takes new settings from a reload (protocol, capabilities and charset stay): a smaller
  // pool_size closes connections as they come back; a larger one lets waiters connect.
  void set_settings(const PoolSettings& s);
  PoolSettings settings() const;

  // For SHOW POOLS / SHOW SERVERS / metrics.
  struct Usage {
    std::size_t total = 0, idle = 0, active = 0, connecting = 0, waiting = 0;
    std::uint64_t connect_failures = 0;  // since start: new server connections that failed
    bool last_connect_failed = false;    // the latest new server connection failed
    double max_wait_seconds = 0;
    // Since start: leases that moved a connection to the client's worker (a socket re-registered
    // with another thread's reactor: two epoll_ctl and an ioctl).
    std::uint64_t moves = 0;
  };
  Usage usage() const;
  struct ServerRow {
    std::uint64_t id = 0, client_id = 0;
    bool idle = false;
    std::uint32_t backend_pid = 0;
    Clock::time_point created, last_used;
    std::string local_addr;
    std::uint16_t local_port = 0;
  };
  std::vector<ServerRow> servers() const;
  // PAUSE: closes every idle connection now (the server may be restarted next).
  void close_idle();

  const std::string& name() const { return name_; }
  // The [[pools]] database this pool serves ("*" pools: the client's database).
  const std::string& config_database() const { return config_database_; }
  void set_config_database(std::string d) { config_database_ = std::move(d); }
  // The cluster it serves (a split pool's arms are pools of different clusters).
  const std::string& cluster() const { return cluster_; }
  void set_cluster(std::string c) { cluster_ = std::move(c); }
  const config::Endpoint& endpoint() const { return endpoint_; }
  const std::string& database() const { return database_; }
  const std::string& user() const { return user_; }
  // A reload changed this user's password or auth: new server connections use the new ones.
  void set_credentials(std::shared_ptr<const Credentials> c);
  config::PoolMode mode() const;

 private:
  // A turn waiting in line (or about to complete): a record of the waiting worker's own, that
  // is itself the queued call which completes the turn on that worker (pool.cpp).
  struct Waiter;
  static Waiter* new_waiter(const asio::any_io_executor& ex, Clock::time_point deadline);
  static net::HeldHandler<Turn>& held(Waiter* w);
  void join_line(Waiter* w);  // served at once (posted), or in line
  void close_idle_locked();  // closes every idle connection (on its own worker)
  void serve_waiter_locked(std::deque<Waiter*>::iterator it);  // takes it out of line and wakes it
  // Deadlines: one timer per pool, armed for the earliest waiting deadline (not one per wait).
  void arm_sweep_locked(asio::io_context& io, Clock::time_point deadline);
  void sweep(std::uint64_t generation);
  asio::awaitable<LeaseResult> connect_new(asio::any_io_executor ex);
  void hand_over_locked(std::shared_ptr<ServerConn> conn);  // to the first waiter, or idle
  void forget_one_locked();  // a connection is gone: let a waiter connect in its place
  void let_waiters_connect_locked();  // waiters take free slots below pool_size
  std::shared_ptr<ServerConn> take_local_locked(const void* home);
  // Idle long enough that the server may have closed it: probe before use.
  static bool needs_probe(const ServerConn& c, Clock::time_point now);

  const std::string name_;
  const config::Endpoint endpoint_;
  const std::string user_;
  const std::string database_;
  std::string config_database_;  // set once by PoolManager::get before the pool is shared
  std::string cluster_;          // likewise

  std::atomic<std::uint64_t> moves_{0};  // Usage::moves
  mutable net::LightMutex mu_;           // guards everything below (taken twice a transaction)
  PoolSettings settings_;
  std::deque<std::shared_ptr<ServerConn>> idle_;  // back = most recently used
  std::deque<Waiter*> waiters_;
  bool sweep_armed_ = false;
  Clock::time_point sweep_at_{};
  std::uint64_t sweep_generation_ = 0;
  std::size_t total_ = 0;  // idle + leased + connecting
  std::shared_ptr<const Params> server_params_;
  std::uint64_t next_conn_id_ = 1;
  std::uint64_t tls_generation_ = 0;  // bumped when a reload changes server_tls (ServerTls::policy)
  bool closed_ = false;
  std::set<std::string> schemas_;
  std::size_t connecting_ = 0;
  std::uint64_t connect_failures_ = 0;
  bool last_connect_failed_ = false;
  std::shared_ptr<const Credentials> creds_;
  std::shared_ptr<NotifyHub> notify_hub_;
  std::map<std::uint64_t, std::weak_ptr<ServerConn>> live_;  // every open connection, by id
};

// All pools, created on first use. Shared across workers; guarded by its mutex.
class PoolManager {
 public:
  std::shared_ptr<Pool> get(const config::Pool& pool_cfg, const config::Endpoint& endpoint,
                            std::shared_ptr<const Credentials> creds, const std::string& server_db,
                            const PoolSettings& settings);
  void maintain(asio::any_io_executor ex);
  std::vector<std::shared_ptr<Pool>> all() const;
  // A reload: each pool takes the settings of the [[pools]] entry now serving its database (a
  // pool whose entry is gone keeps its settings until its clients leave).
  void reconfigure(const config::Config& cfg,
                   const std::map<std::string, std::shared_ptr<const Credentials>, std::less<>>& credentials,
                   const ServerTlsMap& server_tls);

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Pool>> pools_;
};

}  // namespace sluice::pool
