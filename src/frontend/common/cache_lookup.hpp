// The cache lookup both front ends share: a hit, or the right to fill the key (request
// coalescing: the first miss fills, later ones wait a bounded time for its answer), and keeping
// a fill's answer. With a shared store ([cache] shared), the filler asks it first, and a kept
// answer is offered to it.
#pragma once

#include <boost/asio.hpp>

#include <memory>
#include <string>
#include <vector>

#include "src/cache/store.hpp"
#include "src/config/units.hpp"
#include "src/state/context.hpp"
#include "src/state/shared_cache.hpp"

namespace sluice::frontend {

struct CacheLookup {
  std::shared_ptr<const std::string> hit;
  bool fill = false;  // this caller fills the key and must end_fill() it
};

// What the shared store needs to judge an entry: the cluster and the tables (table_key names)
// the statement reads.
struct SharedAsk {
  state::SharedCache& shared;
  const std::string& cluster;
  const std::vector<std::string>& tables;
};

// Neither a hit nor `fill` means another client's fill did not finish within `max_wait`: ask the
// server without caching the answer. `token` (may be null): the client's read-your-writes token;
// an answer older than it is not served to it, unless the change streams of `cluster` have
// read and applied it (then every entry left in the cache has it). `shared` (may be null): ask
// the shared store before the caller fills.
boost::asio::awaitable<CacheLookup> cache_lookup(cache::Store& store, std::string key, std::string scope,
                                                 const std::string& cluster, boost::asio::any_io_executor ex,
                                                 config::Duration max_wait, const replication::Position* token,
                                                 const SharedAsk* shared = nullptr);

// The cache policy in force, as a session last read it: read again only when a reload put a
// new one in place (Context::cache_policy_generation()).
class CachePolicyMemo {
 public:
  const cache::Policy& get(const state::Context& ctx) {
    const std::uint64_t g = ctx.cache_policy_generation();
    if (g != generation_ || !policy_) [[unlikely]] {
      policy_ = ctx.cache_policy();
      generation_ = g;
    }
    return *policy_;
  }

 private:
  std::shared_ptr<const cache::Policy> policy_;
  std::uint64_t generation_ = 0;
};

// The store's names of a candidate's tables (cache::table_key), into `out`. A hit needs them
// only to ask the shared store: a session makes them before the lookup when that is on, and
// otherwise only for a fill.
void table_keys(const std::vector<std::string>& tables, std::vector<std::string>& out);

// Keeps a fill's answer (Store::put_if_current) and, when kept and the shared store is on,
// offers it there with the position its data is at least as new as.
bool keep_answer(cache::Store& store, state::SharedCache& shared, const std::string& key, std::string value,
                 const std::vector<std::string>& tables, config::Duration ttl, const cache::FillTicket& ticket,
                 const cache::Origin& origin, const std::string& scope, const std::string& cluster,
                 boost::asio::any_io_executor ex);

}  // namespace sluice::frontend
