// GET /readyz: what keeps this instance from taking new clients.
#include "src/admin/readiness.hpp"

namespace sluice::admin {

std::string not_ready(state::Context& ctx) {
  if (ctx.shutting_down) return "shutting down";
  std::string why;
  auto pools = ctx.pools.all();
  for (auto& rt : ctx.router.all()) {
    if (!rt) continue;
    auto v = rt->view();
    const auto& name = rt->config().name;
    bool any = false;
    std::string members;
    for (const auto& m : v->members) {
      any = any || m.up;
      members += (members.empty() ? "" : ", ") + m.endpoint.text();
    }
    // A cluster without replicas has no health checks (its view says the primary is up): what
    // its pools met last tells. Reachable unless every pool on it has no server connection and
    // failed its latest attempt to open one.
    if (any && rt->config().replicas.empty()) {
      bool tried = false, reached = false;
      for (auto& p : pools) {
        if (p->cluster() != name) continue;
        auto u = p->usage();
        if (u.total > u.connecting || !u.last_connect_failed) reached = true;
        tried = tried || u.connect_failures > 0 || u.total > 0;
      }
      any = reached || !tried;
    }
    if (!any) why += "cluster " + name + ": no member reachable (" + members + ")\n";
  }
  if (!why.empty()) why.pop_back();
  return why;
}

}  // namespace sluice::admin
