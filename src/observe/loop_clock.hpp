// The worker's loop clock: the time its reactor last came back from epoll_wait, read once there
// (net/raw_syscalls.cpp calls tick()) and then read by every request that turn's handlers time,
// instead of a clock read each (PgBouncer keeps such a cached time too). A proxied transaction
// read the clock four times on its way (the query's start and end, the pool's lease and release):
// with the loop clock it is one read per reactor turn, and a turn serves several transactions
// under load. Its error is the time a turn's handlers take before the reading one runs, far
// below what the figures it feeds resolve (SHOW STATS in microseconds, histogram buckets from
// 0.5 ms, the pool's 100 ms probe rule, lifetimes and idle timeouts in seconds).
//
// Only a thread inside a LoopClockScope (net::Runtime's workers, for as long as they run their
// io_context) reads the cached time; anywhere else loop_now() is the clock itself: the main
// thread, a thread that ran an io_context once and went on (a test's), tests driving the relay
// by hand.
#pragma once

#include <chrono>
#include <cstdint>

namespace sluice::observe {

namespace loop_clock_detail {
inline thread_local std::chrono::steady_clock::time_point t_now{};
inline thread_local bool t_on = false;
}  // namespace loop_clock_detail

// After the reactor's epoll_wait returned, before its events are handled.
inline void tick() {
  if (loop_clock_detail::t_on) loop_clock_detail::t_now = std::chrono::steady_clock::now();
}

// The loop clock's time on this thread (the steady clock's outside a LoopClockScope).
inline std::chrono::steady_clock::time_point loop_now() {
  return loop_clock_detail::t_on ? loop_clock_detail::t_now : std::chrono::steady_clock::now();
}

// The calling thread runs its reactor from construction to destruction (not nested).
class LoopClockScope {
 public:
  LoopClockScope() {
    loop_clock_detail::t_on = true;
    tick();
  }
  ~LoopClockScope() { loop_clock_detail::t_on = false; }
  LoopClockScope(const LoopClockScope&) = delete;
  LoopClockScope& operator=(const LoopClockScope&) = delete;
};

// Microseconds from `from` to `to`, never negative (two threads' loop clocks need not agree).
inline std::uint64_t micros_between(std::chrono::steady_clock::time_point from,
                                    std::chrono::steady_clock::time_point to) {
  auto d = std::chrono::duration_cast<std::chrono::microseconds>(to - from).count();
  return d > 0 ? static_cast<std::uint64_t>(d) : 0;
}

// Microseconds from `t` to loop_now(), never negative.
inline std::uint64_t loop_micros_since(std::chrono::steady_clock::time_point t) {
  return micros_between(t, loop_now());
}

}  // namespace sluice::observe
