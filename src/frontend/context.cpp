// Snapshot construction and per-pool settings.
#include "src/frontend/context.hpp"

namespace sluice::frontend {

std::shared_ptr<const Snapshot> make_snapshot(std::shared_ptr<const config::Config> cfg) {
  auto s = std::make_shared<Snapshot>();
  for (auto& u : cfg->users) s->credentials.emplace(u.name, pool::make_credentials(u, cfg->path));
  s->config = std::move(cfg);
  return s;
}

pool::PoolSettings pool_settings(const config::Config& cfg, const config::Pool& p) {
  pool::PoolSettings s;
  s.mode = p.mode;
  s.pool_size = p.pool_size;
  s.min_pool_size = p.min_pool_size;
  s.connect_timeout = cfg.general.server_connect_timeout;
  s.idle_timeout = cfg.general.server_idle_timeout;
  s.lifetime = cfg.general.server_lifetime;
  s.max_prepared = cfg.postgres.max_prepared_statements;
  return s;
}

}  // namespace sluice::frontend
