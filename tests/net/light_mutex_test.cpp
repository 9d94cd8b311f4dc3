// The pool's lock (net/light_mutex.hpp): exclusive under contention, including when holders
// sleep so that others must sleep on the futex and be woken; try_lock fails while it is held.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
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

namespace {
template <typename Pred>
bool wait_until(Pred p) {  // polls, at most 5 s
  for (int i = 0; i < 5000; ++i) {
    if (p()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return p();
}
}  // namespace

TEST_CASE("light mutex: a thread that sleeps on it is woken by the release") {
  // Shared with the waiter, which is left behind (detached) if no release ever wakes it.
  struct Shared {
    net::LightMutex mu;
    std::atomic<bool> got{false};
  };
  auto sh = std::make_shared<Shared>();
  auto before = net::LightMutex::contended_count();
  sh->mu.lock();
  std::thread waiter([sh] {
    sh->mu.lock();  // held until the waiter has marked it wanted: it sleeps, then is woken
    sh->got = true;
    sh->mu.unlock();
  });
  REQUIRE(wait_until([&] { return sh->mu.wanted(); }));
  CHECK(net::LightMutex::contended_count() > before);
  CHECK_FALSE(sh->got.load());
  sh->mu.unlock();
  if (!wait_until([&] { return sh->got.load(); })) {
    waiter.detach();
    FAIL("the release did not wake the sleeping thread");
  }
  waiter.join();
  // Free again, and not left marked as wanted: it is taken with the one-instruction path.
  CHECK_FALSE(sh->mu.wanted());
  CHECK(sh->mu.try_lock());
  sh->mu.unlock();
}

TEST_CASE("light mutex: several sleepers are all woken, one per release") {
  net::LightMutex mu;
  auto before = net::LightMutex::contended_count();
  mu.lock();
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&] {
      std::lock_guard lock(mu);
      done.fetch_add(1);
    });
  // All three found it taken and it is marked wanted: each release must wake the next.
  REQUIRE(wait_until([&] { return net::LightMutex::contended_count() >= before + 3 && mu.wanted(); }));
  mu.unlock();
  CHECK(wait_until([&] { return done.load() == 3; }));
  for (auto& t : threads) t.join();
}
