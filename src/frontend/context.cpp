// Snapshot construction, per-pool settings, operator controls, and applying a reload.
#include "src/frontend/context.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "src/net/tls.hpp"
#include "src/observe/log.hpp"

namespace sluice::frontend {

namespace {
// The settings a cluster's ServerTls is built from; equal policies keep the pool's connections.
std::string server_tls_policy(const config::Cluster& c) {
  return fmt::format("{}|{}|{}|{}", config::to_string(c.server_tls), c.server_tls_ca, c.server_tls_cert,
                     c.server_tls_key);
}
}  // namespace

std::shared_ptr<const Snapshot> build_snapshot(std::shared_ptr<const config::Config> cfg, const Snapshot* running,
                                               FileReads files) {
  auto s = std::make_shared<Snapshot>(Snapshot::Key{});
  const config::Config* before = running ? running->config.get() : nullptr;
  const bool keep = before && files == FileReads::KeepUnchanged;
  for (auto& u : cfg->users) {
    std::shared_ptr<const pool::Credentials> kept;
    const config::User* old = before ? before->find_user(u.name) : nullptr;
    if (old && old->password == u.password && old->auth == u.auth)
      if (auto it = running->credentials.find(u.name); it != running->credentials.end()) kept = it->second;
    s->credentials.emplace(u.name, kept ? std::move(kept) : pool::make_credentials(u, cfg->path));
  }
  if (cfg->postgres.enabled) {
    if (keep && before->postgres.enabled && before->postgres.tls == cfg->postgres.tls) {
      s->pg_tls = running->pg_tls;
      s->pg_tls_end_point = running->pg_tls_end_point;
    } else {
      s->pg_tls = net::make_server_tls(cfg->postgres.tls, "postgres");
      if (s->pg_tls) s->pg_tls_end_point = net::server_end_point(*s->pg_tls);
    }
  }
  if (cfg->mysql.enabled) {
    if (keep && before->mysql.enabled && before->mysql.tls == cfg->mysql.tls) s->my_tls = running->my_tls;
    else s->my_tls = net::make_server_tls(cfg->mysql.tls, "mysql");
  }
  for (auto& [name, c] : cfg->clusters) {
    auto policy = server_tls_policy(c);
    if (keep) {
      auto old = running->server_tls.find(name);
      if (old != running->server_tls.end() && old->second.policy == policy) {
        s->server_tls.emplace(name, old->second);
        continue;
      }
    }
    pool::ServerTls t;
    t.mode = c.server_tls;
    t.ctx = net::make_client_tls(c, "clusters." + name);
    t.policy = std::move(policy);
    s->server_tls.emplace(name, std::move(t));
  }
  s->config = std::move(cfg);
  return s;
}

pool::PoolSettings pool_settings(const Snapshot& snap, const config::Pool& p) {
  const config::Config& cfg = *snap.config;
  pool::PoolSettings s;
  if (auto t = snap.server_tls.find(p.cluster); t != snap.server_tls.end()) s.tls = t->second;
  s.mode = p.mode;
  s.pool_size = p.pool_size;
  s.min_pool_size = p.min_pool_size;
  s.connect_timeout = cfg.general.server_connect_timeout;
  s.idle_timeout = cfg.general.server_idle_timeout;
  s.lifetime = cfg.general.server_lifetime;
  s.max_prepared = cfg.postgres.max_prepared_statements;
  return s;
}

std::shared_ptr<observe::ClientInfo> new_client_info(Context& ctx, const char* protocol,
                                                     const asio::ip::tcp::socket& sock) {
  auto info = std::make_shared<observe::ClientInfo>();
  info->id = ctx.client_table.next_id();
  info->protocol = protocol;
  boost::system::error_code ec;
  auto peer = sock.remote_endpoint(ec);
  if (!ec) info->addr = peer.address().to_string(), info->port = peer.port();
  auto local = sock.local_endpoint(ec);
  if (!ec) info->local_addr = local.address().to_string(), info->local_port = local.port();
  return info;
}

std::chrono::milliseconds LoginThrottle::failed(const std::string& addr, std::uint32_t burst, config::Duration delay) {
  if (delay.count() <= 0) return std::chrono::milliseconds(0);
  auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  if (buckets_.size() >= 65536 && !buckets_.count(addr)) {
    auto stalest = buckets_.begin();
    for (auto it = buckets_.begin(); it != buckets_.end(); ++it)
      if (it->second.last < stalest->second.last) stalest = it;
    buckets_.erase(stalest);
  }
  auto [it, fresh] = buckets_.try_emplace(addr);
  Bucket& b = it->second;
  if (fresh) b.tokens = burst;
  else b.tokens = std::min<double>(burst, b.tokens + std::chrono::duration<double>(now - b.last).count());
  b.last = now;
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return std::chrono::milliseconds(0);
  }
  held_.fetch_add(1, std::memory_order_relaxed);
  return std::chrono::duration_cast<std::chrono::milliseconds>(delay);
}

