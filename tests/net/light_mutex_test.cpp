// The pool's lock (net/light_mutex.hpp): exclusive under contention, including when holders
// sleep so that others must sleep on the futex and be woken; try_lock fails while it is held.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "src/net/light_mutex.hpp"

using namespace sluice;
using namespace std::chrono_literals;

TEST_CASE("light mutex: try_lock fails while held and succeeds after unlock") {
  net::LightMutex mu;
  CHECK(mu.try_lock());
  CHECK_FALSE(mu.try_lock());
  mu.unlock();
  CHECK(mu.try_lock());
  mu.unlock();
}

TEST_CASE("light mutex: no two threads inside at once, and every increment counts") {
  net::LightMutex mu;
  long counter = 0;  // not atomic: only the lock orders it
  std::atomic<int> inside{0};
  std::atomic<bool> overlap{false};
  constexpr int kThreads = 4, kRounds = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        std::lock_guard lock(mu);
        if (inside.fetch_add(1) != 0) overlap = true;
        ++counter;
        inside.fetch_sub(1);
      }
    });
  for (auto& t : threads) t.join();
  CHECK_FALSE(overlap.load());
  CHECK(counter == long{kThreads} * kRounds);
}

TEST_CASE("light mutex: a thread that sleeps on it is woken by the release") {
  net::LightMutex mu;
  auto before = net::LightMutex::contended_count();
  mu.lock();
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    mu.lock();  // held for far longer than the spin: it must sleep, then be woken
    got = true;
    mu.unlock();
  });
  std::this_thread::sleep_for(50ms);
  CHECK_FALSE(got.load());
  mu.unlock();
  for (int i = 0; i < 500 && !got.load(); ++i) std::this_thread::sleep_for(10ms);
  CHECK(got.load());
  waiter.join();
  CHECK(net::LightMutex::contended_count() > before);
  // Free again, and not left marked as wanted: it is taken with the one-instruction path.
  CHECK(mu.try_lock());
  mu.unlock();
}

TEST_CASE("light mutex: several sleepers are all woken, one per release") {
  net::LightMutex mu;
  mu.lock();
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&] {
      std::lock_guard lock(mu);
      std::this_thread::sleep_for(5ms);  // each holds it while the others sleep
      done.fetch_add(1);
    });
  std::this_thread::sleep_for(50ms);
  mu.unlock();
  for (int i = 0; i < 500 && done.load() < 3; ++i) std::this_thread::sleep_for(10ms);
  CHECK(done.load() == 3);
  for (auto& t : threads) t.join();
}
