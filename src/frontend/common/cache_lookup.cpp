// Shared cache lookup with request coalescing (see header).
#include "src/frontend/common/cache_lookup.hpp"

namespace sluice::frontend {

namespace asio = boost::asio;

asio::awaitable<CacheLookup> cache_lookup(cache::Store& store, std::string key, std::string scope,
                                          asio::any_io_executor ex, config::Duration max_wait,
                                          const replication::Position* token) {
  CacheLookup r;
  r.hit = store.get(key, cache::Clock::now(), scope, token);
  if (r.hit) co_return r;
  if (store.begin_fill(key)) {
    r.fill = true;
    co_return r;
  }
  // Another client is asking the server the same question: wait for its answer.
  asio::steady_timer t(ex);
  auto deadline = std::chrono::steady_clock::now() + max_wait;
  while (store.filling(key) && std::chrono::steady_clock::now() < deadline) {
    t.expires_after(std::chrono::milliseconds(2));
    boost::system::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    r.hit = store.get(key, cache::Clock::now(), scope, token);
    if (r.hit) co_return r;
  }
  r.hit = store.get(key, cache::Clock::now(), scope, token);
  if (!r.hit) r.fill = store.begin_fill(key);
  co_return r;
}

}  // namespace sluice::frontend
