// Query digests: per statement shape (fingerprint), database and user, what statements cost:
// calls, errors, rows, time on the server (total, mean, p50, p99 from a half-octave histogram),
// cache hits, where they ran, first and last seen. Sessions look a digest up once per statement
// (16 shards, a mutex each) and update it with relaxed atomics; the store holds at most
// `max_fingerprints` digests, the rest counted in one "(other)" digest per protocol. RESET
// replaces the maps: sessions holding an old digest notice its generation and look again.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sluice::observe {

enum class DigestRoute { Primary, Replica };

struct Digest {
  std::string protocol, fingerprint, database, user;
  std::uint64_t generation = 0;
  std::int64_t first_seen_us = 0;  // Unix time, microseconds
  std::atomic<std::int64_t> last_seen_us{0};
  std::atomic<std::uint64_t> calls{0}, errors{0}, rows{0}, total_us{0}, cache_hits{0}, on_primary{0}, on_replica{0};
  static constexpr std::size_t kBuckets = 84;  // half octaves of microseconds, up to 2^41 us
  std::array<std::atomic<std::uint64_t>, kBuckets> buckets{};

  // A statement that ran on a server for `us` and returned or changed `rows` rows.
  void record(std::uint64_t us, std::uint64_t rows, bool error, DigestRoute route);
  // A statement answered from the result cache.
  void cache_hit();
  // The time under which a fraction `q` of the calls took (the bucket's upper bound), in us.
  std::uint64_t quantile_us(double q) const;
  static std::size_t bucket_of(std::uint64_t us);
  static std::uint64_t bucket_upper(std::size_t b);
};

// The slow-query log ([general] log_min_duration, log_parameters): a statement recorded in a
// digest that took at least the threshold is logged as a "slow_query" event with its
// fingerprint, database, user, client and time; its text (with the values a client wrote into
// it) only when parameters are on. The threshold is 0 when off.
struct SlowLog {
  std::atomic<std::uint64_t> threshold_us{0};
  std::atomic<bool> parameters{false};
  bool on() const { return threshold_us.load(std::memory_order_relaxed) > 0; }
  bool with_parameters() const { return parameters.load(std::memory_order_relaxed); }
};
inline SlowLog g_slow_log;
// Who ran a statement, for its slow-query line (statement: only with log_parameters).
struct SlowWho {
  std::uint64_t client_id = 0;
  std::string address;
  std::string statement;
};
void note_slow(const Digest& d, std::uint64_t us, std::uint64_t rows, bool error, const SlowWho& who);

class DigestStore {
 public:
  DigestStore();
  void set_limit(std::size_t max_fingerprints) { limit_.store(max_fingerprints, std::memory_order_relaxed); }
  // The digest of (protocol, fingerprint, database, user), made on first use.
  std::shared_ptr<Digest> get(std::string_view protocol, std::string_view fingerprint, std::string_view database,
                              std::string_view user);
  // Whether `d` (from get()) is still in the store (not reset since).
  bool current(const Digest& d) const { return d.generation == generation_.load(std::memory_order_relaxed); }
  void reset();
  std::vector<std::shared_ptr<const Digest>> all() const;
  std::size_t size() const { return size_.load(std::memory_order_relaxed); }

 private:
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, std::shared_ptr<Digest>> map;
  };
  std::array<Shard, 16> shards_;
  std::atomic<std::size_t> size_{0}, limit_{5000};
  std::atomic<std::uint64_t> generation_{1};
};

}  // namespace sluice::observe
