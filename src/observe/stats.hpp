// Counters the admin console (SHOW STATS, SHOW CLIENTS) and /metrics read: per database
// traffic and latency, and a table of every client connection. Sessions update them with
// relaxed atomics; readers take consistent-enough snapshots without stopping anyone.
#pragma once

#include <array>
#include <atomic>
#include <thread>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "src/memory/slab.hpp"

namespace boost::asio {
class io_context;
}

namespace sluice::observe {

using Clock = std::chrono::steady_clock;

// Cumulative latency histogram with fixed bucket bounds (seconds), Prometheus style.
struct Histogram {
  static constexpr std::array<double, 14> kBounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                  0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};
  static constexpr std::array<std::uint64_t, 14> kBoundsUs{500,    1000,   2500,   5000,    10000,   25000,   50000,
                                                          100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
  std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> buckets{};  // last = +Inf
  std::atomic<std::uint64_t> count{0}, sum_us{0};
  void observe_us(std::uint64_t us);
};

// Traffic of one database name on one protocol (PgBouncer's SHOW STATS row).
struct DbStats {
  std::string protocol, database;
  std::atomic<std::uint64_t> xacts{0}, queries{0}, bytes_in{0}, bytes_out{0};
  std::atomic<std::uint64_t> xact_us{0}, query_us{0}, wait_us{0}, errors{0};
  Histogram query_seconds, xact_seconds, wait_seconds;

  void query(std::uint64_t us) {
    queries.fetch_add(1, std::memory_order_relaxed);
    query_us.fetch_add(us, std::memory_order_relaxed);
    query_seconds.observe_us(us);
  }
  void xact(std::uint64_t us) {
    xacts.fetch_add(1, std::memory_order_relaxed);
    xact_us.fetch_add(us, std::memory_order_relaxed);
    xact_seconds.observe_us(us);
  }
  void wait(std::uint64_t us) {
    wait_us.fetch_add(us, std::memory_order_relaxed);
    wait_seconds.observe_us(us);
  }
};

inline std::uint64_t micros_since(Clock::time_point t) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t).count());
}

// Totals of one DbStats at one moment (for per-period averages).
struct StatsTotals {
  std::uint64_t xacts = 0, queries = 0, bytes_in = 0, bytes_out = 0, xact_us = 0, query_us = 0, wait_us = 0;
};
StatsTotals totals(const DbStats& s);

class StatsRegistry {
 public:
  std::shared_ptr<DbStats> get(const std::string& protocol, const std::string& database);
  std::vector<std::shared_ptr<DbStats>> all() const;
  // Called every stats period: remembers the totals, so averages cover the last full period.
  void roll_period();
  // Totals at the start and end of the last full period, and its length in seconds.
  struct Period {
    StatsTotals begin, end;
    double seconds = 0;
  };
  Period last_period(const DbStats& s) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<DbStats>> by_key_;
  std::unordered_map<const DbStats*, std::pair<StatsTotals, StatsTotals>> periods_;
  Clock::time_point period_start_ = Clock::now(), prev_period_start_ = Clock::now();
};

enum class ClientState : int { Login = 0, Idle = 1, Active = 2, Waiting = 3 };
const char* to_string(ClientState s);

// One client connection, as SHOW CLIENTS lists it.
// A lock of one byte for what is written rarely and read by the console (ClientInfo's strings):
// a std::mutex would be 40 bytes in the record of every client. Waiters spin with yields.
// A short text that many clients share (a listener's address, a pool's name), interned: one
// pointer a client instead of a string each.
class SharedName {
 public:
  SharedName() = default;
  SharedName& operator=(std::string_view s);
  const std::string& str() const;  // "" when unset
  operator const std::string&() const { return str(); }

 private:
  std::shared_ptr<const std::string> p_;
};

class TinyLock {
 public:
  void lock() noexcept {
    while (flag_.test_and_set(std::memory_order_acquire)) std::this_thread::yield();
  }
  void unlock() noexcept { flag_.clear(std::memory_order_release); }

 private:
  std::atomic_flag flag_ = ATOMIC_FLAG_INIT;
};

struct ClientInfo {
  std::uint64_t id = 0;
  const char* protocol = "";  // "postgres" | "mysql" (a literal)
  std::string addr;
  SharedName local_addr;
  std::uint16_t port = 0, local_port = 0;
  std::chrono::system_clock::time_point connect_time = std::chrono::system_clock::now();
  // The console's KILL: kill_on_worker(id) (below) run on this worker.
  boost::asio::io_context* worker = nullptr;

  std::atomic<int> state{static_cast<int>(ClientState::Login)};
  std::atomic<std::int64_t> request_time_us{0};  // epoch µs of the last request
  std::atomic<std::int64_t> wait_since_us{0};    // epoch µs the current wait began (0 = none)
  std::atomic<std::uint64_t> queries{0};
  std::atomic<std::uint64_t> server_id{0};  // the server connection working for it (0 = none)
  std::atomic<bool> tls{false};
  std::atomic<bool> parked{false};  // idle with no coroutine frames (frontend/common/admission.hpp)
  std::atomic<bool> asleep{false};  // parked with its session object gone (hibernated)

  mutable TinyLock mu;                                 // guards the strings below
  std::string user, database, application_name;
  SharedName pool;  // the [[pools]] database
  // Transaction pooling: why the client keeps its server connection (null: it does not).
  std::unique_ptr<const std::string> pinned;

  void set_state(ClientState s);
  void set_identity(std::string u, std::string db, std::string app = {});
};

// The front ends' KILL of a client on its worker (frontend/common/worker_sessions.hpp), set
// when the first client becomes killable: one hook for the process, not a pointer a client.
inline std::atomic<void (*)(std::uint64_t id)> kill_on_worker{nullptr};

std::int64_t epoch_us();
// Wall clock in µs from the coarse clock (a few ms resolution, no TSC read): request times.
std::int64_t coarse_epoch_us();

// Client ids (SHOW CLIENTS, KILL, the MySQL handshake's connection id) start here: out of the
// range of server process and thread ids, so a MySQL KILL can take either kind without doubt.
inline constexpr std::uint64_t kFirstClientId = 1ull << 30;

class ClientTable {
 public:
  std::uint64_t next_id() { return next_.fetch_add(1); }
  // Ids from `floor` on (an online upgrade's new process: past the previous one's, whose
  // clients keep theirs).
  void ids_from(std::uint64_t floor) {
    auto cur = next_.load();
    while (cur < floor && !next_.compare_exchange_weak(cur, floor)) {
    }
  }
  std::uint64_t peek_next_id() const { return next_.load(); }
  void add(const std::shared_ptr<ClientInfo>& c);
  void remove(std::uint64_t id);
  std::shared_ptr<ClientInfo> find(std::uint64_t id) const;
  std::vector<std::shared_ptr<ClientInfo>> all() const;  // by id

 private:
  std::atomic<std::uint64_t> next_{kFirstClientId};
  mutable std::mutex mu_;
  // Nodes of 32 bytes in a slab (memory/slab.hpp): each idle client has one.
  std::unordered_map<std::uint64_t, std::weak_ptr<ClientInfo>, std::hash<std::uint64_t>, std::equal_to<>,
                     memory::SlabAllocator<std::pair<const std::uint64_t, std::weak_ptr<ClientInfo>>>>
      by_id_;
};

}  // namespace sluice::observe
