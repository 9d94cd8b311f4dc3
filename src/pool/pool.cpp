// Pool leasing, FIFO waiting with deadlines, idle maintenance.
#include "src/pool/pool.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "src/net/connect.hpp"
#include "src/net/queued_call.hpp"
#include "src/observe/log.hpp"
#include "src/observe/loop_clock.hpp"

namespace sluice::pool {

Pool::Pool(std::string name, config::Endpoint endpoint, std::shared_ptr<const Credentials> creds,
           std::string database, PoolSettings settings)
    : name_(std::move(name)),
      endpoint_(std::move(endpoint)),
      user_(creds->user),
      database_(std::move(database)),
      settings_(settings),
      creds_(std::move(creds)) {}

void Pool::set_credentials(std::shared_ptr<const Credentials> c) {
  std::lock_guard lock(mu_);
  creds_ = std::move(c);
}

config::PoolMode Pool::mode() const {
  std::lock_guard lock(mu_);
  return settings_.mode;
}

std::shared_ptr<const Params> Pool::server_params() const {
  std::lock_guard lock(mu_);
  return server_params_;
}

std::shared_ptr<NotifyHub> Pool::notify_hub(const asio::any_io_executor& ex) {
  std::lock_guard lock(mu_);
  if (!notify_hub_) {
    std::weak_ptr<Pool> weak = weak_from_this();
    notify_hub_ =
        std::make_shared<NotifyHub>(ex, name_, [weak](asio::any_io_executor on) -> asio::awaitable<ConnectResult> {
          auto self = weak.lock();
          if (!self) {
            ConnectResult r;
            r.error.fields.message = "the pool is gone";
            co_return r;
          }
          co_return co_await self->connect_dedicated(on);
        });
  }
  return notify_hub_;
}

asio::awaitable<ConnectResult> Pool::connect_dedicated(asio::any_io_executor ex) {
  PoolSettings s;
  std::shared_ptr<const Credentials> creds;
  {
    std::lock_guard lock(mu_);
    s = settings_;
    creds = creds_;
  }
  co_return co_await connect_server(ex, endpoint_, creds, database_, s.connect_timeout, s.max_prepared, s.tls);
}

asio::awaitable<LeaseResult> Pool::connect_new(asio::any_io_executor ex) {
  PoolSettings s;
  std::shared_ptr<const Credentials> creds;
  std::uint64_t tls_generation = 0;
  {
    std::lock_guard lock(mu_);
    s = settings_;
    creds = creds_;
    tls_generation = tls_generation_;  // with the settings it connects with
    ++connecting_;
  }
  ConnectResult r;
  if (s.protocol == config::Protocol::Mysql)
    r = co_await connect_mysql(ex, endpoint_, creds, database_, s.connect_timeout, s.max_prepared, s.mysql_caps,
                               s.mysql_charset, s.tls, s.mariadb_caps);
  else
    r = co_await connect_server(ex, endpoint_, creds, database_, s.connect_timeout, s.max_prepared, s.tls);
  if (r.conn && !r.conn->reregister()) {  // connected: no more EPOLLOUT wake-ups from the connect
    r.conn.reset();
    r.error = ConnectError{};
    r.error.fields.message = "cannot register the new server connection with the worker's event loop";
  }
  if (r.conn && r.conn->server_prepared_limit) {
    // MySQL's max_prepared_stmt_count is server-wide: a share per connection of this pool.
    std::size_t share = r.conn->server_prepared_limit / std::max<std::size_t>(1, s.pool_size);
    r.conn->prepared.set_capacity(std::max<std::size_t>(1, std::min(s.max_prepared, share)));
  }
  LeaseResult out;
  std::lock_guard lock(mu_);
  --connecting_;
  last_connect_failed_ = !r.conn;
  if (!r.conn) {
    ++connect_failures_;
    log::event(log::Level::Warn, "server_connect_failed", {.database = database_, .reason = r.error.fields.message},
               "pool {}: cannot open a server connection: {}", name_, r.error.fields.message);
    forget_one_locked();
    out.error = std::make_shared<const ConnectError>(std::move(r.error));
    co_return out;
  }
  r.conn->id = next_conn_id_++;
  r.conn->tls_generation = tls_generation;
  if (net::is_unix(r.conn->sock)) {
    r.conn->local_addr = "unix";
  } else if (boost::system::error_code ec; true) {
    auto le = r.conn->sock.local_endpoint(ec);
    if (!ec) {
      r.conn->local_addr = le.address().to_string();
      r.conn->local_port = le.port();
    }
  }
  live_[r.conn->id] = r.conn;
  if (!server_params_) server_params_ = std::make_shared<const Params>(r.conn->initial);
  out.conn = std::move(r.conn);
  co_return out;
}

// Most recently used idle connection living on `home`, taken out of the idle list; null if none.
std::shared_ptr<ServerConn> Pool::take_local_locked(const void* home) {
  if (idle_.empty()) return nullptr;
  if (idle_.back()->home == home) {  // the common case: the most recently used one
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    return conn;
  }
  for (auto j = idle_.rbegin(); j != idle_.rend(); ++j)
    if ((*j)->home == home) {
      auto conn = std::move(*j);
      idle_.erase(std::next(j).base());
      return conn;
    }
  return nullptr;
}

bool Pool::needs_probe(const ServerConn& c, Clock::time_point now) {
  return now - c.last_used >= std::chrono::milliseconds(100);
}

std::shared_ptr<ServerConn> Pool::try_lease_local(const asio::any_io_executor& ex) {
  std::lock_guard lock(mu_);
  auto conn = take_local_locked(ServerConn::home_of(ex));
  if (conn && needs_probe(*conn, observe::loop_now())) {  // leave it for lease(), which probes
    idle_.push_back(std::move(conn));
    return nullptr;
  }
  return conn;
}

// The record of a turn. It waits in `waiters_` (or not at all), is served under the pool's lock
// (its turn filled in, taken out of line) and then posted, as a queued call, to its worker,
// where it hands the turn to the waiting coroutine: one queued call per hand-over, no
// allocation, and no timer per wait. Records are kept per thread for reuse; a worker makes its
// turns and completes them, so a record goes back to the thread that took it.
struct Pool::Waiter : net::QueuedCall {
  Waiter() : QueuedCall(&Waiter::complete) {}

