// Prometheus text exposition (format 0.0.4) of everything the console shows: clients and
// server connections per pool and state, queries, transactions, bytes, latency histograms,
// cache and routing counters, backend health and lag.
#pragma once

#include <string>

namespace sluice::state {
struct Context;
}

namespace sluice::admin {

std::string prometheus(state::Context& ctx);

}  // namespace sluice::admin
