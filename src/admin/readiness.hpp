// Readiness (GET /readyz), apart from liveness (/healthz): whether this instance should be sent
// new clients now. A load balancer or Kubernetes takes it out of rotation while it is not.
#pragma once

#include <string>

#include "src/state/context.hpp"

namespace sluice::admin {

// "" when ready: not shutting down, and every cluster the configuration routes to has at least
// one member its health checks reach. Otherwise the reasons, one per line.
std::string not_ready(state::Context& ctx);

}  // namespace sluice::admin
