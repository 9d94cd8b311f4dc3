// Shared cache lookup with request coalescing (see header).
#include "src/frontend/common/cache_lookup.hpp"

namespace sluice::frontend {

namespace asio = boost::asio;

namespace {

// The filler asks the shared store; a usable entry is kept locally and ends the fill.
asio::awaitable<bool> from_shared(CacheLookup& r, cache::Store& store, const std::string& key, const std::string& scope,
                                  asio::any_io_executor ex, const replication::Position* token,
                                  const SharedAsk* shared) {
  if (!shared || !shared->shared.on()) co_return false;
  auto hit = co_await shared->shared.fetch(store, key, scope, shared->cluster, shared->tables, token, ex);
  if (!hit) co_return false;
  store.end_fill(key);
  r.fill = false;
  r.hit = std::move(hit);
  co_return true;
}

}  // namespace

asio::awaitable<CacheLookup> cache_lookup(cache::Store& store, std::string key, std::string scope,
                                          const std::string& cluster, asio::any_io_executor ex,
                                          config::Duration max_wait, const replication::Position* token,
                                          const SharedAsk* shared) {
  CacheLookup r;
  // The client wrote (or logged in with read_your_writes_from_login): once the streams have
  // applied its position, any entry still kept is at least that new for its tables.
  if (token && !token->empty() && store.stream_marks().read_position(cluster).covers(*token)) token = nullptr;
  r.hit = store.get(key, cache::Clock::now(), scope, token);
  if (r.hit) co_return r;
  if (store.begin_fill(key)) {
    r.fill = true;
    co_await from_shared(r, store, key, scope, ex, token, shared);
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
  if (r.fill) co_await from_shared(r, store, key, scope, ex, token, shared);
  co_return r;
}

void table_keys(const std::vector<std::string>& tables, std::vector<std::string>& out) {
  out.clear();
  for (const auto& t : tables) out.push_back(cache::table_key(t));
}

bool keep_answer(cache::Store& store, state::SharedCache& shared, const std::string& key, std::string value,
                 const std::vector<std::string>& tables, config::Duration ttl, const cache::FillTicket& ticket,
                 const cache::Origin& origin, const std::string& scope, const std::string& cluster,
                 asio::any_io_executor ex) {
  if (!shared.on()) return store.put_if_current(key, std::move(value), tables, ttl, ticket, origin, scope);
  std::string copy = value;
  if (!store.put_if_current(key, std::move(value), tables, ttl, ticket, origin, scope)) return false;
  // A replica's data is as new as the position it had replayed; the primary's includes every
  // commit the change streams had read when the fill began, and the client's own writes.
  replication::Position data = origin.position;
  if (!origin.replica) data.merge(ticket.read);
  shared.publish(key, cluster, tables, origin.replica, data, ttl, copy, ex);
  return true;
}

}  // namespace sluice::frontend
