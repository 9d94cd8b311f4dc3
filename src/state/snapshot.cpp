// Building the running snapshot (credentials kept where unchanged, TLS contexts read or kept)
// and per-pool settings.
#include "src/state/snapshot.hpp"

#include <fmt/format.h>

#include "src/net/tls.hpp"

namespace sluice::state {

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
  s->access = std::make_shared<const access::Rules>(cfg->access, running ? running->access.get() : nullptr);
  s->firewall =
      std::make_shared<const access::FirewallRules>(cfg->firewall.rules, running ? running->firewall.get() : nullptr);
  s->rules = std::make_shared<const access::QueryRules>(cfg->rules, running ? running->rules.get() : nullptr);
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

}  // namespace sluice::state