  net::HeldHandler<Turn> handler;
  net::CallTarget target;          // the waiting worker's scheduler
  asio::io_context* io = nullptr;  // the waiting worker
  const void* home = nullptr;      // the same, as ServerConn::home
  Clock::time_point since, deadline;
  Turn turn;

  static void complete(QueuedCall* call, bool run) {
    auto* w = static_cast<Waiter*>(call);
    if (!run) {  // its io_context is going away, and the coroutine its handler holds with it
      delete w;
      return;
    }
    Turn t = std::move(w->turn);
    w->turn = Turn{};
    w->handler.call(std::move(t));
    Kept& kept = kept_records();
    if (kept.records.size() < Kept::kMax) kept.records.push_back(w);
    else delete w;
  }

  struct Kept {
    static constexpr std::size_t kMax = 64;
    std::vector<Waiter*> records;
    ~Kept() {
      for (Waiter* w : records) delete w;
    }
  };
  static Kept& kept_records() {
    thread_local Kept kept;
    return kept;
  }
};

Pool::Waiter* Pool::new_waiter(const asio::any_io_executor& ex, Clock::time_point deadline) {
  Waiter::Kept& kept = Waiter::kept_records();
  Waiter* w;
  if (kept.records.empty()) {
    w = new Waiter;
  } else {
    w = kept.records.back();
    kept.records.pop_back();
  }
  auto& context = asio::query(ex, asio::execution::context);
  w->io = &static_cast<asio::io_context&>(context);
  w->home = &context;
  w->target = net::CallTarget::of(*w->io);
  w->deadline = deadline;
  return w;
}

net::HeldHandler<Pool::Turn>& Pool::held(Waiter* w) { return w->handler; }

void Pool::join_line(Waiter* w) {
  std::unique_lock lock(mu_);
  Turn& t = w->turn;
  t.conn = take_local_locked(w->home);
  if (!t.conn) {
    if (closed_) {  // shutting down: nothing will be released to it
      t.timed_out = true;
    } else if (total_ < settings_.pool_size) {
      ++total_;
      t.may_connect = true;
    } else if (!idle_.empty()) {
      t.conn = std::move(idle_.back());
      idle_.pop_back();
    } else {
      w->since = observe::loop_now();
      waiters_.push_back(w);
      arm_sweep_locked(*w->io, w->deadline);
      return;
    }
  }
  lock.unlock();
  w->target.post(w);  // completes after this call returns, never inside it
}

std::optional<LeaseResult> Pool::settle(Turn& t, const asio::any_io_executor& ex) {
  if (t.timed_out) {
    LeaseResult r;
    r.timed_out = true;
    return r;
  }
  if (!t.conn) return std::nullopt;  // a slot to connect in
  // A connection the server closed while idle (restart, idle timeout, admin kill) has a FATAL
  // or EOF waiting; probe for it unless it was in use a moment ago (saves a syscall per lease).
  if (!t.released && needs_probe(*t.conn, Clock::now()) && !t.conn->idle_alive()) {
    log::info("pool {}: discarding server connection {} closed by the server", name_, t.conn->id);
    t.conn->close_quietly();
    std::lock_guard lock(mu_);
    live_.erase(t.conn->id);
    forget_one_locked();
    t.conn.reset();
    return std::nullopt;  // wait again
  }
  if (t.conn->rebind(ex)) moves_.fetch_add(1, std::memory_order_relaxed);
  LeaseResult r;
  r.conn = std::move(t.conn);
  return r;
}

asio::awaitable<LeaseResult> Pool::finish_turn(Turn t, asio::any_io_executor ex, Clock::time_point deadline) {
  for (;;) {
    if (t.may_connect) co_return co_await connect_new(ex);
    if (auto r = settle(t, ex)) co_return std::move(*r);
    t = co_await async_take_turn(ex, deadline, asio::deferred);
  }
}

asio::awaitable<LeaseResult> Pool::lease(asio::any_io_executor ex, config::Duration wait) {
  auto deadline = Clock::now() + wait;
  Turn t = co_await async_take_turn(ex, deadline, asio::deferred);
  if (!t.may_connect)
    if (auto r = settle(t, ex)) co_return std::move(*r);
  co_return co_await finish_turn(std::move(t), ex, deadline);
}

void Pool::serve_waiter_locked(std::deque<Waiter*>::iterator it) {
  Waiter* w = *it;
  if (it == waiters_.begin()) waiters_.pop_front();
  else waiters_.erase(it);
  w->target.post(w);  // its turn is filled in; it may complete on its worker at once
}

void Pool::arm_sweep_locked(asio::io_context& io, Clock::time_point deadline) {
  if (sweep_armed_ && sweep_at_ <= deadline) return;
  sweep_armed_ = true;
  sweep_at_ = deadline;
  auto generation = ++sweep_generation_;
  // The timer runs on the worker of a waiter with that deadline, and owns itself through its
  // handler (a pool may outlive its workers' io_contexts at exit). A superseded timer fires
  // later and finds its generation stale.
  auto t = std::make_shared<asio::steady_timer>(io, deadline);
  t->async_wait([self = weak_from_this(), t, generation](boost::system::error_code) {
    if (auto p = self.lock()) p->sweep(generation);
  });
}

void Pool::sweep(std::uint64_t generation) {
  std::lock_guard lock(mu_);
  if (generation != sweep_generation_) return;
  sweep_armed_ = false;
  auto now = Clock::now();
  Clock::time_point next{};  // the earliest deadline still waiting, and its worker
  asio::io_context* next_io = nullptr;
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if ((*it)->deadline <= now) {
      (*it)->turn.timed_out = true;
      auto pos = it - waiters_.begin();
      serve_waiter_locked(it);
      it = waiters_.begin() + pos;
    } else {
      if (!next_io || (*it)->deadline < next) next = (*it)->deadline, next_io = (*it)->io;
      ++it;
    }
  }
  if (next_io) arm_sweep_locked(*next_io, next);
}

