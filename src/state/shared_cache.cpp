// The cache's shared second-level store (see header).
#include "src/state/shared_cache.hpp"

#include <array>
#include <chrono>

#include "protocols/common/crypto.hpp"
#include "src/cache/shared_entry.hpp"

namespace sluice::state {

namespace asio = boost::asio;

namespace {

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void SharedCache::configure(const config::Cache& c) {
  bool on = c.enabled && c.stream && c.shared.port != 0;
  auto before = std::atomic_load(&settings_);
  auto next = std::make_shared<Settings>();
  next->redis.host = c.shared.host;
  next->redis.port = c.shared.port;
  next->redis.password = c.shared_password;
  next->redis.timeout = std::chrono::milliseconds(c.shared_timeout.count());
  next->max_value = c.max_entry_bytes;
  // Room for the record around the largest answer.
  next->redis.max_bulk = c.max_entry_bytes + (2u << 20);
  next->prefix = c.shared_prefix;
  next->generation = before ? before->generation : 0;
  if (!before || before->redis.host != next->redis.host || before->redis.port != next->redis.port ||
      before->redis.password != next->redis.password || before->redis.timeout != next->redis.timeout ||
      before->redis.max_bulk != next->redis.max_bulk)
    ++next->generation;
  std::atomic_store(&settings_, std::shared_ptr<const Settings>(std::move(next)));
  on_.store(on, std::memory_order_relaxed);
  if (!on) up_.store(false, std::memory_order_relaxed);
}

std::shared_ptr<net::RedisClient> SharedCache::client(asio::any_io_executor ex) {
  // One connection per worker thread (a worker runs one io_context on one thread); a new one
  // after the server's settings change. Thread-local, so it goes when its worker's thread ends,
  // before the worker's io_context.
  thread_local struct {
    const SharedCache* owner = nullptr;
    std::uint64_t generation = 0;
    std::shared_ptr<net::RedisClient> client;
  } mine;
  auto s = std::atomic_load(&settings_);
  if (mine.owner != this || mine.generation != s->generation || !mine.client) {
    if (mine.client) mine.client->close();
    mine.owner = this;
    mine.generation = s->generation;
    mine.client = std::make_shared<net::RedisClient>(ex, s->redis);
  }
  return mine.client;
}

std::string SharedCache::redis_key(const std::string& key) const {
  auto s = std::atomic_load(&settings_);
  std::string out = s->prefix;
  out += crypto::hex_upper(crypto::sha256_raw(key));
  return out;
}

void SharedCache::note(bool ok, const std::string& why) {
  up_.store(ok, std::memory_order_relaxed);
  if (!ok) {
    std::lock_guard lock(mu_);
    last_error_ = why;
  }
}

asio::awaitable<std::shared_ptr<const std::string>> SharedCache::fetch(
    cache::Store& store, const std::string& key, const std::string& scope, const std::string& cluster,
    const std::vector<std::string>& tables, const replication::Position* token, asio::any_io_executor ex) {
  // Before asking: a write whose invalidation comes while Redis answers moves the generation.
  auto ticket = store.fill_ticket(tables, cluster);
  if (ticket.refused) co_return nullptr;                // the stream is not up: nothing may be judged
  if (!store.stream_state(cluster)) co_return nullptr;  // not followed
  auto settings = std::atomic_load(&settings_);
  auto c = client(ex);
  gets_.fetch_add(1, std::memory_order_relaxed);
  std::string why;
  // The arguments live in locals: GCC 12 cannot compile a braced list inside a co_await.
  auto rkey = redis_key(key);
  const std::array<std::string_view, 2> get{"GET", rkey};
  auto reply = co_await c->command(get, &why);
  if (!reply || reply->kind == resp::Reply::Kind::Error) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    note(false, reply ? reply->text : why);
    co_return nullptr;
  }
  note(true, {});
  if (reply->kind != resp::Reply::Kind::Bulk) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    co_return nullptr;
  }
  auto entry = cache::decode_shared(reply->text, settings->max_value);
  // Another key under the same digest, or another configuration's cluster or tables: a miss.
  if (!entry || entry->key != key || entry->cluster != cluster || entry->tables != tables) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    co_return nullptr;
  }
  auto left = entry->expires_unix_ms - unix_ms();
  if (left <= 0) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    co_return nullptr;
  }
  // The position rule: every write the streams read to its tables, and the writes through this
  // instance (settled or not), are in its data.
  if (!store.stream_marks().covers(cluster, tables, entry->data) || !entry->data.covers(ticket.need)) {
    stale_.fetch_add(1, std::memory_order_relaxed);
    co_return nullptr;
  }
  cache::Origin origin{entry->replica, entry->data};
  // Older than this client's own write, which the streams have not applied yet (once they have,
  // the marks above cover it).
  if (token && !origin.serves(*token) && !store.stream_marks().read_position(cluster).covers(*token)) {
    stale_.fetch_add(1, std::memory_order_relaxed);
    co_return nullptr;
  }
  auto value = std::make_shared<const std::string>(entry->value);
  if (!store.put_if_current(key, std::move(entry->value), tables, std::chrono::milliseconds(left), ticket, origin,
                            scope)) {
    stale_.fetch_add(1, std::memory_order_relaxed);  // a write to its tables came meanwhile
    co_return nullptr;
  }
  hits_.fetch_add(1, std::memory_order_relaxed);
  co_return value;
}

void SharedCache::publish(const std::string& key, const std::string& cluster, const std::vector<std::string>& tables,
                          bool replica, const replication::Position& data, config::Duration ttl,
                          const std::string& value, asio::any_io_executor ex) {
  if (data.empty() || ttl.count() <= 0) return;  // nothing could use it
  cache::SharedEntry e;
  e.key = key;
  e.cluster = cluster;
  e.tables = tables;
  e.replica = replica;
  e.data = data;
  e.expires_unix_ms = unix_ms() + ttl.count();
  e.value = value;
  auto c = client(ex);
  asio::co_spawn(
      ex,
      [this, c, rkey = redis_key(key), bytes = cache::encode_shared(e),
       px = std::to_string(ttl.count())]() -> asio::awaitable<void> {
        std::string why;
        const std::array<std::string_view, 5> set{"SET", rkey, bytes, "PX", px};
        auto reply = co_await c->command(set, &why);
        if (reply && reply->kind != resp::Reply::Kind::Error) {
          sets_.fetch_add(1, std::memory_order_relaxed);
          note(true, {});
        } else {
          set_errors_.fetch_add(1, std::memory_order_relaxed);
          note(false, reply ? reply->text : why);
        }
      },
      asio::detached);
}

SharedCacheStatus SharedCache::status() const {
  SharedCacheStatus st;
  auto s = std::atomic_load(&settings_);
  if (on() && s) st.address = config::Endpoint{s->redis.host, s->redis.port}.text();
  st.up = up_.load();
  st.gets = gets_.load();
  st.hits = hits_.load();
  st.misses = misses_.load();
  st.stale = stale_.load();
  st.errors = errors_.load();
  st.sets = sets_.load();
  st.set_errors = set_errors_.load();
  std::lock_guard lock(mu_);
  st.last_error = last_error_;
  return st;
}

}  // namespace sluice::state
