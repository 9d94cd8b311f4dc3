// [limits] at run time: client connections counted per user, database and address (a Ticket
// holds a place while its client is connected), and request rates per user and address (a
// GCRA token bucket, one 64-bit word per key, lock-free). Shared by every worker; the maps are
// guarded by one mutex each, touched only at connect, login and disconnect.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "src/config/config.hpp"

namespace sluice::access {

// Which limit refused something (SHOW LIMITS, /metrics).
enum class Limit : std::uint8_t {
  ConnectionsPerUser,
  ConnectionsPerDatabase,
  ConnectionsPerAddress,
  ConnectionRate,
  QueryRateUser,
  QueryRateAddress,
};
inline constexpr std::size_t kLimits = 6;
const char* to_string(Limit l);  // the [limits] key

enum class Scope : std::uint8_t { User, Database, Address };

class ConnectionCounts;

// One client's place under a connection limit; given back when it goes (or is reset).
class Ticket {
 public:
  Ticket() = default;
  Ticket(Ticket&& o) noexcept : entry_(std::exchange(o.entry_, nullptr)) {}
  Ticket& operator=(Ticket&& o) noexcept {
    std::swap(entry_, o.entry_);
    return *this;
  }
  ~Ticket() { reset(); }
  void reset();
  explicit operator bool() const { return entry_ != nullptr; }

 private:
  friend class ConnectionCounts;
  void* entry_ = nullptr;  // a ConnectionCounts::Entry, which knows its table (one pointer a place)
};

class ConnectionCounts {
 public:
  // A place for `key` in `scope` while fewer than `limit` hold one (0 = no limit, still
  // counted, so a limit set later sees the clients already in); empty when refused.
  Ticket take(Scope scope, std::string_view key, std::uint32_t limit);
  struct Row {
    Scope scope;
    std::string key;
    std::uint32_t connections;
  };
  std::vector<Row> rows() const;

 private:
  friend class Ticket;
  struct Entry {
    ConnectionCounts* counts;
    Scope scope;
    std::string key;
    std::uint32_t count = 0;
  };
  void give_back(Entry* e);
  mutable std::mutex mu_;
  std::array<std::unordered_map<std::string, std::unique_ptr<Entry>>, 3> maps_;
};

// A rate as a generic cell rate algorithm: the theoretical arrival time of the next request.
// admit() reserves a slot when the wait it implies is within `max_wait`.
class Gcra {
 public:
  // Wait before the request may go (zero = now); none when it would exceed `max_wait` (nothing
  // reserved then). `rate` per second, with a burst of one second's worth.
  std::optional<std::chrono::nanoseconds> admit(std::uint32_t rate, std::chrono::nanoseconds max_wait,
                                                std::chrono::steady_clock::time_point now);
  // Gives back a slot admit() reserved (the other of two limits refused).
  void undo(std::uint32_t rate);
  // Whether admit(rate, max_wait, now) would refuse, reserving nothing.
  bool would_refuse(std::uint32_t rate, std::chrono::nanoseconds max_wait,
                    std::chrono::steady_clock::time_point now) const;

 private:
  std::atomic<std::int64_t> tat_ns_{0};
};

// Rate buckets per rate limit (ConnectionRate, QueryRateUser, QueryRateAddress) and key (an
// address or a user), made on first use; at most 65536 per limit (then that map is cleared: a
// bucket forgotten is a bucket full, the generous side).
class RateBuckets {
 public:
  std::shared_ptr<Gcra> get(Limit limit, std::string_view key);

 private:
  std::mutex mu_;
  std::array<std::unordered_map<std::string, std::shared_ptr<Gcra>>, kLimits> maps_;
};

// Everything [limits] needs at run time, plus refusal counts per limit.
struct LimitState {
  ConnectionCounts connections;
  RateBuckets rates;
  std::array<std::atomic<std::uint64_t>, kLimits> refused{};
  std::array<std::atomic<std::uint64_t>, kLimits> queued{};  // waited (rate limits, queue action)
  void count_refusal(Limit l) { refused[static_cast<std::size_t>(l)].fetch_add(1, std::memory_order_relaxed); }
};

}  // namespace sluice::access
