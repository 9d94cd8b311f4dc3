#include "src/observe/loop_clock.hpp"

#include <doctest/doctest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <thread>

using namespace std::chrono_literals;
using sluice::observe::loop_now;
using sluice::observe::micros_between;
using Clock = std::chrono::steady_clock;

namespace {
// Runs an io_context on the calling thread, inside a loop clock scope, until a timer of `after`
// has fired and `handler` has run.
template <typename Handler>
void run_timer(Clock::duration after, Handler handler) {
  sluice::observe::LoopClockScope scope;
  boost::asio::io_context io;
  boost::asio::steady_timer t(io, after);
  t.async_wait([&](boost::system::error_code) { handler(); });
  io.run();
}
}  // namespace

TEST_CASE("loop clock: a thread without a reactor reads the clock itself") {
  std::thread([] {
    auto a = loop_now();
    std::this_thread::sleep_for(2ms);
    auto b = loop_now();
    CHECK(b - a >= 2ms);
  }).join();
}

TEST_CASE("loop clock: after a tick, the tick's time until the next one") {
  std::thread([] {
    sluice::observe::LoopClockScope scope;
    sluice::observe::tick();
    auto a = loop_now();
    std::this_thread::sleep_for(2ms);
    CHECK(loop_now() == a);
    sluice::observe::tick();
    CHECK(loop_now() - a >= 2ms);
  }).join();
}

TEST_CASE("loop clock: the reactor ticks when epoll_wait comes back, before the handlers run") {
  // The timer's handler runs in the turn of the epoll_wait that slept through its 30 ms: its
  // loop time is after the wait, not the time of the turn that armed the timer.
  std::thread([] {
    Clock::time_point armed = Clock::now(), seen{}, later{};
    run_timer(30ms, [&] {
      seen = loop_now();
      std::this_thread::sleep_for(2ms);
      later = loop_now();  // the same turn: the same time
    });
    CHECK(seen - armed >= 30ms);
    CHECK(seen <= Clock::now());
    CHECK(later == seen);
  }).join();
}

TEST_CASE("loop clock: a thread that ran a reactor and went on reads the clock itself again") {
  // The pool's last-use stamps once came from a test thread's tick long past: every connection
  // it released then looked idle for seconds and was probed.
  std::thread([] {
    run_timer(1ms, [] {});
    auto a = loop_now();
    std::this_thread::sleep_for(2ms);
    CHECK(loop_now() - a >= 2ms);
    sluice::observe::tick();  // outside a scope: nothing cached
    std::this_thread::sleep_for(2ms);
    CHECK(loop_now() - a >= 4ms);
  }).join();
}

TEST_CASE("loop clock: durations between two threads' clocks are never negative") {
  auto t = Clock::now();
  CHECK(micros_between(t, t + 1500us) == 1500);
  CHECK(micros_between(t + 1500us, t) == 0);
  CHECK(micros_between(t, t) == 0);
}
