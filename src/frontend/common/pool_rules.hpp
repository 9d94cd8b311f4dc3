// Rules both front ends apply to a client's pool, written once (issue 18: they had drifted).
#pragma once

#include <algorithm>
#include <chrono>
#include <string>
#include <string_view>

#include "src/config/config.hpp"

namespace sluice::frontend {

// The database name a client is known by to operators: what DISABLE, PAUSE, stats and SHOW
// CLIENTS' pool name it. A `database = "*"` pool serves many databases: the client's own (a
// MySQL client that named none: "*").
inline std::string served_database(const config::Pool& pc, std::string_view client_database) {
  if (pc.database == "*" && !client_database.empty()) return std::string(client_database);
  return pc.database;
}

// How long a cache miss waits for another client filling the same entry before running the
// query itself: never past query_wait_timeout, and at most 10 s.
inline config::Duration cache_wait_limit(const config::General& g) {
  return std::min<config::Duration>(g.query_wait_timeout, std::chrono::seconds(10));
}

}  // namespace sluice::frontend
