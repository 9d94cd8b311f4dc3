// The cache lookup both front ends share: a hit, or the right to fill the key (request
// coalescing: the first miss fills, later ones wait a bounded time for its answer).
#pragma once

#include <boost/asio.hpp>

#include <memory>
#include <string>

#include "src/cache/store.hpp"
#include "src/config/units.hpp"

namespace sluice::frontend {

struct CacheLookup {
  std::shared_ptr<const std::string> hit;
  bool fill = false;  // this caller fills the key and must end_fill() it
};

// Neither a hit nor `fill` means another client's fill did not finish within `max_wait`: ask the
// server without caching the answer. `token` (may be null): the client's read-your-writes token;
// a replica's answer older than it is not served to it.
boost::asio::awaitable<CacheLookup> cache_lookup(cache::Store& store, std::string key, std::string scope,
                                                 boost::asio::any_io_executor ex, config::Duration max_wait,
                                                 const replication::Position* token);

}  // namespace sluice::frontend
