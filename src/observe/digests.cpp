// Query digests (digests.hpp).
#include "src/observe/digests.hpp"

#include <bit>
#include <functional>

#include "src/observe/log.hpp"

namespace sluice::observe {
namespace {

std::int64_t unix_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// Bucket 0 holds 0 us, bucket 1 holds 1 us; from 2 us on each octave [2^(w-1), 2^w) is split in
// two halves: bucket 2w-1 and 2w (w = the value's bit width).
std::size_t Digest::bucket_of(std::uint64_t us) {
  if (us == 0) return 0;
  int w = std::bit_width(us);
  std::size_t half = w >= 2 ? (us >> (w - 2)) & 1 : 0;
  std::size_t b = static_cast<std::size_t>(2 * (w - 1)) + half + (w == 1 ? 1 : 0);
  return b < kBuckets ? b : kBuckets - 1;
}

std::uint64_t Digest::bucket_upper(std::size_t b) {
  if (b == 0) return 0;
  if (b == 1) return 1;
  int w = static_cast<int>(b / 2) + 1;  // b = 2(w-1) + half
  std::uint64_t half = b % 2;
  std::uint64_t lower = (std::uint64_t{1} << (w - 1)) + half * (std::uint64_t{1} << (w - 2));
  return lower + (std::uint64_t{1} << (w - 2)) - 1;
}

void note_slow(const Digest& d, std::uint64_t us, std::uint64_t rows, bool error, const SlowWho& who) {
  auto threshold = g_slow_log.threshold_us.load(std::memory_order_relaxed);
  if (threshold == 0 || us < threshold || !log::enabled(log::Level::Warn)) return;
  log::Fields f;
  f.client_id = who.client_id;
  f.address = who.address;
  f.user = d.user;
  f.database = d.database;
  f.fingerprint = d.fingerprint;
  if (g_slow_log.with_parameters()) f.statement = who.statement;
  f.duration_ms = static_cast<double>(us) / 1000.0;
  f.rows = static_cast<std::int64_t>(rows);
  if (error) f.reason = "error";
  log::write_event(log::Level::Warn, "slow_query", f,
                   fmt::format("client {} {}: user {} database {}: slow {} statement: {:.3f} ms{}: {}", who.client_id,
                               who.address, d.user, d.database, d.protocol, f.duration_ms, error ? " (error)" : "",
                               f.statement.empty() ? d.fingerprint : f.statement));
}

void Digest::record(std::uint64_t us, std::uint64_t n, bool error, DigestRoute route) {
  calls.fetch_add(1, std::memory_order_relaxed);
  if (error) errors.fetch_add(1, std::memory_order_relaxed);
  rows.fetch_add(n, std::memory_order_relaxed);
  total_us.fetch_add(us, std::memory_order_relaxed);
  (route == DigestRoute::Replica ? on_replica : on_primary).fetch_add(1, std::memory_order_relaxed);
  buckets[bucket_of(us)].fetch_add(1, std::memory_order_relaxed);
  last_seen_us.store(unix_us(), std::memory_order_relaxed);
}

void Digest::cache_hit() {
  cache_hits.fetch_add(1, std::memory_order_relaxed);
  last_seen_us.store(unix_us(), std::memory_order_relaxed);
}

std::uint64_t Digest::quantile_us(double q) const {
  std::uint64_t total = 0;
  for (auto& b : buckets) total += b.load(std::memory_order_relaxed);
  if (total == 0) return 0;
  auto want = static_cast<std::uint64_t>(q * static_cast<double>(total));
  if (want >= total) want = total - 1;
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += buckets[i].load(std::memory_order_relaxed);
    if (seen > want) return bucket_upper(i);
  }
  return bucket_upper(kBuckets - 1);
}

DigestStore::DigestStore() = default;

std::shared_ptr<Digest> DigestStore::get(std::string_view protocol, std::string_view fingerprint,
                                         std::string_view database, std::string_view user) {
  std::string key;
  key.reserve(protocol.size() + fingerprint.size() + database.size() + user.size() + 3);
  key.append(protocol).push_back('\x1f');
  key.append(database).push_back('\x1f');
  key.append(user).push_back('\x1f');
  key.append(fingerprint);
  auto& sh = shards_[std::hash<std::string>{}(key) % shards_.size()];
  auto make = [&](std::string_view fp, std::string_view db, std::string_view u) {
    auto d = std::make_shared<Digest>();
    d->protocol = protocol;
    d->fingerprint = fp;
    d->database = db;
    d->user = u;
    d->generation = generation_.load(std::memory_order_relaxed);
    d->first_seen_us = unix_us();
    return d;
  };
  {
    std::lock_guard lock(sh.mu);
    if (auto it = sh.map.find(key); it != sh.map.end()) return it->second;
    if (size_.load(std::memory_order_relaxed) < limit_.load(std::memory_order_relaxed)) {
      size_.fetch_add(1, std::memory_order_relaxed);
      return sh.map.emplace(std::move(key), make(fingerprint, database, user)).first->second;
    }
  }
  // Past the limit: one "(other)" digest per protocol.
  std::string other = std::string(protocol) + "\x1f\x1f\x1f(other)";
  auto& os = shards_[std::hash<std::string>{}(other) % shards_.size()];
  std::lock_guard lock(os.mu);
  auto& d = os.map[other];
  if (!d) d = make("(other)", "", "");
  return d;
}

void DigestStore::reset() {
  generation_.fetch_add(1, std::memory_order_relaxed);
  for (auto& sh : shards_) {
    std::lock_guard lock(sh.mu);
    sh.map.clear();
  }
  size_.store(0, std::memory_order_relaxed);
}

std::vector<std::shared_ptr<const Digest>> DigestStore::all() const {
  std::vector<std::shared_ptr<const Digest>> out;
  for (auto& sh : shards_) {
    std::lock_guard lock(sh.mu);
    for (auto& [k, d] : sh.map) out.push_back(d);
  }
  return out;
}

}  // namespace sluice::observe
