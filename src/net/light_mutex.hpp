// A mutex for short critical sections taken on every transaction (a pool's lock): one atomic
// instruction to take it and one to give it back when no other thread wants it, where
// pthread_mutex_lock/unlock cost about 55 instructions a pair (type dispatch, owner and count
// bookkeeping). A thread that finds it taken spins briefly, then sleeps on a futex; the holder
// wakes one sleeper on release. Not recursive; no owner checks. Meets Lockable, so
// std::lock_guard and std::unique_lock work with it.
//
// The three states and the release rule are the classic futex mutex ("Futexes Are Tricky",
// U. Drepper, mutex #3): 0 free, 1 taken, 2 taken and someone may sleep.
#pragma once

#include <atomic>

namespace sluice::net {

class LightMutex {
 public:
  LightMutex() = default;
  LightMutex(const LightMutex&) = delete;
  LightMutex& operator=(const LightMutex&) = delete;

  void lock() noexcept {
    int free = 0;
    if (!state_.compare_exchange_strong(free, 1, std::memory_order_acquire, std::memory_order_relaxed)) [[unlikely]]
      lock_contended();
  }
  bool try_lock() noexcept {
    int free = 0;
    return state_.compare_exchange_strong(free, 1, std::memory_order_acquire, std::memory_order_relaxed);
  }
  void unlock() noexcept {
    if (state_.exchange(0, std::memory_order_release) == 2) [[unlikely]]
      wake_one();
  }

  // Times a lock() found it taken (all LightMutexes, this process), for tests.
  static unsigned long contended_count() noexcept;
  // Taken, and a thread sleeps on it or is about to (its release makes a wake-up), for tests.
  bool wanted() const noexcept { return state_.load(std::memory_order_relaxed) == 2; }

 private:
  void lock_contended() noexcept;
  void wake_one() noexcept;

  std::atomic<int> state_{0};
};

}  // namespace sluice::net