asio::awaitable<void> hold_failed_login(Context& ctx, const config::General& general,
                                        std::shared_ptr<observe::ClientInfo> info, asio::any_io_executor ex) {
  auto hold = ctx.login_throttle.failed(info->addr, general.login_failure_burst, general.login_failure_delay);
  if (hold.count() == 0) co_return;
  log::debug("client {} {}:{}: failed login held {} ms (too many from this address)", info->id, info->addr, info->port,
             hold.count());
  asio::steady_timer t(ex, hold);
  boost::system::error_code ec;
  co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

namespace {
bool listed(const std::vector<std::string>& v, std::string_view db) {
  for (auto& x : v)
    if (x.empty() || x == db) return true;
  return false;
}
}  // namespace

bool Controls::paused(std::string_view database) const {
  if (!any_paused()) return false;
  std::lock_guard lock(mu_);
  return listed(paused_, database);
}

void Controls::pause(const std::string& database) {
  std::lock_guard lock(mu_);
  if (std::find(paused_.begin(), paused_.end(), database) == paused_.end()) paused_.push_back(database);
  any_paused_ = true;
}

bool Controls::resume(const std::string& database) {
  std::lock_guard lock(mu_);
  bool found = false;
  if (database.empty()) {
    found = !paused_.empty();
    paused_.clear();
  } else {
    found = std::erase(paused_, database) > 0;
  }
  any_paused_ = !paused_.empty();
  return found;
}

bool Controls::disabled(std::string_view database) const {
  std::lock_guard lock(mu_);
  return listed(disabled_, database);
}

void Controls::set_disabled(const std::string& database, bool disabled) {
  std::lock_guard lock(mu_);
  std::erase(disabled_, database);
  if (disabled) disabled_.push_back(database);
}

asio::awaitable<void> Controls::wait_resumed(const std::string& database, const asio::ip::tcp::socket& client,
                                            observe::ClientInfo& info) const {
  if (!paused(database)) co_return;
  info.set_state(observe::ClientState::Waiting);
  asio::steady_timer t(co_await asio::this_coro::executor);
  while (paused(database) && client.is_open()) {
    t.expires_after(std::chrono::milliseconds(10));
    boost::system::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

std::vector<std::string> Controls::paused_list() const {
  std::lock_guard lock(mu_);
  return paused_;
}

std::vector<std::string> Controls::disabled_list() const {
  std::lock_guard lock(mu_);
  return disabled_;
}

void Context::set_cache(const config::Cache& c) {
  if (!cache) cache = std::make_unique<cache::Store>(c.max_bytes, 8);
  else if (cache->max_bytes() != c.max_bytes) cache->set_max_bytes(c.max_bytes);
  std::atomic_store(&policy_, std::shared_ptr<const cache::Policy>(std::make_shared<cache::Policy>(c)));
  if (!c.enabled && cache_on_.load()) cache->invalidate_all();  // nothing stale survives a re-enable
  cache_on_.store(c.enabled);
}

namespace {
// Installs a whole snapshot (the caller holds reload_mu): listeners, pools, clusters, cache.
std::string apply_locked(Context& ctx, std::shared_ptr<const Snapshot> next) {
  const auto& cfg = *next->config;
  if (ctx.rebind_listeners) {
    auto err = ctx.rebind_listeners(cfg);
    if (!err.empty()) throw config::ConfigError(err);
  }
  ctx.set_snapshot(next);
  log::set_level(cfg.general.log_level);
  ctx.pools.reconfigure(cfg, next->credentials, next->server_tls);
  std::vector<std::string> rebuilt;
  if (ctx.control_executor)
    rebuilt = ctx.router.reconfigure(cfg, next->credentials, next->server_tls, ctx.control_executor());
  ctx.set_cache(cfg.cache);
  std::string summary = fmt::format("{} users, {} pools, {} clusters", cfg.users.size(), cfg.pools.size(), cfg.clusters.size());
  if (!rebuilt.empty()) summary += fmt::format("; clusters changed: {}", fmt::join(rebuilt, ", "));
  return summary;
}
}  // namespace

std::string reload(Context& ctx, const std::string& path) {
  try {
    std::lock_guard lock(ctx.reload_mu);
    auto running = ctx.snapshot();
    auto summary = apply_locked(ctx, build_snapshot(config::load_file(path), running.get(), FileReads::Reread));
    log::info("configuration reloaded from {}: {}", path, summary);
    return summary;
  } catch (const config::ConfigError& e) {
    log::error("reload rejected, keeping the running configuration: {}", e.what());
    throw;
  }
}

std::string set_config(Context& ctx, const std::function<void(config::Config&)>& change) {
  std::lock_guard lock(ctx.reload_mu);
  auto running = ctx.snapshot();
  auto next = std::make_shared<config::Config>(*running->config);
  change(*next);
  return apply_locked(ctx, build_snapshot(std::move(next), running.get(), FileReads::KeepUnchanged));
}

}  // namespace sluice::frontend
