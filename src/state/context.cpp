// The shared running state: the result cache's settings, client entries, held failed logins,
// and applying a new snapshot (reload and SET).
#include "src/state/context.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "src/net/address_text.hpp"
#include "src/net/connect.hpp"
#include "src/observe/log.hpp"

namespace sluice::state {

std::shared_ptr<observe::ClientInfo> new_client_info(Context& ctx, const char* protocol,
                                                     const asio::ip::tcp::socket& sock, const net::Origin& origin) {
  auto info = memory::make_shared_in_slab<observe::ClientInfo>();  // long-lived: memory/slab.hpp
  info->id = ctx.client_table.next_id();
  info->protocol = protocol;
  info->addr = origin.addr;
  info->port = origin.port;
  if (auto local = net::local_address(sock); local && local->unix_socket) {
    info->local_addr = "unix";
  } else if (local) {
    info->local_addr = net::address_text(local->ep.address()), info->local_port = local->ep.port();
  }
  return info;
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

void Context::set_firewall(const Snapshot& s, bool reread_allowlist) {
  const auto& fw = s.config->firewall;
  if (reread_allowlist && !fw.allowlist_file.empty()) {
    if (auto err = firewall_list.load(fw.allowlist_file); !err.empty()) log::error("firewall: {}", err);
  }
  firewall_on_.store(fw.mode != "off" || !s.firewall->empty(), std::memory_order_relaxed);
  rules_on_.store(!s.rules->empty(), std::memory_order_relaxed);
  digests.set_limit(s.config->digests.max_fingerprints);
  // The slow-query log fingerprints statements as [digests] does (SHOW QUERIES fills with them).
  const auto& g = s.config->general;
  observe::g_slow_log.threshold_us.store(
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(g.log_min_duration).count()),
      std::memory_order_relaxed);
  observe::g_slow_log.parameters.store(g.log_parameters, std::memory_order_relaxed);
  digests_on_.store(s.config->digests.enabled || g.log_min_duration.count() > 0, std::memory_order_relaxed);
  bool rates = s.config->limits.queries_per_second_per_user || s.config->limits.queries_per_second_per_address;
  for (auto& u : s.config->users) rates = rates || (u.queries_per_second && *u.queries_per_second);
  rates_on_.store(rates, std::memory_order_relaxed);
}

void Context::set_cache(const config::Cache& c) {
  if (!cache) cache = std::make_unique<cache::Store>(c.max_bytes, 8);
  else if (cache->max_bytes() != c.max_bytes) cache->set_max_bytes(c.max_bytes);
  std::atomic_store(&policy_, std::shared_ptr<const cache::Policy>(std::make_shared<cache::Policy>(c)));
  policy_generation_.fetch_add(1, std::memory_order_release);
  if (!c.enabled && cache_on_.load()) cache->invalidate_all();  // nothing stale survives a re-enable
  cache_on_.store(c.enabled && !cache_held_.load());
  shared_cache.configure(c);
}

void Context::hold_cache(bool held) {
  cache_held_.store(held);
  if (cache) cache->invalidate_all();  // what either process kept may be stale now
  auto policy = cache_policy();
  cache_on_.store(!held && policy && policy->enabled());
}

namespace {
// Installs a whole snapshot (the caller holds reload_mu): listeners, pools, clusters, cache.
std::string apply_locked(Context& ctx, std::shared_ptr<const Snapshot> next, bool reread_allowlist) {
  const auto& cfg = *next->config;
  if (ctx.rebind_listeners) {
    auto err = ctx.rebind_listeners(cfg);
    if (!err.empty()) throw config::ConfigError(err);
  }
  ctx.set_snapshot(next);
  log::set_level(cfg.general.log_level);
  log::set_format(cfg.general.log_format == config::General::LogFormat::Json ? "json" : "text");
  ctx.pools.reconfigure(cfg, next->credentials, next->server_tls);
  std::vector<std::string> rebuilt;
  if (ctx.control_executor)
    rebuilt = ctx.router.reconfigure(cfg, next->credentials, next->server_tls, ctx.control_executor());
  if (ctx.control_executor) ctx.mirrors.reconfigure(cfg, next->server_tls, ctx.control_executor());
  ctx.set_cache(cfg.cache);
  if (ctx.control_executor) ctx.cache_streams.reconfigure(*next, *ctx.cache, ctx.control_executor());
  ctx.set_firewall(*next, reread_allowlist);
  std::string summary =
      fmt::format("{} users, {} pools, {} clusters", cfg.users.size(), cfg.pools.size(), cfg.clusters.size());
  if (!rebuilt.empty()) summary += fmt::format("; clusters changed: {}", fmt::join(rebuilt, ", "));
  return summary;
}
}  // namespace

std::string reload(Context& ctx, const std::string& path) {
  try {
    std::lock_guard lock(ctx.reload_mu);
    auto running = ctx.snapshot();
    auto summary = apply_locked(ctx, build_snapshot(config::load_file(path), running.get(), FileReads::Reread), true);
    log::event(log::Level::Info, "reloaded", {}, "configuration reloaded from {}: {}", path, summary);
    return summary;
  } catch (const config::ConfigError& e) {
    log::event(log::Level::Error, "reload_rejected", {.reason = e.what()},
               "reload rejected, keeping the running configuration: {}", e.what());
    throw;
  }
}

std::string set_config(Context& ctx, const std::function<void(config::Config&)>& change) {
  std::lock_guard lock(ctx.reload_mu);
  auto running = ctx.snapshot();
  auto next = std::make_shared<config::Config>(*running->config);
  change(*next);
  return apply_locked(ctx, build_snapshot(std::move(next), running.get(), FileReads::KeepUnchanged), false);
}

}  // namespace sluice::state