void Pool::forget_one_locked() {
  --total_;
  let_waiters_connect_locked();
}

void Pool::let_waiters_connect_locked() {
  while (!waiters_.empty() && !closed_ && total_ < settings_.pool_size) {
    ++total_;
    waiters_.front()->turn.may_connect = true;
    serve_waiter_locked(waiters_.begin());
  }
}

void Pool::hand_over_locked(std::shared_ptr<ServerConn> conn) {
  if (!waiters_.empty()) {
    // Prefer the longest waiter on the connection's own worker (no socket move, no wake-up of
    // another thread), unless the head of the line has waited kHandoverSkew longer than it:
    // bounded unfairness, no starvation. Under a steady load each worker's line moves at the
    // same pace, so connections stay on their workers; a worker whose line falls behind gets
    // the other workers' connections.
    auto pick = waiters_.begin();
    const void* home = conn->home;
    if ((*pick)->home != home) {
      for (auto it = std::next(pick); it != waiters_.end(); ++it) {
        if ((*it)->since - (*pick)->since > kHandoverSkew) break;  // in line order: the rest waited less
        if ((*it)->home == home) {
          pick = it;
          break;
        }
      }
    }
    (*pick)->turn.conn = std::move(conn);
    (*pick)->turn.released = true;
    serve_waiter_locked(pick);
    return;
  }
  idle_.push_back(std::move(conn));
}

