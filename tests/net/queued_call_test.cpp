// Calls queued on an io_context without an allocation (net/queued_call.hpp): run once, on the
// io_context's thread, after the handler that queued them; from another thread they wake it;
// an io_context destroyed with calls still queued hands them back uncalled.
#include <doctest/doctest.h>

#include <boost/asio.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "src/net/queued_call.hpp"

namespace asio = boost::asio;
using namespace sluice;
using namespace std::chrono_literals;

namespace {

struct Call : net::QueuedCall {
  explicit Call(std::vector<int>* log, int tag) : QueuedCall(&Call::run), log(log), tag(tag) {}
  static void run(QueuedCall* self, bool call) {
    auto* c = static_cast<Call*>(self);
    c->ran_on = std::this_thread::get_id();
    if (call) c->log->push_back(c->tag);
    else c->dropped = true;
    c->times.fetch_add(1);
  }
  std::vector<int>* log;
  int tag;
  std::thread::id ran_on;
  bool dropped = false;
  std::atomic<int> times{0};
};

}  // namespace

TEST_CASE("queued call: from the io_context's own thread, it runs after the handler that queued it, in order") {
  asio::io_context io{1};
  std::vector<int> log;
  Call a(&log, 1), b(&log, 2);
  asio::post(io, [&] {
    auto target = net::CallTarget::of(io);
    REQUIRE(target);
    target.post(&a);
    target.post(&b);
    log.push_back(0);  // still this handler's turn
  });
  io.run();  // the queued calls are work: run() returns once they have run
  CHECK(log == std::vector<int>{0, 1, 2});
  CHECK(a.times == 1);
  CHECK(b.times == 1);
  CHECK_FALSE(a.dropped);
}

TEST_CASE("queued call: from another thread, it wakes the io_context and runs on its thread") {
  asio::io_context io{1};
  auto guard = asio::make_work_guard(io);
  std::thread worker([&] { io.run(); });
  std::vector<int> log;
  Call c(&log, 7);
  net::CallTarget::of(io).post(&c);
  for (int i = 0; i < 5000 && c.times.load() == 0; ++i) std::this_thread::sleep_for(1ms);
  CHECK(c.times == 1);
  CHECK(c.ran_on == worker.get_id());
  guard.reset();
  worker.join();
  CHECK(log == std::vector<int>{7});
}

TEST_CASE("queued call: an io_context destroyed with the call still queued hands it back uncalled") {
  std::vector<int> log;
  Call c(&log, 3);
  {
    asio::io_context io{1};
    net::CallTarget::of(io).post(&c);  // not on io's thread: its shared queue
  }
  CHECK(c.times == 1);
  CHECK(c.dropped);
  CHECK(log.empty());
}