void Pool::release(std::shared_ptr<ServerConn> conn, bool reusable) {
  auto now = observe::loop_now();
  std::unique_lock lock(mu_);
  conn->client_id.store(0, std::memory_order_relaxed);
  if (reusable && !closed_ && now - conn->created < settings_.lifetime && total_ <= settings_.pool_size &&
      conn->tls_generation == tls_generation_) {
    conn->last_used = now;
    hand_over_locked(std::move(conn));
    return;
  }
  live_.erase(conn->id);
  forget_one_locked();
  lock.unlock();
  conn->close_quietly();
}

void Pool::maintain(asio::any_io_executor ex) {
  auto now = Clock::now();
  std::vector<std::shared_ptr<ServerConn>> to_close;
  std::size_t to_open = 0;
  {
    std::lock_guard lock(mu_);
    for (auto it = idle_.begin(); it != idle_.end();) {
      auto& c = *it;
      bool expired = now - c->created >= settings_.lifetime;
      bool idle_too_long = now - c->last_used >= settings_.idle_timeout && total_ > settings_.min_pool_size;
      if (expired || idle_too_long || closed_) {
        live_.erase(c->id);
        to_close.push_back(std::move(c));
        it = idle_.erase(it);
        --total_;
      } else {
        ++it;
      }
    }
    if (!closed_ && total_ < settings_.min_pool_size) {
      to_open = settings_.min_pool_size - total_;
      total_ += to_open;
    }
  }
  for (auto& c : to_close) {
    auto sock_ex = c->sock.get_executor();
    asio::post(sock_ex, [c] { c->close_quietly(); });
  }
  for (std::size_t i = 0; i < to_open; ++i) {
    asio::co_spawn(ex, [self = shared_from_this(), ex]() -> asio::awaitable<void> {
      auto r = co_await self->connect_new(ex);
      if (r.conn) self->release(std::move(r.conn), true);  // a failure is logged by connect_new
    }, asio::detached);
  }
}

void Pool::close_all() {
  std::lock_guard lock(mu_);
  closed_ = true;
  if (notify_hub_) notify_hub_->close();
  // Nothing will be released to them any more: they end now (as timed out), and their
  // handlers leave the Waiter so that the io_context owns (and can destroy) their coroutines.
  while (!waiters_.empty()) {
    waiters_.front()->turn.timed_out = true;
    serve_waiter_locked(waiters_.begin());
  }
  for (auto& c : idle_) {
    live_.erase(c->id);
    auto sock_ex = c->sock.get_executor();
    asio::post(sock_ex, [c] { c->close_quietly(); });
    --total_;
  }
  idle_.clear();
}

void Pool::drop_notify_hub() {
  std::shared_ptr<NotifyHub> hub;
  {
    std::lock_guard lock(mu_);
    hub = std::move(notify_hub_);
  }
}

void Pool::set_settings(const PoolSettings& next) {
  std::lock_guard lock(mu_);
  auto keep = settings_;
  settings_ = next;
  settings_.protocol = keep.protocol;
  settings_.mysql_caps = keep.mysql_caps;
  settings_.mysql_charset = keep.mysql_charset;
  settings_.mariadb_caps = keep.mariadb_caps;
  if (keep.protocol == config::Protocol::Mysql) settings_.max_prepared = keep.max_prepared;
  if (next.tls.policy != keep.tls.policy) {
    // server_tls changed: connections made under the old rules go. Idle ones now, busy ones
    // when their client releases them (release() checks the generation).
    ++tls_generation_;
    log::info("pool {}: server_tls changed; replacing {} idle and {} busy server connections", name_, idle_.size(),
              live_.size() - idle_.size());
    close_idle_locked();
  }
  let_waiters_connect_locked();  // room to grow: waiters connect now instead of waiting
}

PoolSettings Pool::settings() const {
  std::lock_guard lock(mu_);
  return settings_;
}

Pool::Usage Pool::usage() const {
  std::lock_guard lock(mu_);
  Usage u;
  u.total = total_;
  u.idle = idle_.size();
  u.connecting = connecting_;
  u.active = total_ - idle_.size() - connecting_;
  u.waiting = waiters_.size();
  u.connect_failures = connect_failures_;
  u.last_connect_failed = last_connect_failed_;
  u.moves = moves_.load(std::memory_order_relaxed);
  if (!waiters_.empty()) u.max_wait_seconds = std::chrono::duration<double>(Clock::now() - waiters_.front()->since).count();
  return u;
}

std::vector<Pool::ServerRow> Pool::servers() const {
  std::lock_guard lock(mu_);
  std::vector<ServerRow> out;
  for (auto& [id, w] : live_) {
    auto c = w.lock();
    if (!c) continue;
    ServerRow r;
    r.id = id;
    r.client_id = c->client_id.load(std::memory_order_relaxed);
    r.backend_pid = c->backend_pid;
    r.created = c->created;
    r.last_used = c->last_used;
    r.idle = std::find(idle_.begin(), idle_.end(), c) != idle_.end();
    r.local_addr = c->local_addr;
    r.local_port = c->local_port;
    out.push_back(std::move(r));
  }
  return out;
}

void Pool::close_idle() {
  std::lock_guard lock(mu_);
  close_idle_locked();
}

void Pool::close_idle_locked() {
  for (auto& c : idle_) {
    live_.erase(c->id);
    auto sock_ex = c->sock.get_executor();
    asio::post(sock_ex, [c] { c->close_quietly(); });
    forget_one_locked();
  }
  idle_.clear();
}

std::shared_ptr<Pool> PoolManager::get(const config::Pool& pool_cfg, const config::Endpoint& endpoint,
                                       std::shared_ptr<const Credentials> creds, const std::string& server_db,
                                       const PoolSettings& settings) {
  // The cluster is part of the key: two clusters over the same server may differ in server_tls.
  auto key = fmt::format("{}:{}/{}@{}#{:x}/{:x}/{}/{}", config::to_string(settings.protocol), server_db, creds->user,
                         endpoint.text(), settings.mysql_caps, settings.mariadb_caps, settings.mysql_charset,
                         pool_cfg.cluster);
  std::lock_guard lock(mu_);
  auto it = pools_.find(key);
  if (it != pools_.end()) return it->second;
  auto p = std::make_shared<Pool>(fmt::format("{}/{} ({})", pool_cfg.database == "*" ? server_db : pool_cfg.database,
                                              creds->user, endpoint.text()),
                                  endpoint, std::move(creds), server_db, settings);
  p->set_config_database(pool_cfg.database == "*" && !server_db.empty() ? server_db : pool_cfg.database);
  p->set_cluster(pool_cfg.cluster);
  pools_.emplace(key, p);
  return p;
}

void PoolManager::maintain(asio::any_io_executor ex) {
  for (auto& p : all()) p->maintain(ex);
}

void PoolManager::reconfigure(const config::Config& cfg,
                              const std::map<std::string, std::shared_ptr<const Credentials>, std::less<>>& credentials,
                              const ServerTlsMap& server_tls) {
  for (auto& p : all()) {
    if (auto it = credentials.find(p->user()); it != credentials.end()) p->set_credentials(it->second);
    auto proto = p->settings().protocol;
    const config::Pool* pc = cfg.find_pool(proto, p->config_database());
    if (pc && pc->cluster != p->cluster()) {  // a split's arm, or a pool a [[rules]] cluster made
      const config::Pool* arm = pc->arm(p->cluster());
      pc = arm ? arm : pc->on_rule_cluster(p->cluster());
    }
    if (!pc) continue;
    auto s = p->settings();
    s.mode = pc->mode;
    s.pool_size = pc->pool_size;
    s.min_pool_size = pc->min_pool_size;
    s.connect_timeout = cfg.general.server_connect_timeout;
    s.idle_timeout = cfg.general.server_idle_timeout;
    s.lifetime = cfg.general.server_lifetime;
    s.max_prepared = proto == config::Protocol::Mysql ? cfg.mysql.max_prepared_statements : cfg.postgres.max_prepared_statements;
    auto t = server_tls.find(pc->cluster);
    s.tls = t == server_tls.end() ? ServerTls{} : t->second;
    p->set_settings(s);
  }
}

std::vector<std::shared_ptr<Pool>> PoolManager::all() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<Pool>> v;
  for (auto& [k, p] : pools_) v.push_back(p);
  return v;
}

}  // namespace sluice::pool
